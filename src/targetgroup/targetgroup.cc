#include "targetgroup/targetgroup.h"

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "common/format.h"
#include "common/go_quote.h"
#include "common/hex.h"
#include "common/status_macros.h"
#include "model/endpoint.h"
#include "model/model.h"

namespace discovery::targetgroup {
namespace {

TargetGroup Standard(const Service& service, const Endpoint& endpoint) {
  TargetGroup group;
  group.targets = {endpoint.host()};
  group.labels["job"] = service.name;
  group.labels["instance"] = endpoint.host();
  group.labels["__scheme__"] = endpoint.scheme();
  std::string_view path = endpoint.path();
  while (!path.empty() && path.back() == '/') {
    path.remove_suffix(1);
  }
  group.labels["__metrics_path__"] = std::string(path);
  // Keys may repeat; the first value of each key wins (Go's url.Values.Get), and try_emplace
  // keeps it.
  for (auto& [key, value] : endpoint.QueryParams()) {
    group.labels.try_emplace("__param_" + key, std::move(value));
  }
  return group;
}

absl::StatusOr<Endpoint> ParseStoredEndpoint(const Service& service) {
  absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(service.endpoint);
  if (!endpoint.ok()) {
    return absl::InvalidArgumentError(fmt::format("service {} has an invalid endpoint \"{}\": {}",
                                                  service.id, service.endpoint,
                                                  endpoint.status().message()));
  }
  return endpoint;
}

// The group of `service` for a config other than kDisabled.
TargetGroup Build(const Service& service, const Endpoint& endpoint, ExportConfig config) {
  TargetGroup group;
  if (config == ExportConfig::kBlackbox) {
    group.targets = {endpoint.String()};
  } else {
    group = Standard(service, endpoint);
  }
  for (const auto& [name, value] : service.labels) {
    group.labels.insert_or_assign(name, value);
  }
  return group;
}

struct JsonStyle {
  // Go encoding/json: escape '<', '>', '&' (HTML-safe) and U+2028, U+2029.
  bool go_escaping = false;
  // Go `omitempty`: leave out empty "targets" and "labels".
  bool omit_empty = false;
};

// Appends `text` as a JSON string literal, escaping as Go's encoding/json does (when
// `style.go_escaping`) or minimally; each invalid UTF-8 byte is one \ufffd, as Go writes it. '\b'
// and '\f' get their short escapes as in Go 1.22 and later (older Go wrote \u0008 and \u000c; both
// decode to the same string).
void AppendString(std::string_view text, const JsonStyle& style, std::string& out) {
  AppendGoQuoted(
      text, out,
      [&style](char32_t cp, std::string_view bytes, std::string& quoted) {
        if (cp < 0x20 || (style.go_escaping &&
                          (cp == '<' || cp == '>' || cp == '&' || cp == 0x2028 || cp == 0x2029))) {
          quoted += "\\u";
          AppendLowerHex(cp, 4, quoted);
        } else {
          quoted += bytes;
        }
      },
      [](unsigned char /*byte*/, std::string& quoted) { quoted += "\\ufffd"; });
}

std::string ToJson(const std::vector<TargetGroup>& groups, const JsonStyle& style) {
  std::string out = "[";
  for (size_t g = 0; g < groups.size(); ++g) {
    const TargetGroup& group = groups[g];
    if (g > 0) {
      out.push_back(',');
    }
    out.push_back('{');
    bool need_comma = false;
    if (!style.omit_empty || !group.targets.empty()) {
      out += "\"targets\":[";
      for (size_t t = 0; t < group.targets.size(); ++t) {
        if (t > 0) {
          out.push_back(',');
        }
        AppendString(group.targets[t], style, out);
      }
      out.push_back(']');
      need_comma = true;
    }
    if (!style.omit_empty || !group.labels.empty()) {
      if (need_comma) {
        out.push_back(',');
      }
      out += "\"labels\":{";
      bool first = true;
      // Labels is a std::map, so names come out sorted (byte order, as Go sorts map keys).
      for (const auto& [name, value] : group.labels) {
        if (!first) {
          out.push_back(',');
        }
        first = false;
        AppendString(name, style, out);
        out.push_back(':');
        AppendString(value, style, out);
      }
      out.push_back('}');
    }
    out.push_back('}');
  }
  out.push_back(']');
  return out;
}

}  // namespace

absl::StatusOr<TargetGroup> FromService(const Service& service, ExportConfig config) {
  if (config == ExportConfig::kDisabled) {
    return TargetGroup{};
  }
  DISCOVERY_ASSIGN_OR_RETURN(Endpoint endpoint, ParseStoredEndpoint(service));
  return Build(service, endpoint, config);
}

TargetGroup FromService(const Service& service, const Endpoint& endpoint, ExportConfig config) {
  if (config == ExportConfig::kDisabled) {
    return TargetGroup{};
  }
  return Build(service, endpoint, config);
}

std::vector<TargetGroup> FromServices(const std::vector<Service>& services, ExportConfig config,
                                      std::vector<absl::Status>* skipped) {
  std::vector<const Service*> pointers;
  pointers.reserve(services.size());
  for (const Service& service : services) {
    pointers.push_back(&service);
  }
  return FromServices(pointers, config, skipped);
}

std::vector<TargetGroup> FromServices(const std::vector<const Service*>& services,
                                      ExportConfig config, std::vector<absl::Status>* skipped) {
  if (config == ExportConfig::kDisabled) {
    return std::vector<TargetGroup>{};
  }
  struct Entry {
    std::string endpoint;
    const Service* service;
    TargetGroup group;
  };
  std::vector<Entry> entries;
  entries.reserve(services.size());
  for (const Service* service : services) {
    absl::StatusOr<Endpoint> endpoint = ParseStoredEndpoint(*service);
    if (!endpoint.ok()) {
      if (skipped != nullptr) {
        skipped->push_back(endpoint.status());
      }
      continue;
    }
    entries.push_back({endpoint->String(), service, Build(*service, *endpoint, config)});
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.endpoint, a.service->namespace_name, a.service->name, a.service->id) <
           std::tie(b.endpoint, b.service->namespace_name, b.service->name, b.service->id);
  });
  std::vector<TargetGroup> groups;
  groups.reserve(entries.size());
  for (Entry& entry : entries) {
    groups.push_back(std::move(entry.group));
  }
  return groups;
}

std::string ToHttpSdJson(const std::vector<TargetGroup>& groups) {
  return ToJson(groups, JsonStyle{.go_escaping = false, .omit_empty = false});
}

std::string ToFileSdJson(const std::vector<TargetGroup>& groups) {
  return ToJson(groups, JsonStyle{.go_escaping = true, .omit_empty = true});
}

}  // namespace discovery::targetgroup
