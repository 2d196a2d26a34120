#include "repo/codec.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/time/civil_time.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

#include "common/format.h"
#include "common/json_string.h"
#include "common/status_macros.h"

namespace discovery::repo {
namespace {

using Json = nlohmann::ordered_json;

std::string Dump(const Json& json) {
  // Labels and names are validated as UTF-8 before they are stored; replacing rather than
  // throwing keeps a record that bypassed validation (written by another tool) encodable.
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Json LabelsJson(const Labels& labels) {
  Json object = Json::object();
  for (const auto& [name, value] : labels) {
    object[name] = value;
  }
  return object;
}

// Reads the fields of one document, remembering the first type error.
class Reader {
 public:
  explicit Reader(const Json& json) : json_(json) {}

  std::string String(const char* field) {
    const Json* value = Find(field);
    if (value == nullptr) {
      return "";
    }
    if (!value->is_string()) {
      Fail(field, "a string");
      return "";
    }
    return value->get<std::string>();
  }

  int64_t Int(const char* field) {
    const Json* value = Find(field);
    if (value == nullptr) {
      return 0;
    }
    if (!value->is_number_integer()) {
      Fail(field, "an integer");
      return 0;
    }
    return value->get<int64_t>();
  }

  Labels StringMap(const char* field) {
    Labels labels;
    const Json* value = Find(field);
    if (value == nullptr) {
      return labels;
    }
    if (!value->is_object()) {
      Fail(field, "an object of strings");
      return labels;
    }
    for (const auto& [name, item] : value->items()) {
      if (!item.is_string()) {
        Fail(field, "an object of strings");
        return labels;
      }
      labels[name] = item.get<std::string>();
    }
    return labels;
  }

  std::vector<std::string> StringList(const char* field) {
    std::vector<std::string> list;
    const Json* value = Find(field);
    if (value == nullptr) {
      return list;
    }
    if (!value->is_array()) {
      Fail(field, "an array of strings");
      return list;
    }
    for (const auto& item : *value) {
      if (!item.is_string()) {
        Fail(field, "an array of strings");
        return list;
      }
      list.push_back(item.get<std::string>());
    }
    return list;
  }

  absl::Time Time(const char* field) {
    const std::string text = String(field);
    if (text.empty()) {
      return absl::UnixEpoch();
    }
    absl::StatusOr<absl::Time> time = ParseTimestamp(text);
    if (!time.ok()) {
      if (status_.ok()) {
        status_ =
            absl::DataLossError(fmt::format("field \"{}\": {}", field, time.status().message()));
      }
      return absl::UnixEpoch();
    }
    return *time;
  }

  const absl::Status& status() const { return status_; }

 private:
  // Go's decoder treats null like an absent field.
  const Json* Find(const char* field) const {
    auto it = json_.find(field);
    if (it == json_.end() || it->is_null()) {
      return nullptr;
    }
    return &*it;
  }

  void Fail(const char* field, const char* expected) {
    if (status_.ok()) {
      status_ = absl::DataLossError(fmt::format("field \"{}\" is not {}", field, expected));
    }
  }

  const Json& json_;
  absl::Status status_;
};

absl::StatusOr<Json> ParseObject(std::string_view text, std::string_view what) {
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::DataLossError(fmt::format("{} document is not valid JSON", what));
  }
  if (!json.is_object()) {
    return absl::DataLossError(fmt::format("{} document is not a JSON object", what));
  }
  return json;
}

absl::Status Annotate(const absl::Status& status, std::string_view what) {
  return {status.code(), fmt::format("{} document: {}", what, status.message())};
}

}  // namespace

std::string FormatTimestamp(absl::Time time) {
  // Written for every record; absl::FormatTime interprets its format and converts through a
  // time zone each time, most of a timestamp's cost. Years of four digits (every real one) are
  // written here from std::chrono's calendar date, the rest by absl (a longer, shorter or
  // negative year, the infinite times).
  using std::chrono::days;
  using std::chrono::sys_days;
  using std::chrono::sys_seconds;
  using std::chrono::year;
  constexpr sys_seconds kFirst = sys_days{year{1000} / 1 / 1};
  constexpr sys_seconds kEnd = sys_days{year{10000} / 1 / 1};
  const sys_seconds second{std::chrono::seconds{absl::ToUnixSeconds(time)}};  // floored
  if (second < kFirst || second >= kEnd) {
    return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", time, absl::UTCTimeZone());
  }
  const sys_days day = std::chrono::floor<days>(second);
  const std::chrono::year_month_day date{day};
  const std::chrono::hh_mm_ss of_day{second - day};
  int64_t nanos =
      absl::ToInt64Nanoseconds(time - absl::FromUnixSeconds(second.time_since_epoch().count()));

  std::string text = "0000-00-00T00:00:00";
  auto put = [&text](size_t end, int64_t value, int digits) {
    for (; digits > 0; --digits, value /= 10) {
      text[--end] = static_cast<char>('0' + value % 10);
    }
  };
  put(4, static_cast<int>(date.year()), 4);
  put(7, static_cast<unsigned>(date.month()), 2);
  put(10, static_cast<unsigned>(date.day()), 2);
  put(13, of_day.hours().count(), 2);
  put(16, of_day.minutes().count(), 2);
  put(19, of_day.seconds().count(), 2);
  if (nanos != 0) {
    // %E*S: the fraction's digits up to the last that is not zero.
    int digits = 9;
    while (nanos % 10 == 0) {
      nanos /= 10;
      --digits;
    }
    text.push_back('.');
    text.append(static_cast<size_t>(digits), '0');
    put(text.size(), nanos, digits);
  }
  text.push_back('Z');
  return text;
}

namespace {

// The form FormatTimestamp writes (and Go writes), "YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z" with every
// field in range, read without absl's general parser (a tenth of a load's work). nullopt for
// anything else, which ParseTimestamp leaves to absl.
std::optional<absl::Time> ParseUtcTimestamp(std::string_view text) {
  auto digits = [text](size_t at, size_t count, int& value) {
    value = 0;
    for (size_t i = at; i < at + count; ++i) {
      if (i >= text.size() || text[i] < '0' || text[i] > '9') {
        return false;
      }
      value = value * 10 + (text[i] - '0');
    }
    return true;
  };
  int year = 0;
  int month = 0;
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  if (text.size() < 20 || !digits(0, 4, year) || text[4] != '-' || !digits(5, 2, month) ||
      text[7] != '-' || !digits(8, 2, day) || text[10] != 'T' || !digits(11, 2, hour) ||
      text[13] != ':' || !digits(14, 2, minute) || text[16] != ':' || !digits(17, 2, second) ||
      text.back() != 'Z') {
    return std::nullopt;
  }
  int64_t nanos = 0;
  if (text.size() > 20) {
    const size_t fraction = text.size() - 21;  // between '.' and 'Z'
    if (text[19] != '.' || fraction < 1 || fraction > 9) {
      return std::nullopt;
    }
    int value = 0;
    if (!digits(20, fraction, value)) {
      return std::nullopt;
    }
    nanos = value;
    for (size_t i = fraction; i < 9; ++i) {
      nanos *= 10;
    }
  }
  if (year < 1 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) {
    return std::nullopt;
  }
  const absl::CivilDay civil_day(year, month, day);
  if (civil_day.month() != month || civil_day.day() != day) {
    return std::nullopt;  // e.g. February 30th, which absl judges
  }
  const absl::CivilSecond civil(year, month, day, hour, minute, second);
  return absl::FromUnixSeconds(civil - absl::CivilSecond(1970, 1, 1, 0, 0, 0)) +
         absl::Nanoseconds(nanos);
}

}  // namespace

absl::StatusOr<absl::Time> ParseTimestamp(std::string_view text) {
  if (std::optional<absl::Time> time = ParseUtcTimestamp(text); time.has_value()) {
    return *time;
  }
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, ToAbsl(text), &time, &error)) {
    return absl::InvalidArgumentError(
        fmt::format("'{}' is not an RFC 3339 timestamp: {}", text, error));
  }
  return time;
}

std::string EncodeNamespace(const Namespace& ns) {
  Json json = Json::object();
  json["name"] = ns.name;
  json["export"] = static_cast<int32_t>(ns.export_config);
  json["modified"] = FormatTimestamp(ns.modified);
  return Dump(json);
}

std::string EncodeServer(const Server& server) {
  Json json = Json::object();
  json["name"] = server.name;
  json["labels"] = server.labels.empty() ? Json(nullptr) : LabelsJson(server.labels);
  json["state"] = static_cast<int64_t>(server.state);
  json["modified"] = FormatTimestamp(server.modified);
  return Dump(json);
}

std::string EncodeService(const Service& service) {
  // Written straight, in the order and with the quoting of EncodeServiceWithDom (the tests hold
  // them to the same bytes): building the DOM was four fifths of encoding a registration.
  std::string json;
  json.reserve(128 + service.id.size() + service.name.size() + service.namespace_name.size() +
               service.endpoint.size() + service.selector.size() + service.description.size());
  json.push_back('{');
  auto key = [&json](std::string_view name) {
    if (json.size() > 1) {
      json.push_back(',');
    }
    json.push_back('"');
    json.append(name);
    json.append("\":");
  };
  auto put_string = [&](std::string_view field, const std::string& value) {
    if (!value.empty()) {
      key(field);
      AppendJsonString(value, json);
    }
  };
  put_string("id", service.id);
  put_string("name", service.name);
  put_string("namespace", service.namespace_name);
  put_string("endpoint", service.endpoint);
  if (!service.labels.empty()) {
    key("labels");
    char separator = '{';
    for (const auto& [name, value] : service.labels) {
      json.push_back(separator);
      separator = ',';
      AppendJsonString(name, json);
      json.push_back(':');
      AppendJsonString(value, json);
    }
    json.push_back('}');
  }
  if (!service.servers.empty()) {
    key("servers");
    char separator = '[';
    for (const std::string& server : service.servers) {
      json.push_back(separator);
      separator = ',';
      AppendJsonString(server, json);
    }
    json.push_back(']');
  }
  put_string("selector", service.selector);
  put_string("description", service.description);
  put_string("modified", FormatTimestamp(service.modified));
  if (service.HasTtl()) {
    put_string("ttl", absl::FormatDuration(service.ttl));
    put_string("expires", FormatTimestamp(service.expires));
  }
  json.push_back('}');
  return json;
}

std::string internal::EncodeServiceWithDom(const Service& service) {
  Json json = Json::object();
  auto put_string = [&json](const char* field, const std::string& value) {
    if (!value.empty()) {
      json[field] = value;
    }
  };
  put_string("id", service.id);
  put_string("name", service.name);
  put_string("namespace", service.namespace_name);
  put_string("endpoint", service.endpoint);
  if (!service.labels.empty()) {
    json["labels"] = LabelsJson(service.labels);
  }
  if (!service.servers.empty()) {
    json["servers"] = service.servers;
  }
  put_string("selector", service.selector);
  put_string("description", service.description);
  json["modified"] = FormatTimestamp(service.modified);
  // Only for registrations with a TTL, so that records without one stay byte for byte what the
  // Go original and earlier releases write; both ignore the fields they do not know.
  if (service.HasTtl()) {
    json["ttl"] = absl::FormatDuration(service.ttl);
    json["expires"] = FormatTimestamp(service.expires);
  }
  return Dump(json);
}

std::string EncodePlacementSettings(const placement::Settings& settings) {
  Json json = Json::object();
  json["algorithm"] = placement::AlgorithmName(settings.algorithm);
  json["replicas"] = settings.replicas;
  return Dump(json);
}

std::string EncodeRevocation(const TokenRevocation& revocation) {
  Json json = Json::object();
  json["id"] = revocation.id;
  json["revoked_at"] = FormatTimestamp(revocation.revoked_at);
  json["revoked_by"] = revocation.revoked_by;
  return Dump(json);
}

absl::StatusOr<TokenRevocation> DecodeRevocation(std::string_view json) {
  DISCOVERY_ASSIGN_OR_RETURN(Json document, ParseObject(json, "token revocation"));
  Reader reader(document);
  TokenRevocation revocation{.id = reader.String("id"), .revoked_by = reader.String("revoked_by")};
  const std::string revoked_at = reader.String("revoked_at");
  if (!reader.status().ok()) {
    return Annotate(reader.status(), "token revocation");
  }
  if (revocation.id.empty()) {
    return absl::DataLossError("token revocation: no id");
  }
  absl::StatusOr<absl::Time> at = ParseTimestamp(revoked_at);
  if (!at.ok()) {
    return absl::DataLossError(
        fmt::format("token revocation: revoked_at: {}", at.status().message()));
  }
  revocation.revoked_at = *at;
  return revocation;
}

absl::StatusOr<placement::Settings> DecodePlacementSettings(std::string_view json) {
  DISCOVERY_ASSIGN_OR_RETURN(Json document, ParseObject(json, "placement settings"));
  Reader reader(document);
  const std::string algorithm = reader.String("algorithm");
  const int64_t replicas = reader.Int("replicas");
  if (!reader.status().ok()) {
    return Annotate(reader.status(), "placement settings");
  }
  absl::StatusOr<placement::Algorithm> parsed = placement::ParseAlgorithm(algorithm);
  if (!parsed.ok()) {
    return absl::DataLossError(fmt::format("placement settings: {}", parsed.status().message()));
  }
  placement::Settings settings{
      .algorithm = *parsed,
      .replicas = static_cast<int>(std::clamp<int64_t>(replicas, 0, 1 << 20))};
  if (absl::Status valid = placement::Validate(settings); !valid.ok()) {
    return absl::DataLossError(fmt::format("placement settings: {}", valid.message()));
  }
  return settings;
}

absl::StatusOr<Namespace> DecodeNamespace(std::string_view json) {
  DISCOVERY_ASSIGN_OR_RETURN(Json document, ParseObject(json, "namespace"));
  Reader reader(document);
  Namespace ns;
  ns.name = reader.String("name");
  ns.export_config = static_cast<ExportConfig>(reader.Int("export"));
  ns.modified = reader.Time("modified");
  if (!reader.status().ok()) {
    return Annotate(reader.status(), "namespace");
  }
  return ns;
}

absl::StatusOr<Server> DecodeServer(std::string_view json) {
  DISCOVERY_ASSIGN_OR_RETURN(Json document, ParseObject(json, "server"));
  Reader reader(document);
  Server server;
  server.name = reader.String("name");
  server.labels = reader.StringMap("labels");
  server.state = static_cast<ServerState>(reader.Int("state"));
  server.modified = reader.Time("modified");
  if (!reader.status().ok()) {
    return Annotate(reader.status(), "server");
  }
  return server;
}

namespace internal {

absl::StatusOr<absl::Duration> ParseTtl(std::string_view text) {
  absl::Duration ttl;
  if (!absl::ParseDuration(std::string(text), &ttl) || ttl <= absl::ZeroDuration() ||
      ttl == absl::InfiniteDuration()) {
    return absl::DataLossError(
        fmt::format(R"(service document: field "ttl": "{}" is not a positive duration)", text));
  }
  return ttl;
}

absl::StatusOr<Service> DecodeServiceWithDom(std::string_view json) {
  DISCOVERY_ASSIGN_OR_RETURN(Json document, ParseObject(json, "service"));
  Reader reader(document);
  Service service;
  service.id = reader.String("id");
  service.name = reader.String("name");
  service.namespace_name = reader.String("namespace");
  service.endpoint = reader.String("endpoint");
  service.labels = reader.StringMap("labels");
  service.servers = reader.StringList("servers");
  service.selector = reader.String("selector");
  service.description = reader.String("description");
  service.modified = reader.Time("modified");
  const std::string ttl = reader.String("ttl");
  const absl::Time expires = reader.Time("expires");
  if (!reader.status().ok()) {
    return Annotate(reader.status(), "service");
  }
  if (!ttl.empty()) {
    DISCOVERY_ASSIGN_OR_RETURN(absl::Duration parsed, internal::ParseTtl(ttl));
    service.ttl = parsed;
    service.expires = expires;
  }
  return service;
}

}  // namespace internal

}  // namespace discovery::repo
