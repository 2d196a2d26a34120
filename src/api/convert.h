// Conversion between the wire messages of postfinance.discovery.v1 and the domain types of
// model/ and targetgroup/. The only place where both meet: handlers above this line speak
// protobuf, everything below it speaks discovery:: values.
//
// Every function is pure and thread-safe, returns a value the caller owns and never fails:
// numbers outside the known enumerators are carried through unchanged, as the Go original
// stores any export/state number it is given.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/map.h"
#include "google/protobuf/timestamp.pb.h"

#include "model/model.h"
#include "postfinance/discovery/v1/namespace.pb.h"
#include "postfinance/discovery/v1/server.pb.h"
#include "postfinance/discovery/v1/service.pb.h"
#include "postfinance/discovery/v1/targetgroup.pb.h"
#include "postfinance/discovery/v1/tokeninfo.pb.h"
#include "targetgroup/targetgroup.h"

namespace discovery::api {

namespace pb = ::postfinance::discovery::v1;

// Go's zero time.Time, 0001-01-01T00:00:00Z (Timestamp seconds -62135596800). TokenAPI/Info
// reports it as expires_at of a token that never expires; Go clients print "never" for exactly
// this value. It is also the smallest instant a Timestamp can hold.
inline constexpr int64_t kGoZeroTimeUnixSeconds = -62135596800;
constexpr absl::Time GoZeroTime() { return absl::FromUnixSeconds(kGoZeroTimeUnixSeconds); }

// `time` as seconds/nanos (nanos in [0, 1e9), sub-nanosecond rest dropped toward the past).
// Instants outside the Timestamp range 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z
// (including absl's infinities) are clamped to its ends, so the result always prints as
// proto3 JSON.
google::protobuf::Timestamp TimestampToProto(absl::Time time);
// seconds + nanos as an absl::Time. A message field that is not set reads as the default
// Timestamp, i.e. the Unix epoch, which is what the Go clients make of a missing timestamp.
absl::Time TimestampFromProto(const google::protobuf::Timestamp& timestamp);

// seconds + nanos of a Duration, in either direction.
google::protobuf::Duration DurationToProto(absl::Duration duration);
absl::Duration DurationFromProto(const google::protobuf::Duration& duration);

// Label maps in either direction; the proto map is replaced, not merged.
Labels LabelsFromProto(const google::protobuf::Map<std::string, std::string>& labels);
void LabelsToProto(const Labels& labels, google::protobuf::Map<std::string, std::string>* out);

// Namespace{name, export (int32 ExportConfig number), modified}.
pb::Namespace ToProto(const Namespace& ns);
Namespace FromProto(const pb::Namespace& ns);

// Server{name, labels, modified, state (int64 ServerState number)}.
pb::Server ToProto(const Server& server);
Server FromProto(const pb::Server& server);

// Service{id, name, endpoint, namespace, selector, servers, labels, description, modified, and
// for a service with a TTL ttl and expires}; the domain's `namespace_name` is the wire's
// `namespace`.
pb::Service ToProto(const Service& service);
Service FromProto(const pb::Service& service);

// InvalidService{service, reason}.
pb::InvalidService ToProto(const InvalidService& invalid);
InvalidService FromProto(const pb::InvalidService& invalid);

// TargetGroup{targets, labels}.
pb::TargetGroup ToProto(const targetgroup::TargetGroup& group);
targetgroup::TargetGroup FromProto(const pb::TargetGroup& group);

// The expires_at of a token: `expires_at` when set, otherwise GoZeroTime() ("never").
google::protobuf::Timestamp TokenExpiryToProto(std::optional<absl::Time> expires_at);
// The inverse: nullopt for exactly GoZeroTime(), the instant otherwise (an unset field reads
// as the Unix epoch, as in the Go clients).
std::optional<absl::Time> TokenExpiryFromProto(const google::protobuf::Timestamp& expires_at);

// TokenInfo{id, namespaces, expires_at} of a machine token; nullopt `expires_at` = never.
pb::TokenInfo TokenInfoToProto(std::string id, std::vector<std::string> namespaces,
                               std::optional<absl::Time> expires_at);

}  // namespace discovery::api
