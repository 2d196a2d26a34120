#include "api/convert.h"

#include <cstdint>
#include <utility>

namespace discovery::api {
namespace {

// 9999-12-31T23:59:59Z, the last second a Timestamp can hold.
constexpr int64_t kMaxTimestampUnixSeconds = 253402300799;
constexpr int32_t kMaxTimestampNanos = 999999999;

}  // namespace

google::protobuf::Timestamp TimestampToProto(absl::Time time) {
  google::protobuf::Timestamp out;
  if (time < GoZeroTime()) {
    out.set_seconds(kGoZeroTimeUnixSeconds);
    return out;
  }
  if (time >= absl::FromUnixSeconds(kMaxTimestampUnixSeconds + 1)) {
    out.set_seconds(kMaxTimestampUnixSeconds);
    out.set_nanos(kMaxTimestampNanos);
    return out;
  }
  // ToUnixSeconds rounds toward the past, so the rest is in [0s, 1s).
  const int64_t seconds = absl::ToUnixSeconds(time);
  const absl::Duration rest = time - absl::FromUnixSeconds(seconds);
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(rest)));
  return out;
}

absl::Time TimestampFromProto(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) + absl::Nanoseconds(timestamp.nanos());
}

Labels LabelsFromProto(const google::protobuf::Map<std::string, std::string>& labels) {
  return {labels.begin(), labels.end()};
}

void LabelsToProto(const Labels& labels, google::protobuf::Map<std::string, std::string>* out) {
  out->clear();
  out->insert(labels.begin(), labels.end());
}

pb::Namespace ToProto(const Namespace& ns) {
  pb::Namespace out;
  out.set_name(ns.name);
  out.set_export_(static_cast<int32_t>(ns.export_config));
  *out.mutable_modified() = TimestampToProto(ns.modified);
  return out;
}

Namespace FromProto(const pb::Namespace& ns) {
  return Namespace{
      .name = ns.name(),
      .export_config = static_cast<ExportConfig>(ns.export_()),
      .modified = TimestampFromProto(ns.modified()),
  };
}

pb::Server ToProto(const Server& server) {
  pb::Server out;
  out.set_name(server.name);
  LabelsToProto(server.labels, out.mutable_labels());
  *out.mutable_modified() = TimestampToProto(server.modified);
  out.set_state(static_cast<int64_t>(server.state));
  return out;
}

Server FromProto(const pb::Server& server) {
  return Server{
      .name = server.name(),
      .labels = LabelsFromProto(server.labels()),
      .state = static_cast<ServerState>(server.state()),
      .modified = TimestampFromProto(server.modified()),
  };
}

pb::Service ToProto(const Service& service) {
  pb::Service out;
  out.set_id(service.id);
  out.set_name(service.name);
  out.set_endpoint(service.endpoint);
  out.set_namespace_(service.namespace_name);
  out.set_selector(service.selector);
  out.mutable_servers()->Add(service.servers.begin(), service.servers.end());
  LabelsToProto(service.labels, out.mutable_labels());
  out.set_description(service.description);
  *out.mutable_modified() = TimestampToProto(service.modified);
  if (service.HasTtl()) {
    *out.mutable_ttl() = DurationToProto(service.ttl);
    *out.mutable_expires() = TimestampToProto(service.expires);
  }
  return out;
}

google::protobuf::Duration DurationToProto(absl::Duration duration) {
  google::protobuf::Duration out;
  const int64_t seconds = absl::IDivDuration(duration, absl::Seconds(1), &duration);
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(duration)));
  return out;
}

absl::Duration DurationFromProto(const google::protobuf::Duration& duration) {
  return absl::Seconds(duration.seconds()) + absl::Nanoseconds(duration.nanos());
}

Service FromProto(const pb::Service& service) {
  Service out{
      .id = service.id(),
      .name = service.name(),
      .namespace_name = service.namespace_(),
      .endpoint = service.endpoint(),
      .selector = service.selector(),
      .servers = std::vector<std::string>(service.servers().begin(), service.servers().end()),
      .labels = LabelsFromProto(service.labels()),
      .description = service.description(),
      .modified = TimestampFromProto(service.modified()),
  };
  if (service.has_ttl()) {
    out.ttl = DurationFromProto(service.ttl());
    out.expires = TimestampFromProto(service.expires());
  }
  return out;
}

pb::InvalidService ToProto(const InvalidService& invalid) {
  pb::InvalidService out;
  *out.mutable_service() = ToProto(invalid.service);
  out.set_reason(invalid.reason);
  return out;
}

InvalidService FromProto(const pb::InvalidService& invalid) {
  return InvalidService{.service = FromProto(invalid.service()), .reason = invalid.reason()};
}

pb::TargetGroup ToProto(const targetgroup::TargetGroup& group) {
  pb::TargetGroup out;
  out.mutable_targets()->Add(group.targets.begin(), group.targets.end());
  LabelsToProto(group.labels, out.mutable_labels());
  return out;
}

targetgroup::TargetGroup FromProto(const pb::TargetGroup& group) {
  return targetgroup::TargetGroup{
      .targets = std::vector<std::string>(group.targets().begin(), group.targets().end()),
      .labels = LabelsFromProto(group.labels()),
  };
}

google::protobuf::Timestamp TokenExpiryToProto(std::optional<absl::Time> expires_at) {
  return TimestampToProto(expires_at.value_or(GoZeroTime()));
}

std::optional<absl::Time> TokenExpiryFromProto(const google::protobuf::Timestamp& expires_at) {
  if (expires_at.seconds() == kGoZeroTimeUnixSeconds && expires_at.nanos() == 0) {
    return std::nullopt;
  }
  return TimestampFromProto(expires_at);
}

pb::TokenInfo TokenInfoToProto(std::string id, std::vector<std::string> namespaces,
                               std::optional<absl::Time> expires_at) {
  pb::TokenInfo out;
  out.set_id(std::move(id));
  for (std::string& name : namespaces) {
    out.add_namespaces(std::move(name));
  }
  *out.mutable_expires_at() = TokenExpiryToProto(expires_at);
  return out;
}

}  // namespace discovery::api
