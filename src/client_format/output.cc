#include "client_format/output.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

#include "common/go_duration.h"
#include "re2/re2.h"

namespace discovery::client_format {
namespace {

using Json = nlohmann::ordered_json;
using Row = std::vector<std::string>;

using Header = std::span<const std::string_view>;

constexpr std::array<std::string_view, 4> kServerHeader = {"NAME", "MODIFIED", "STATE", "LABELS"};
constexpr std::array<std::string_view, 3> kNamespaceHeader = {"NAME", "EXPORTCONFIG", "MODIFIED"};
constexpr std::array<std::string_view, 9> kServiceHeader = {"NAME",     "NAMESPACE", "ID",
                                                            "ENDPOINT", "SERVERS",   "LABELS",
                                                            "SELECTOR", "MODIFIED",  "DESCRIPTION"};
// EXPIRES last: scripts that cut the columns before it keep working.
constexpr std::array<std::string_view, 11> kWideServiceHeader = {
    "NAME",     "NAMESPACE", "ID",          "ENDPOINT", "SERVERS", "LABELS",
    "SELECTOR", "MODIFIED",  "DESCRIPTION", "INVALID",  "EXPIRES"};

std::string Rfc3339(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", time, absl::UTCTimeZone());
}

// Go's time.RFC3339Nano: truncated to nanoseconds, trailing zeros of the fraction dropped.
std::string Rfc3339Nano(absl::Time time) {
  const absl::Time truncated =
      absl::UnixEpoch() + absl::Floor(time - absl::UnixEpoch(), absl::Nanoseconds(1));
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", truncated, absl::UTCTimeZone());
}

std::string JoinServers(const std::vector<std::string>& servers) {
  return fmt::format("{}", fmt::join(servers, ","));
}

// ---- table and csv ----

Row ToRow(const Server& server) {
  return {server.name, Rfc3339(server.modified), ServerStateName(server.state),
          LabelsToString(server.labels)};
}

Row ToRow(const Namespace& ns) {
  return {ns.name, ExportConfigName(ns.export_config), Rfc3339(ns.modified)};
}

Row ToRow(const Service& service) {
  return {service.name,     service.namespace_name,       service.id,
          service.endpoint, JoinServers(service.servers), LabelsToString(service.labels),
          service.selector, Rfc3339(service.modified),    service.description};
}

Row ToRow(const ListedService& listed) { return ToRow(listed.service); }

// The wide table: the same rows and the columns that do not fit the default one.
Row ToWideRow(const Server& server) { return ToRow(server); }
Row ToWideRow(const Namespace& ns) { return ToRow(ns); }
Row ToWideRow(const ListedService& listed) {
  Row row = ToRow(listed.service);
  row.push_back(listed.invalid);
  // "<time> (ttl <ttl>)" for a service with a TTL, "-" for one without.
  row.push_back(listed.service.HasTtl()
                    ? fmt::format("{} (ttl {})", Rfc3339(listed.service.expires),
                                  FormatGoDuration(listed.service.ttl))
                    : "-");
  return row;
}

// Go's tabwriter measures cells in runes, not bytes.
size_t DisplayWidth(std::string_view text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

// Go's encoding/csv rules (fieldNeedsQuotes), so files match the original byte for byte.
bool CsvNeedsQuotes(std::string_view field) {
  if (field.empty()) {
    return false;
  }
  return field == "\\." || field.find_first_of(";\"\r\n") != std::string_view::npos ||
         field.front() == ' ' || field.front() == '\t' || field.front() == '\v' ||
         field.front() == '\f';
}

void AppendCsvLine(const Row& row, std::string& out) {
  for (size_t i = 0; i < row.size(); ++i) {
    if (i > 0) {
      out += ';';
    }
    if (!CsvNeedsQuotes(row[i])) {
      out += row[i];
      continue;
    }
    out += '"';
    for (char c : row[i]) {
      if (c == '"') {
        out += '"';
      }
      out += c;
    }
    out += '"';
  }
  out += '\n';
}

// Go's tabwriter output of rows that are only known one by one: the cells go into one buffer
// as they come (the widest of each column noted), and the aligned lines are written at the end.
class TableBuffer {
 public:
  void Add(const Row& row) {
    widths_.resize(std::max(widths_.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) {
      widths_[i] = std::max(widths_[i], DisplayWidth(row[i]));
      cells_ += row[i];
      cell_ends_.push_back(cells_.size());
    }
    row_ends_.push_back(cell_ends_.size());
  }

  void Write(std::ostream& out) const {
    std::string line;
    size_t cell = 0;
    size_t start = 0;
    for (const size_t row_end : row_ends_) {
      line.clear();
      const size_t row_start = cell;
      for (; cell < row_end; ++cell) {
        const std::string_view text(cells_.data() + start, cell_ends_[cell] - start);
        start = cell_ends_[cell];
        line += text;
        if (cell + 1 < row_end) {
          line.append(widths_[cell - row_start] + 1 - DisplayWidth(text), ' ');
        }
      }
      // Empty trailing cells (an item without description) must not leave blanks behind.
      line.erase(line.find_last_not_of(' ') + 1);
      line += '\n';
      out.write(line.data(), static_cast<std::streamsize>(line.size()));
    }
  }

 private:
  std::vector<size_t> widths_;
  std::string cells_;              // every cell, one after the other
  std::vector<size_t> cell_ends_;  // where each cell ends in cells_
  std::vector<size_t> row_ends_;   // where each row ends in cell_ends_
};

// ---- json ----

Json ToJson(const Server& server) {
  Json json;
  json["name"] = server.name;
  json["labels"] = Json(server.labels);  // {} when empty, as in YAML
  json["state"] = static_cast<int64_t>(server.state);
  json["modified"] = Rfc3339Nano(server.modified);
  return json;
}

Json ToJson(const Namespace& ns) {
  Json json;
  json["name"] = ns.name;
  json["export"] = static_cast<int32_t>(ns.export_config);
  json["modified"] = Rfc3339Nano(ns.modified);
  return json;
}

// Every field, empty ones too, so that JSON and YAML show the same fields (the Go original left
// empty ones out of JSON only).
Json ToJson(const Service& service) {
  Json json = Json::object();
  json["id"] = service.id;
  json["name"] = service.name;
  json["namespace"] = service.namespace_name;
  json["endpoint"] = service.endpoint;
  json["labels"] = Json(service.labels);
  json["servers"] = Json(service.servers);
  json["selector"] = service.selector;
  json["description"] = service.description;
  json["modified"] = Rfc3339Nano(service.modified);
  // Only services with a TTL have these: the lists of everything else read as before.
  if (service.HasTtl()) {
    json["ttl"] = FormatGoDuration(service.ttl);
    json["expires"] = Rfc3339Nano(service.expires);
  }
  return json;
}

Json ToJson(const ListedService& listed) {
  Json json = ToJson(listed.service);
  if (!listed.invalid.empty()) {
    json["invalid"] = listed.invalid;
  }
  return json;
}

// `json` as Go's json.MarshalIndent(v, prefix, "  ") prints it with a prefix of `indent` spaces
// (before every line but the first), without a final newline.
std::string DumpJson(const Json& json, int indent = 0) {
  // Invalid UTF-8 becomes U+FFFD instead of throwing, as Go's encoder does.
  const std::string text = json.dump(2, ' ', false, Json::error_handler_t::replace);
  // Go escapes these for HTML and JavaScript safety; outside strings they cannot occur.
  std::string out;
  out.reserve(text.size());
  for (std::string_view rest = text; !rest.empty();) {
    if (rest.starts_with("\u2028") || rest.starts_with("\u2029")) {
      out += rest.starts_with("\u2028") ? "\\u2028" : "\\u2029";
      rest.remove_prefix(3);
      continue;
    }
    switch (rest.front()) {
      case '\n':  // strings hold newlines escaped: this one is between two lines
        out += '\n';
        out.append(static_cast<size_t>(indent), ' ');
        break;
      case '<':
        out += "\\u003c";
        break;
      case '>':
        out += "\\u003e";
        break;
      case '&':
        out += "\\u0026";
        break;
      default:
        out += rest.front();
    }
    rest.remove_prefix(1);
  }
  return out;
}

// ---- yaml ----

// Plain scalars such as `yes`, `123` or `.inf` would read back as booleans or numbers in other
// YAML tools (YAML 1.1, as Go's yaml.v2 resolves them); yaml-cpp quotes only null-like strings.
bool ResolvesToNonString(const std::string& text) {
  bool ignored = false;
  if (YAML::convert<bool>::decode(YAML::Node(text), ignored)) {
    return true;
  }
  // RE2, not std::regex: label values come from the network, and std::regex recurses once per
  // character (a long value overflowed the stack).
  static const auto* const number =
      new RE2(R"([-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?)"  // decimal, octal
              R"(|[-+]?0([xX][0-9a-fA-F_]+|[oO][0-7_]+|[bB][01_]+))"           // hex, octal, binary
              R"(|[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?)"               // sexagesimal
              R"(|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))");
  return RE2::FullMatch(text, *number);
}

// yaml-cpp copies plain scalars byte for byte but replaces invalid UTF-8 and noncharacters
// (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF), which it cannot escape, with U+FFFD in quoted ones: such a
// string would read back differently depending on its quoting, and in a plain scalar make the
// document invalid YAML. Replaced up front, it prints one way; invalid UTF-8 becomes U+FFFD as in
// the JSON output.
std::string YamlText(const std::string& text) {
  if (std::all_of(text.begin(), text.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
    return text;
  }
  const std::string valid =
      Json::parse(Json(text).dump(-1, ' ', false, Json::error_handler_t::replace))
          .get<std::string>();
  std::string out;
  out.reserve(valid.size());
  for (size_t i = 0; i < valid.size();) {
    const auto lead = static_cast<unsigned char>(valid[i]);
    const size_t length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    uint32_t code_point = length == 1 ? lead : lead & (0x7FU >> length);
    for (size_t j = 1; j < length; ++j) {
      code_point = (code_point << 6) | (static_cast<unsigned char>(valid[i + j]) & 0x3FU);
    }
    const bool noncharacter =
        (code_point >= 0xFDD0 && code_point <= 0xFDEF) || (code_point & 0xFFFE) == 0xFFFE;
    out.append(noncharacter ? std::string_view{"\uFFFD"}
                            : std::string_view{valid}.substr(i, length));
    i += length;
  }
  return out;
}

// The longest implicit key ("key: value") yaml-cpp's parser reads, in written bytes.
constexpr size_t kMaxImplicitKeyBytes = 1024;

void EmitString(YAML::Emitter& out, const std::string& text, bool key = false) {
  const std::string yaml_text = YamlText(text);
  // yaml-cpp leaves a carriage return in a plain scalar, where its reader takes it for a line
  // break ("\r" alone read as null); quoted, it is escaped.
  const bool quoted = ResolvesToNonString(yaml_text) || yaml_text.find('\r') != std::string::npos;
  if (key) {
    // yaml-cpp's emitter writes a longer key as an explicit "? key", but judges by the length
    // before quoting and escaping (a control character takes four bytes written): measure what
    // it writes.
    YAML::Emitter written;
    if (quoted) {
      written << YAML::DoubleQuoted;
    }
    written << yaml_text;
    if (written.size() > kMaxImplicitKeyBytes) {
      out << YAML::LongKey;
    }
  }
  if (quoted) {
    out << YAML::DoubleQuoted;
  }
  out << yaml_text;
}

// One key of a mapping and its value: text as EmitString writes it, a number as it is, an instant
// as Rfc3339Nano, labels as a mapping and a list of text as a sequence (an empty one as {} or []).
void EmitKey(YAML::Emitter& out, const char* key) { out << YAML::Key << key << YAML::Value; }

void EmitEntry(YAML::Emitter& out, const char* key, const std::string& value) {
  EmitKey(out, key);
  EmitString(out, value);
}

void EmitEntry(YAML::Emitter& out, const char* key, int64_t value) {
  EmitKey(out, key);
  out << value;
}

void EmitEntry(YAML::Emitter& out, const char* key, absl::Time value) {
  EmitKey(out, key);
  out << Rfc3339Nano(value);
}

void EmitEntry(YAML::Emitter& out, const char* key, const Labels& labels) {
  EmitKey(out, key);
  if (labels.empty()) {
    out << YAML::Flow;
  }
  out << YAML::BeginMap;
  for (const auto& [name, value] : labels) {
    out << YAML::Key;
    EmitString(out, name, /*key=*/true);
    out << YAML::Value;
    EmitString(out, value);
  }
  out << YAML::EndMap;
}

void EmitEntry(YAML::Emitter& out, const char* key, const std::vector<std::string>& items) {
  EmitKey(out, key);
  if (items.empty()) {
    out << YAML::Flow;
  }
  out << YAML::BeginSeq;
  for (const std::string& item : items) {
    EmitString(out, item);
  }
  out << YAML::EndSeq;
}

void Emit(YAML::Emitter& out, const Server& server) {
  out << YAML::BeginMap;
  EmitEntry(out, "name", server.name);
  EmitEntry(out, "labels", server.labels);
  EmitEntry(out, "state", static_cast<int64_t>(server.state));
  EmitEntry(out, "modified", server.modified);
  out << YAML::EndMap;
}

void Emit(YAML::Emitter& out, const Namespace& ns) {
  out << YAML::BeginMap;
  EmitEntry(out, "name", ns.name);
  EmitEntry(out, "export", static_cast<int64_t>(ns.export_config));
  EmitEntry(out, "modified", ns.modified);
  out << YAML::EndMap;
}

// The keys of a service, without the mapping around them.
void EmitFields(YAML::Emitter& out, const Service& service) {
  EmitEntry(out, "id", service.id);
  EmitEntry(out, "name", service.name);
  EmitEntry(out, "namespace", service.namespace_name);
  EmitEntry(out, "endpoint", service.endpoint);
  EmitEntry(out, "selector", service.selector);
  EmitEntry(out, "servers", service.servers);
  EmitEntry(out, "labels", service.labels);
  EmitEntry(out, "description", service.description);
  EmitEntry(out, "modified", service.modified);
  if (service.HasTtl()) {
    EmitEntry(out, "ttl", FormatGoDuration(service.ttl));
    EmitEntry(out, "expires", service.expires);
  }
}

void Emit(YAML::Emitter& out, const ListedService& listed) {
  out << YAML::BeginMap;
  EmitFields(out, listed.service);
  if (!listed.invalid.empty()) {
    EmitEntry(out, "invalid", listed.invalid);
  }
  out << YAML::EndMap;
}

// Writes items one by one in any format; see ListedServiceWriter.
template <typename T>
class Writer {
 public:
  Writer(std::ostream& out, const OutputOptions& options, Header header, Header wide_header)
      : out_(out), options_(options) {
    const bool wide = options.format == OutputFormat::kWide;
    if (options.headers && options.format != OutputFormat::kJson &&
        options.format != OutputFormat::kYaml) {
      const Header shown = wide ? wide_header : header;
      AddRow(Row(shown.begin(), shown.end()));
    }
  }

  void Add(const T& item) {
    switch (options_.format) {
      case OutputFormat::kJson:
        // json.MarshalIndent of the array: each element on its own lines, indented once.
        chunk_ = rows_ == 0 ? "[\n  " : ",\n  ";
        chunk_ += DumpJson(ToJson(item), 2);
        Write(chunk_);
        break;
      case OutputFormat::kYaml:
        // One emitter for the whole sequence, writing into `out` as it goes.
        if (!yaml_.has_value()) {
          yaml_.emplace(out_);
          *yaml_ << YAML::BeginSeq;
        }
        Emit(*yaml_, item);
        break;
      case OutputFormat::kTable:
      case OutputFormat::kCsv:
        AddRow(ToRow(item));
        break;
      case OutputFormat::kWide:
        AddRow(ToWideRow(item));
        break;
    }
    ++rows_;
  }

  void Finish() {
    switch (options_.format) {
      case OutputFormat::kJson:
        Write(rows_ == 0 ? "[]\n" : "\n]\n");
        break;
      case OutputFormat::kYaml:
        if (yaml_.has_value()) {
          *yaml_ << YAML::EndSeq;
          yaml_.reset();
          Write("\n");
        } else {
          Write("[]\n");  // what the emitter prints for an empty flow sequence
        }
        break;
      case OutputFormat::kTable:
      case OutputFormat::kWide:
        table_.Write(out_);
        table_ = {};
        break;
      case OutputFormat::kCsv:
        break;
    }
  }

  size_t rows() const { return rows_; }

 private:
  void AddRow(const Row& row) {
    if (options_.format == OutputFormat::kCsv) {
      chunk_.clear();
      AppendCsvLine(row, chunk_);
      Write(chunk_);
    } else {
      table_.Add(row);
    }
  }

  void Write(std::string_view text) {
    out_.write(text.data(), static_cast<std::streamsize>(text.size()));
  }

  std::ostream& out_;
  const OutputOptions options_;
  TableBuffer table_;
  std::optional<YAML::Emitter> yaml_;  // from the first yaml row until Finish
  std::string chunk_;                  // reused: the text of the row being written
  size_t rows_ = 0;                    // items added
};

template <typename T>
std::string Format(const std::vector<T>& items, Header header, const OutputOptions& options,
                   Header wide_header) {
  std::ostringstream out;
  Writer<T> writer(out, options, header, wide_header);
  for (const T& item : items) {
    writer.Add(item);
  }
  writer.Finish();
  return std::move(out).str();
}

}  // namespace

absl::StatusOr<OutputFormat> ParseOutputFormat(std::string_view name) {
  if (name == "table") {
    return OutputFormat::kTable;
  }
  if (name == "wide") {
    return OutputFormat::kWide;
  }
  if (name == "json") {
    return OutputFormat::kJson;
  }
  if (name == "yaml") {
    return OutputFormat::kYaml;
  }
  if (name == "csv") {
    return OutputFormat::kCsv;
  }
  return absl::InvalidArgumentError(
      fmt::format("unknown output format \"{}\": use table, wide, json, yaml or csv", name));
}

std::string FormatServers(const std::vector<Server>& servers, const OutputOptions& options) {
  return Format(servers, kServerHeader, options, kServerHeader);
}

std::string FormatNamespaces(const std::vector<Namespace>& namespaces,
                             const OutputOptions& options) {
  return Format(namespaces, kNamespaceHeader, options, kNamespaceHeader);
}

std::string FormatServices(const std::vector<Service>& services, const OutputOptions& options) {
  std::vector<ListedService> listed;
  listed.reserve(services.size());
  for (const Service& service : services) {
    listed.push_back({.service = service});
  }
  return FormatListedServices(listed, options);
}

std::string FormatListedServices(const std::vector<ListedService>& services,
                                 const OutputOptions& options) {
  return Format(services, kServiceHeader, options, kWideServiceHeader);
}

class ListedServiceWriter::Impl : public Writer<ListedService> {
 public:
  using Writer<ListedService>::Writer;
};

ListedServiceWriter::ListedServiceWriter(std::ostream& out, const OutputOptions& options)
    : impl_(std::make_unique<Impl>(out, options, kServiceHeader, kWideServiceHeader)) {}
ListedServiceWriter::~ListedServiceWriter() = default;
void ListedServiceWriter::Add(const ListedService& service) { impl_->Add(service); }
void ListedServiceWriter::Finish() { impl_->Finish(); }
size_t ListedServiceWriter::rows() const { return impl_->rows(); }

}  // namespace discovery::client_format
