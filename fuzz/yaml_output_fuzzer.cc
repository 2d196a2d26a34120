// Fuzzes the YAML and JSON printers of the CLI's `list` commands (client_format/output.h) with
// arbitrary strings in every field a server, namespace or service has: the registry stores what
// tokens registered, so names, labels, selectors and descriptions are input to the printers.
// Invariants, for both formats:
//   - the output parses (yaml-cpp, nlohmann::json) to a list of as many items as were printed;
//   - every string reads back as exactly the string printed, except that invalid UTF-8 reads as
//     U+FFFD (nlohmann's replacement, in both formats) and in YAML so do noncharacters
//     (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF), which yaml-cpp cannot escape;
//   - in YAML, no string is left as a plain scalar that reads as a boolean, null or number;
//   - numbers and timestamps read back as printed, the same in both formats.
//
// Input: the first byte picks the kind of item (servers, namespaces, services) and their state or
// export setting; the rest is fields, each ended by a backslash and a marker character (a
// doubled backslash is one backslash in a field), which keeps seeds readable:
//   servers    name, then labels: `key\=value\,key\=value\;` (a first field not ended by `\=`
//              means no labels)
//   namespaces name
//   services   id, name, namespace, endpoint, selector, description, servers `a\,b\;`
//              (a single empty field means none), labels as above
// repeated until the input ends.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "fuzz_check.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

#include "client_format/output.h"
#include "model/model.h"

namespace {

using ::discovery::Labels;
using ::discovery::client_format::OutputFormat;
using ::discovery::client_format::OutputOptions;
using ::discovery::fuzz::Check;
using Json = nlohmann::json;

class FieldReader {
 public:
  explicit FieldReader(std::string_view input) : input_(input) {}

  bool done() const { return input_.empty(); }

  // The next field and the marker that ended it ('\0' at the end of the input).
  std::pair<std::string, char> Next() {
    std::string field;
    while (!input_.empty()) {
      const char c = input_.front();
      input_.remove_prefix(1);
      if (c != '\\' || input_.empty()) {
        field += c;
        continue;
      }
      const char marker = input_.front();
      input_.remove_prefix(1);
      if (marker == '\\') {
        field += '\\';
        continue;
      }
      return {std::move(field), marker};
    }
    return {std::move(field), '\0'};
  }

  std::string NextString() { return Next().first; }

  Labels NextLabels() {
    Labels labels;
    for (;;) {
      auto [key, key_marker] = Next();
      if (key_marker != '=') {
        return labels;
      }
      auto [value, value_marker] = Next();
      labels.insert_or_assign(std::move(key), std::move(value));
      if (value_marker != ',') {
        return labels;
      }
    }
  }

  std::vector<std::string> NextList() {
    std::vector<std::string> list;
    for (;;) {
      auto [item, marker] = Next();
      if (marker != ',' && item.empty() && list.empty()) {
        return list;
      }
      list.push_back(std::move(item));
      if (marker != ',') {
        return list;
      }
    }
  }

 private:
  std::string_view input_;
};

// The JSON printer's text for `text`: nlohmann's replacement of invalid UTF-8.
std::string ExpectedJson(const std::string& text) {
  return Json::parse(Json(text).dump(-1, ' ', false, Json::error_handler_t::replace))
      .get<std::string>();
}

bool IsNoncharacter(uint32_t code_point) {
  return (code_point >= 0xFDD0 && code_point <= 0xFDEF) || (code_point & 0xFFFE) == 0xFFFE;
}

// The YAML printer's: that, with noncharacters (which yaml-cpp cannot escape) replaced too.
std::string ExpectedYaml(const std::string& text) {
  const std::string json = ExpectedJson(text);
  std::string expected;
  for (size_t i = 0; i < json.size();) {
    const auto byte = static_cast<unsigned char>(json[i]);
    const size_t length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1;
    uint32_t code_point = length == 1 ? byte : byte & (0xFFu >> (length + 1));
    for (size_t j = 1; j < length; ++j) {
      code_point = code_point << 6 | (static_cast<unsigned char>(json[i + j]) & 0x3Fu);
    }
    expected += IsNoncharacter(code_point) ? "\xEF\xBF\xBD" : json.substr(i, length);
    i += length;
  }
  return expected;
}

// ---- YAML ----

// A string printed as YAML: a scalar with the expected text which, when plain (unquoted), no
// YAML reader takes for something other than a string.
void CheckYamlString(const YAML::Node& node, const std::string& printed, const std::string& yaml) {
  Check(node.IsDefined() && node.IsScalar(), "a printed string is a YAML scalar", yaml);
  const std::string expected = ExpectedYaml(printed);
  Check(node.Scalar() == expected, "a printed string reads back the same", node.Scalar());
  if (node.Tag() != "?") {
    return;  // quoted: a string whatever it looks like
  }
  bool boolean = false;
  Check(!YAML::convert<bool>::decode(node, boolean), "a plain string is no boolean", node.Scalar());
  int64_t integer = 0;
  Check(!YAML::convert<int64_t>::decode(node, integer), "a plain string is no integer",
        node.Scalar());
  double number = 0;
  Check(!YAML::convert<double>::decode(node, number), "a plain string is no number", node.Scalar());
}

void CheckYamlLabels(const YAML::Node& node, const Labels& labels, const std::string& yaml) {
  Check(node.IsMap() && node.size() == labels.size(), "labels are a map of as many entries", yaml);
  auto it = labels.begin();
  for (const auto& entry : node) {
    CheckYamlString(entry.first, it->first, yaml);
    CheckYamlString(entry.second, it->second, yaml);
    ++it;
  }
}

// Printed numbers and timestamps: plain scalars with the text the JSON printer gives them.
void CheckYamlSame(const YAML::Node& node, const Json& json, const std::string& yaml) {
  Check(node.IsScalar(), "a printed value is a YAML scalar", yaml);
  const std::string text = json.is_string() ? json.get<std::string>() : json.dump();
  Check(node.Scalar() == text, "a value reads the same in YAML and JSON", node.Scalar());
}

YAML::Node LoadYaml(const std::string& yaml, size_t items) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    Check(false, "the YAML output parses", yaml + "\n" + e.what());
  }
  Check(root.IsSequence() && root.size() == items, "a sequence of the items", yaml);
  return root;
}

// ---- JSON ----

Json LoadJson(const std::string& text, size_t items) {
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  Check(!json.is_discarded(), "the JSON output parses", text);
  Check(json.is_array() && json.size() == items, "an array of the items", text);
  return json;
}

void CheckJsonString(const Json& json, const std::string& printed, const std::string& text) {
  Check(json.is_string() && json.get<std::string>() == ExpectedJson(printed),
        "a printed string reads back the same from JSON", text);
}

void CheckJsonLabels(const Json& json, const Labels& labels, const std::string& text) {
  Check(json.is_object(), "labels are a JSON object", text);
  // Keys that differ only in invalid UTF-8 may collapse into one.
  Labels expected;
  for (const auto& [key, value] : labels) {
    expected.insert_or_assign(ExpectedJson(key), ExpectedJson(value));
  }
  Check(json.size() == expected.size(), "as many labels in JSON", text);
  for (const auto& [key, value] : expected) {
    Check(json.contains(key) && json[key] == value, "a label reads back the same from JSON", text);
  }
}

// Every field is in the JSON, an empty one too (as in the YAML).
void CheckJsonField(const Json& item, const char* key, const std::string& printed,
                    const std::string& text) {
  Check(item.contains(key), "every field is in the JSON", text);
  CheckJsonString(item.at(key), printed, text);
}

// ---- per kind ----

void CheckServers(const std::vector<discovery::Server>& servers) {
  const std::string text = discovery::client_format::FormatServers(
      servers, OutputOptions{.format = OutputFormat::kJson});
  const Json json = LoadJson(text, servers.size());
  const std::string yaml = discovery::client_format::FormatServers(
      servers, OutputOptions{.format = OutputFormat::kYaml});
  const YAML::Node root = LoadYaml(yaml, servers.size());
  for (size_t i = 0; i < servers.size(); ++i) {
    const discovery::Server& server = servers[i];
    const Json& item = json[i];
    CheckJsonString(item.at("name"), server.name, text);
    CheckJsonLabels(item.at("labels"), server.labels, text);  // {} when there are none
    Check(item.at("state") == static_cast<int64_t>(server.state), "the state in JSON", text);

    const YAML::Node node = root[i];
    Check(node.IsMap() && node.size() == 4, "a server is a map of four", yaml);
    CheckYamlString(node["name"], server.name, yaml);
    CheckYamlLabels(node["labels"], server.labels, yaml);
    CheckYamlSame(node["state"], item.at("state"), yaml);
    CheckYamlSame(node["modified"], item.at("modified"), yaml);
  }
}

void CheckNamespaces(const std::vector<discovery::Namespace>& namespaces) {
  const std::string text = discovery::client_format::FormatNamespaces(
      namespaces, OutputOptions{.format = OutputFormat::kJson});
  const Json json = LoadJson(text, namespaces.size());
  const std::string yaml = discovery::client_format::FormatNamespaces(
      namespaces, OutputOptions{.format = OutputFormat::kYaml});
  const YAML::Node root = LoadYaml(yaml, namespaces.size());
  for (size_t i = 0; i < namespaces.size(); ++i) {
    const discovery::Namespace& ns = namespaces[i];
    const Json& item = json[i];
    CheckJsonString(item.at("name"), ns.name, text);
    Check(item.at("export") == static_cast<int32_t>(ns.export_config), "export in JSON", text);

    const YAML::Node node = root[i];
    Check(node.IsMap() && node.size() == 3, "a namespace is a map of three", yaml);
    CheckYamlString(node["name"], ns.name, yaml);
    CheckYamlSame(node["export"], item.at("export"), yaml);
    CheckYamlSame(node["modified"], item.at("modified"), yaml);
  }
}

void CheckServices(const std::vector<discovery::Service>& services) {
  const std::string text = discovery::client_format::FormatServices(
      services, OutputOptions{.format = OutputFormat::kJson});
  const Json json = LoadJson(text, services.size());
  const std::string yaml = discovery::client_format::FormatServices(
      services, OutputOptions{.format = OutputFormat::kYaml});
  const YAML::Node root = LoadYaml(yaml, services.size());
  for (size_t i = 0; i < services.size(); ++i) {
    const discovery::Service& service = services[i];
    const Json& item = json[i];
    CheckJsonField(item, "id", service.id, text);
    CheckJsonField(item, "name", service.name, text);
    CheckJsonField(item, "namespace", service.namespace_name, text);
    CheckJsonField(item, "endpoint", service.endpoint, text);
    CheckJsonField(item, "selector", service.selector, text);
    CheckJsonField(item, "description", service.description, text);
    Check(item.contains("servers"), "every field is in the JSON", text);
    const Json& json_servers = item.at("servers");
    Check(json_servers.is_array() && json_servers.size() == service.servers.size(),
          "servers are a JSON array", text);
    for (size_t j = 0; j < service.servers.size(); ++j) {
      CheckJsonString(json_servers[j], service.servers[j], text);
    }
    Check(item.contains("labels"), "every field is in the JSON", text);
    CheckJsonLabels(item.at("labels"), service.labels, text);

    const YAML::Node node = root[i];
    Check(node.IsMap() && node.size() == 9, "a service is a map of nine", yaml);
    CheckYamlString(node["id"], service.id, yaml);
    CheckYamlString(node["name"], service.name, yaml);
    CheckYamlString(node["namespace"], service.namespace_name, yaml);
    CheckYamlString(node["endpoint"], service.endpoint, yaml);
    CheckYamlString(node["selector"], service.selector, yaml);
    CheckYamlString(node["description"], service.description, yaml);
    const YAML::Node servers = node["servers"];
    Check(servers.IsSequence() && servers.size() == service.servers.size(),
          "servers are a YAML sequence", yaml);
    for (size_t j = 0; j < service.servers.size(); ++j) {
      CheckYamlString(servers[j], service.servers[j], yaml);
    }
    CheckYamlLabels(node["labels"], service.labels, yaml);
    CheckYamlSame(node["modified"], item.at("modified"), yaml);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const uint8_t kind = data[0];
  FieldReader reader(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  // Fractions of a second vary with the input, for the RFC 3339 text.
  const absl::Time modified =
      absl::FromUnixNanos(1'600'000'000'000'000'000 + static_cast<int64_t>(size) * 12'345'679);
  // Digits, so that seed files stay readable: "0name\=..." prints servers.
  switch (kind % 3) {
    case 0: {
      std::vector<discovery::Server> servers;
      while (!reader.done()) {
        discovery::Server& server = servers.emplace_back();
        server.name = reader.NextString();
        server.labels = reader.NextLabels();
        server.state = static_cast<discovery::ServerState>((kind / 3) % 3);
        server.modified = modified;
      }
      CheckServers(servers);
      break;
    }
    case 1: {
      std::vector<discovery::Namespace> namespaces;
      while (!reader.done()) {
        namespaces.push_back({.name = reader.NextString(),
                              .export_config = static_cast<discovery::ExportConfig>((kind / 3) % 3),
                              .modified = modified});
      }
      CheckNamespaces(namespaces);
      break;
    }
    default: {
      std::vector<discovery::Service> services;
      while (!reader.done()) {
        discovery::Service& service = services.emplace_back();
        service.id = reader.NextString();
        service.name = reader.NextString();
        service.namespace_name = reader.NextString();
        service.endpoint = reader.NextString();
        service.selector = reader.NextString();
        service.description = reader.NextString();
        service.servers = reader.NextList();
        service.labels = reader.NextLabels();
        service.modified = modified;
      }
      CheckServices(services);
      break;
    }
  }
  return 0;
}
