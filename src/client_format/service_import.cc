#include "client_format/service_import.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

#include "common/format.h"
#include "common/status_macros.h"

namespace discovery::client_format {
namespace {

using Json = nlohmann::ordered_json;

// Our schema nests four levels deep; the cap keeps hostile JSON from exhausting the stack while
// it is converted (yaml-cpp enforces its own limit).
constexpr int kMaxJsonDepth = 32;

// The fields of Go's url.URL as its YAML encoder names them.
struct UrlFields {
  std::string scheme;
  std::string opaque;
  std::string user;
  std::string host;
  std::string path;
  std::string rawpath;
  bool omithost = false;
  bool forcequery = false;
  std::string rawquery;
  std::string fragment;
  std::string rawfragment;
};

struct Userinfo {
  std::string username;
  std::string password;
};

template <typename T>
struct Field {
  std::string_view key;
  absl::Status (*decode)(const YAML::Node& value, T& out);
};

std::string_view KindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar:
      return "a string";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

absl::Status TypeError(std::string_view expected, const YAML::Node& node) {
  return absl::InvalidArgumentError(fmt::format("expected {}, got {}", expected, KindName(node)));
}

// `status` with `context` before its message; OK stays OK.
absl::Status WithContext(std::string_view context, const absl::Status& status) {
  if (status.ok()) {
    return status;
  }
  return {status.code(), fmt::format("{}: {}", context, status.message())};
}

// Calls `read(key, value)` for each entry of the mapping `node` in order, up to the first error,
// which it returns. Only string keys are accepted.
template <typename Read>
absl::Status ForEachEntry(const YAML::Node& node, Read read) {
  if (!node.IsMap()) {
    return TypeError("a mapping", node);
  }
  for (const auto& item : node) {
    if (!item.first.IsScalar()) {
      return TypeError("string keys", item.first);
    }
    DISCOVERY_RETURN_IF_ERROR(read(item.first.Scalar(), item.second));
  }
  return absl::OkStatus();
}

// Null (`key:` or `key: ~`) reads as empty, like the zero value Go's decoder leaves.
absl::Status ReadString(const YAML::Node& node, std::string& out) {
  if (node.IsNull()) {
    out.clear();
    return absl::OkStatus();
  }
  if (!node.IsScalar()) {
    return TypeError("a string", node);
  }
  out = node.Scalar();
  return absl::OkStatus();
}

absl::Status ReadBool(const YAML::Node& node, bool& out) {
  if (node.IsNull()) {
    out = false;
    return absl::OkStatus();
  }
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, out)) {
    return TypeError("a boolean", node);
  }
  return absl::OkStatus();
}

absl::Status ReadStringList(const YAML::Node& node, std::vector<std::string>& out) {
  out.clear();
  if (node.IsNull()) {
    return absl::OkStatus();
  }
  if (!node.IsSequence()) {
    return TypeError("a list", node);
  }
  for (const YAML::Node& item : node) {
    if (absl::Status status = ReadString(item, out.emplace_back()); !status.ok()) {
      return WithContext(fmt::format("item {}", out.size()), status);
    }
  }
  return absl::OkStatus();
}

absl::Status ReadStringMap(const YAML::Node& node, Labels& out) {
  out.clear();
  if (node.IsNull()) {
    return absl::OkStatus();
  }
  return ForEachEntry(node, [&](const std::string& key, const YAML::Node& value) {
    return WithContext(key, ReadString(value, out[key]));
  });
}

// Decodes a mapping whose keys must all appear in `fields`.
template <typename T>
absl::Status DecodeMapping(const YAML::Node& node, std::span<const Field<T>> fields, T& out) {
  return ForEachEntry(node, [&](const std::string& key, const YAML::Node& value) {
    const auto field =
        std::find_if(fields.begin(), fields.end(), [&](const Field<T>& f) { return f.key == key; });
    if (field == fields.end()) {
      return absl::InvalidArgumentError(fmt::format("unknown key \"{}\"", key));
    }
    return WithContext(key, field->decode(value, out));
  });
}

constexpr auto kUserinfoFields = std::to_array<Field<Userinfo>>({
    {"username", [](const YAML::Node& n, Userinfo& u) { return ReadString(n, u.username); }},
    {"password", [](const YAML::Node& n, Userinfo& u) { return ReadString(n, u.password); }},
});

// Go's encoder writes `user: {}` (url.Userinfo has only unexported fields), so the user is
// usually lost; a hand-written string or username/password mapping is honoured.
absl::Status ReadUser(const YAML::Node& node, std::string& out) {
  if (!node.IsMap()) {
    return ReadString(node, out);
  }
  Userinfo user;
  DISCOVERY_RETURN_IF_ERROR(DecodeMapping<Userinfo>(node, kUserinfoFields, user));
  out = user.password.empty() ? user.username : user.username + ":" + user.password;
  return absl::OkStatus();
}

constexpr auto kUrlFields = std::to_array<Field<UrlFields>>({
    {"scheme", [](const YAML::Node& n, UrlFields& u) { return ReadString(n, u.scheme); }},
    {"opaque", [](const YAML::Node& n, UrlFields& u) { return ReadString(n, u.opaque); }},
    {"user", [](const YAML::Node& n, UrlFields& u) { return ReadUser(n, u.user); }},
    {"host", [](const YAML::Node& n, UrlFields& u) { return ReadString(n, u.host); }},
    {"path", [](const YAML::Node& n, UrlFields& u) { return ReadString(n, u.path); }},
    {"rawpath", [](const YAML::Node& n, UrlFields& u) { return ReadString(n, u.rawpath); }},
    {"omithost", [](const YAML::Node& n, UrlFields& u) { return ReadBool(n, u.omithost); }},
    {"forcequery", [](const YAML::Node& n, UrlFields& u) { return ReadBool(n, u.forcequery); }},
    {"rawquery", [](const YAML::Node& n, UrlFields& u) { return ReadString(n, u.rawquery); }},
    {"fragment", [](const YAML::Node& n, UrlFields& u) { return ReadString(n, u.fragment); }},
    {"rawfragment", [](const YAML::Node& n, UrlFields& u) { return ReadString(n, u.rawfragment); }},
});

// Go's URL.String(), except that path and fragment are not re-escaped: the raw forms are used
// when present and the server canonicalises the result anyway.
std::string UrlString(const UrlFields& url) {
  std::string out;
  if (!url.scheme.empty()) {
    out += url.scheme + ":";
  }
  if (!url.opaque.empty()) {
    out += url.opaque;
  } else {
    const bool has_authority = !url.host.empty() || !url.user.empty();
    if ((!url.scheme.empty() || has_authority) && !(url.omithost && !has_authority)) {
      if (has_authority || !url.path.empty()) {
        out += "//";
      }
      if (!url.user.empty()) {
        out += url.user + "@";
      }
      out += url.host;
    }
    const std::string& path = url.rawpath.empty() ? url.path : url.rawpath;
    if (!path.empty() && path.front() != '/' && !url.host.empty()) {
      out += '/';
    }
    out += path;
  }
  if (url.forcequery || !url.rawquery.empty()) {
    out += "?" + url.rawquery;
  }
  if (!url.fragment.empty()) {
    out += "#" + (url.rawfragment.empty() ? url.fragment : url.rawfragment);
  }
  return out;
}

absl::Status ReadEndpoint(const YAML::Node& node, std::string& out) {
  if (node.IsSequence()) {
    return TypeError("a URL or a mapping of URL fields", node);
  }
  if (!node.IsMap()) {
    return ReadString(node, out);
  }
  UrlFields url;
  DISCOVERY_RETURN_IF_ERROR(DecodeMapping<UrlFields>(node, kUrlFields, url));
  out = UrlString(url);
  return absl::OkStatus();
}

absl::Status IgnoreString(const YAML::Node& node) {
  std::string ignored;
  return ReadString(node, ignored);
}

constexpr auto kServiceFields = std::to_array<Field<Service>>({
    {"id", [](const YAML::Node& n, Service& s) { return ReadString(n, s.id); }},
    {"name", [](const YAML::Node& n, Service& s) { return ReadString(n, s.name); }},
    {"namespace", [](const YAML::Node& n, Service& s) { return ReadString(n, s.namespace_name); }},
    {"endpoint", [](const YAML::Node& n, Service& s) { return ReadEndpoint(n, s.endpoint); }},
    {"selector", [](const YAML::Node& n, Service& s) { return ReadString(n, s.selector); }},
    {"servers", [](const YAML::Node& n, Service& s) { return ReadStringList(n, s.servers); }},
    {"labels", [](const YAML::Node& n, Service& s) { return ReadStringMap(n, s.labels); }},
    {"description", [](const YAML::Node& n, Service& s) { return ReadString(n, s.description); }},
    {"modified", [](const YAML::Node& n, Service&) { return IgnoreString(n); }},
    // `service list` marks stored records that cannot be served; fixed, they may be imported.
    {"invalid", [](const YAML::Node& n, Service&) { return IgnoreString(n); }},
});

absl::StatusOr<Service> DecodeService(const YAML::Node& node) {
  Service service;
  DISCOVERY_RETURN_IF_ERROR(DecodeMapping<Service>(node, kServiceFields, service));
  if (service.endpoint.empty()) {
    return absl::InvalidArgumentError("endpoint is missing");
  }
  if (service.namespace_name.empty()) {
    service.namespace_name = "default";
  }
  return service;
}

// JSON becomes the YAML nodes yaml-cpp would build for it, so one decoder serves both formats.
// Numbers and booleans become scalars, as YAML keeps them.
absl::StatusOr<YAML::Node> JsonToYaml(const Json& json, int depth = 0) {
  if (depth > kMaxJsonDepth) {
    return absl::InvalidArgumentError("invalid JSON: nested too deeply");
  }
  switch (json.type()) {
    case Json::value_t::null:
      return YAML::Node(YAML::NodeType::Null);
    case Json::value_t::string:
      return YAML::Node(json.get<std::string>());
    case Json::value_t::array: {
      YAML::Node sequence(YAML::NodeType::Sequence);
      for (const Json& item : json) {
        DISCOVERY_ASSIGN_OR_RETURN(YAML::Node node, JsonToYaml(item, depth + 1));
        sequence.push_back(node);
      }
      return sequence;
    }
    case Json::value_t::object: {
      YAML::Node mapping(YAML::NodeType::Map);
      for (const auto& item : json.items()) {
        DISCOVERY_ASSIGN_OR_RETURN(YAML::Node node, JsonToYaml(item.value(), depth + 1));
        mapping[item.key()] = node;
      }
      return mapping;
    }
    default:
      return YAML::Node(json.dump());
  }
}

std::string YamlError(const YAML::Exception& e) {
  if (e.mark.is_null()) {
    return "invalid YAML: " + e.msg;
  }
  return fmt::format("invalid YAML at line {}, column {}: {}", e.mark.line + 1, e.mark.column + 1,
                     e.msg);
}

// A leading '[' is JSON or a YAML flow sequence: JSON is tried first because yaml-cpp rejects
// some valid JSON (surrogate pair escapes). If neither parses, the JSON error is reported, as the
// file was most likely written by `service list -o json`.
absl::StatusOr<YAML::Node> LoadDocument(std::string_view content) {
  std::string json_error;
  const size_t start = content.find_first_not_of(" \t\r\n");
  if (start != std::string_view::npos && content[start] == '[') {
    try {
      return JsonToYaml(Json::parse(content));
    } catch (const Json::exception& e) {
      // Drops the "[json.exception.parse_error.101] " prefix.
      const std::string_view what = e.what();
      const size_t prefix_end = what.find("] ");
      json_error =
          "invalid JSON: " +
          std::string(prefix_end == std::string_view::npos ? what : what.substr(prefix_end + 2));
    }
  }
  try {
    return YAML::Load(std::string(content));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(json_error.empty() ? YamlError(e) : json_error);
  }
}

}  // namespace

namespace {

// The entries of one document.
absl::StatusOr<std::vector<Service>> ParseEntries(std::string_view content) {
  DISCOVERY_ASSIGN_OR_RETURN(YAML::Node document, LoadDocument(content));
  std::vector<Service> services;
  if (document.IsNull()) {
    return services;
  }
  if (!document.IsSequence()) {
    return TypeError("a list of services", document);
  }
  try {
    for (const YAML::Node& entry : document) {
      absl::StatusOr<Service> service = DecodeService(entry);
      if (!service.ok()) {
        return WithContext(fmt::format("entry {}", services.size() + 1), service.status());
      }
      services.push_back(*std::move(service));
    }
  } catch (const YAML::Exception& e) {
    // Defensive: the decoders use only non-throwing accessors.
    return absl::InvalidArgumentError(YamlError(e));
  }
  return services;
}

// Below this a file is parsed in one piece.
constexpr size_t kMinSplitBytes = 1 << 20;

// A top-level block sequence, as `service list -o yaml` prints it, cut into `parts` pieces of
// whole entries, each a block sequence itself: every line that starts at the left margin starts
// an entry ("- " or a lone "-"); an entry's other lines are indented. Empty when the content is
// anything else (JSON, comments, documents markers or directives at the margin, a mapping), which
// is parsed in one piece.
std::vector<std::string_view> SplitTopLevelSequence(std::string_view content, size_t parts) {
  std::vector<size_t> entry_starts;
  for (size_t line = 0; line < content.size();) {
    size_t end = content.find('\n', line);
    end = end == std::string_view::npos ? content.size() : end + 1;
    const std::string_view text = content.substr(line, end - line);
    const char first = text.front();
    if (first != ' ' && first != '\n' && first != '\r') {
      const bool entry = text.starts_with("- ") || text == "-\n" || text == "-\r\n" || text == "-";
      if (!entry) {
        return {};
      }
      entry_starts.push_back(line);
    }
    line = end;
  }
  if (entry_starts.empty() || entry_starts.front() != content.find_first_not_of(" \r\n") ||
      parts < 2) {
    return {};
  }
  std::vector<std::string_view> pieces;
  const size_t per_part = (entry_starts.size() + parts - 1) / parts;
  for (size_t first = 0; first < entry_starts.size(); first += per_part) {
    const size_t begin = first == 0 ? 0 : entry_starts[first];
    const size_t end =
        first + per_part < entry_starts.size() ? entry_starts[first + per_part] : content.size();
    pieces.push_back(content.substr(begin, end - begin));
  }
  return pieces;
}

}  // namespace

absl::StatusOr<std::vector<Service>> ParseServiceImport(std::string_view content) {
  // yaml-cpp reads only a few MB a second: a large file is read in pieces on every core (on one,
  // reading a backup of 50,000 services took 8 s of a 27 s import).
  const size_t cores = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 8);
  const std::vector<std::string_view> pieces = content.size() < kMinSplitBytes
                                                   ? std::vector<std::string_view>{}
                                                   : SplitTopLevelSequence(content, cores);
  if (pieces.size() < 2) {
    return ParseEntries(content);
  }
  std::vector<absl::StatusOr<std::vector<Service>>> parsed(pieces.size());
  {
    std::vector<std::jthread> threads;
    for (size_t i = 0; i < pieces.size(); ++i) {
      threads.emplace_back([&, i] { parsed[i] = ParseEntries(pieces[i]); });
    }
  }
  std::vector<Service> services;
  for (absl::StatusOr<std::vector<Service>>& piece : parsed) {
    if (!piece.ok()) {
      // The error as the whole file gives it: entry numbers and lines counted from its start.
      return ParseEntries(content);
    }
    services.insert(services.end(), std::make_move_iterator(piece->begin()),
                    std::make_move_iterator(piece->end()));
  }
  return services;
}

}  // namespace discovery::client_format
