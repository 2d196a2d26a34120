// JSON documents of namespaces, servers and services exactly as the Go original stores them in
// etcd (docs/decisions.md D26), so a store written by the original is read as-is and vice versa.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "model/model.h"
#include "placement/placement.h"

namespace discovery::repo {

// Go's time.Time JSON form: RFC 3339 with nanoseconds, trailing zeros trimmed, UTC as "Z".
std::string FormatTimestamp(absl::Time time);
// Any RFC 3339 timestamp (offset or "Z", optional fraction); InvalidArgument otherwise.
absl::StatusOr<absl::Time> ParseTimestamp(std::string_view text);

// {"name","export","modified"}
std::string EncodeNamespace(const Namespace& ns);
// {"name","labels" (null when empty),"state","modified"}
std::string EncodeServer(const Server& server);
// {"id","name","namespace","endpoint","labels","servers","selector","description","modified"},
// empty fields omitted except "modified".
std::string EncodeService(const Service& service);

// {"algorithm":"rendezvous"|"jump","replicas":n}; our own document (the original kept these in
// flags only), stored at Keys::PlacementSettings().
std::string EncodePlacementSettings(const placement::Settings& settings);

// A machine token revoked before its expiry; every replica refuses it from then on.
struct TokenRevocation {
  std::string id;          // the token's `jti`
  absl::Time revoked_at;   // when
  std::string revoked_by;  // "<kind>:<name>" of the principal who revoked it

  friend bool operator==(const TokenRevocation&, const TokenRevocation&) = default;
};

// {"id","revoked_at","revoked_by"}; our own document, stored at Keys::RevokedToken(id).
std::string EncodeRevocation(const TokenRevocation& revocation);

// Decoders accept what Go's encoding/json accepts for these documents: unknown fields are
// ignored, absent fields keep their zero value. DataLoss with the reason when the document is
// not JSON or a field has the wrong type.
absl::StatusOr<Namespace> DecodeNamespace(std::string_view json);
absl::StatusOr<Server> DecodeServer(std::string_view json);
absl::StatusOr<Service> DecodeService(std::string_view json);
// Also DataLoss for an unknown algorithm or replicas < 1.
absl::StatusOr<placement::Settings> DecodePlacementSettings(std::string_view json);
// Also DataLoss for an empty id or an unparsable revoked_at.
absl::StatusOr<TokenRevocation> DecodeRevocation(std::string_view json);

namespace internal {
// DecodeService through a JSON DOM: the straightforward reading of the document, kept as the
// reference that the streaming DecodeService is tested against.
absl::StatusOr<Service> DecodeServiceWithDom(std::string_view json);
// EncodeService through a JSON DOM: the same bytes, built the straightforward way, kept as the
// reference that the direct EncodeService is tested against.
std::string EncodeServiceWithDom(const Service& service);
// The "ttl" of a service document, a duration as absl::FormatDuration writes it ("1m30s"); both
// service decoders read it so.
absl::StatusOr<absl::Duration> ParseTtl(std::string_view text);
}  // namespace internal

}  // namespace discovery::repo
