#include "api/peer.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "fmt/format.h"

#include "common/status_macros.h"

namespace discovery::api {
namespace {

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

// The 128-bit form of a bare IPv4 or IPv6 address; nullopt when it is neither.
std::optional<std::array<uint8_t, 16>> ParseAddress(std::string_view text, bool* v4) {
  const std::string address(text);
  std::array<uint8_t, 16> bytes{};
  in_addr ipv4{};
  if (inet_pton(AF_INET, address.c_str(), &ipv4) == 1) {
    bytes[10] = 0xff;
    bytes[11] = 0xff;
    std::copy_n(reinterpret_cast<const uint8_t*>(&ipv4.s_addr), 4, bytes.begin() + 12);
    if (v4 != nullptr) {
      *v4 = true;
    }
    return bytes;
  }
  in6_addr ipv6{};
  if (inet_pton(AF_INET6, address.c_str(), &ipv6) == 1) {
    std::copy_n(ipv6.s6_addr, 16, bytes.begin());
    if (v4 != nullptr) {
      *v4 = false;
    }
    return bytes;
  }
  return std::nullopt;
}

bool Contains(const Cidr& cidr, const std::array<uint8_t, 16>& address) {
  int bits = cidr.prefix_bits;
  for (size_t i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((address[i] & mask) != (cidr.network[i] & mask)) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<Cidr> ParseCidr(std::string_view text) {
  text = Trim(text);
  const size_t slash = text.find('/');
  bool v4 = false;
  const std::optional<std::array<uint8_t, 16>> address = ParseAddress(text.substr(0, slash), &v4);
  if (!address.has_value()) {
    return absl::InvalidArgumentError(
        fmt::format("\"{}\" is not an IP address or network (a.b.c.d/n, x::y/n)", text));
  }
  const int max_bits = v4 ? 32 : 128;
  int bits = max_bits;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
    if (digits.empty() || error != std::errc() || end != digits.data() + digits.size() ||
        bits < 0 || bits > max_bits) {
      return absl::InvalidArgumentError(
          fmt::format("\"{}\": the prefix length must be 0 to {}", text, max_bits));
    }
  }
  return Cidr{.network = *address, .prefix_bits = v4 ? bits + 96 : bits};
}

absl::StatusOr<std::vector<Cidr>> ParseCidrs(std::string_view text) {
  std::vector<Cidr> networks;
  while (!Trim(text).empty()) {
    const size_t comma = text.find(',');
    DISCOVERY_ASSIGN_OR_RETURN(Cidr cidr, ParseCidr(text.substr(0, comma)));
    networks.push_back(cidr);
    if (comma == std::string_view::npos) {
      break;
    }
    text.remove_prefix(comma + 1);
  }
  return networks;
}

std::string PeerAddress(std::string_view peer) {
  peer = Trim(peer);
  if (peer.starts_with("ipv4:") || peer.starts_with("ipv6:")) {
    peer.remove_prefix(5);
  } else if (peer.starts_with("unix:") || peer.starts_with("unix-abstract:")) {
    return "";
  }
  // URL-encoded brackets, as some gRPC versions write them.
  std::string decoded(peer);
  for (const auto& [from, to] : {std::pair{"%5B", "["}, std::pair{"%5D", "]"}}) {
    for (size_t at = decoded.find(from); at != std::string::npos; at = decoded.find(from)) {
      decoded.replace(at, 3, to);
    }
  }
  std::string_view text = decoded;
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    return close == std::string_view::npos ? "" : std::string(text.substr(1, close - 1));
  }
  if (ParseAddress(text, nullptr).has_value()) {
    return std::string(text);  // a bare IPv6 or IPv4 address
  }
  const size_t colon = text.rfind(':');
  return std::string(text.substr(0, colon));
}

bool InNetworks(std::string_view address, const std::vector<Cidr>& networks) {
  const std::optional<std::array<uint8_t, 16>> parsed = ParseAddress(address, nullptr);
  return parsed.has_value() && std::any_of(networks.begin(), networks.end(),
                                           [&](const Cidr& c) { return Contains(c, *parsed); });
}

std::string ClientAddress(std::string_view peer, std::string_view forwarded_for,
                          const std::vector<Cidr>& trusted_proxies) {
  std::string client = PeerAddress(peer);
  if (forwarded_for.empty() || !InNetworks(client, trusted_proxies)) {
    return client;
  }
  while (true) {
    const size_t comma = forwarded_for.rfind(',');
    const std::string_view entry =
        Trim(comma == std::string_view::npos ? forwarded_for : forwarded_for.substr(comma + 1));
    std::string address = PeerAddress(entry);
    if (!ParseAddress(address, nullptr).has_value()) {
      return client;  // garbage: the last address a trusted proxy vouched for
    }
    client = std::move(address);
    if (comma == std::string_view::npos || !InNetworks(client, trusted_proxies)) {
      return client;
    }
    forwarded_for = forwarded_for.substr(0, comma);
  }
}

}  // namespace discovery::api
