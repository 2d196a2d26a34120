// Where a call comes from, for the audit trail: the transport's peer, or behind a load balancer
// the client that X-Forwarded-For names, believed only when the peer is a configured trusted
// proxy (--trusted-proxies), since anybody else can write that header.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace discovery::api {

// An IPv4 or IPv6 network, e.g. 10.0.0.0/8 or fd00::/8. IPv4 addresses are held as
// IPv4-mapped IPv6 (::ffff:a.b.c.d), so that one comparison serves both families.
struct Cidr {
  std::array<uint8_t, 16> network{};
  int prefix_bits = 0;  // of the 128-bit form

  friend bool operator==(const Cidr&, const Cidr&) = default;
};

// Parses "a.b.c.d/n", "x::y/n" or a single address (a /32 or /128). InvalidArgument otherwise.
absl::StatusOr<Cidr> ParseCidr(std::string_view text);
// Parses a comma-separated list (spaces around items allowed; "" is the empty list).
absl::StatusOr<std::vector<Cidr>> ParseCidrs(std::string_view text);

// The address of a peer as the transports write it: "ip:port", "[ip]:port", gRPC's
// "ipv4:ip:port" and "ipv6:[ip]:port", or a bare address; "" when it holds none (e.g. a Unix
// socket).
std::string PeerAddress(std::string_view peer);

// Whether `address` (a bare IPv4 or IPv6 address) lies in one of `networks`.
bool InNetworks(std::string_view address, const std::vector<Cidr>& networks);

// The client of a call from `peer` (as the transport wrote it) carrying `forwarded_for` (the
// X-Forwarded-For value, "" when absent): the peer's address, unless the peer is trusted, in
// which case the X-Forwarded-For entries are walked from the right (the one the trusted peer
// appended) past trusted proxies, and the first untrusted (or left-most) entry is the client.
// A malformed entry stops the walk at the last address known. Thread-safe.
std::string ClientAddress(std::string_view peer, std::string_view forwarded_for,
                          const std::vector<Cidr>& trusted_proxies);

}  // namespace discovery::api
