#include "model/model.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "common/hex.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "model/endpoint.h"
#include "model/text.h"
#include "selector/selector.h"

namespace discovery {
namespace {

using model_internal::Cat;

constexpr std::string_view kNameCharacters = "'a-z', 'A-Z', '0-9', '-' and '_'";
constexpr std::string_view kScrapeIntervalLabel = "__scrape_interval__";
constexpr std::string_view kScrapeTimeoutLabel = "__scrape_timeout__";

bool IsAsciiLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

// At most `limit` bytes of `text`, cut before a UTF-8 continuation byte.
std::string_view TruncateUtf8(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) {
    return text;
  }
  while (limit > 0 && (static_cast<unsigned char>(text[limit]) & 0xc0) == 0x80) {
    --limit;
  }
  return text.substr(0, limit);
}

// ^[A-Za-z0-9_-]+$ without the empty case.
bool HasOnlyNameCharacters(std::string_view name) {
  return std::ranges::all_of(
      name, [](char c) { return IsAsciiLetter(c) || IsAsciiDigit(c) || c == '-' || c == '_'; });
}

// "<what> is <size> bytes; the limit is <limit>".
absl::Status LimitError(std::string_view what, std::size_t size, std::size_t limit) {
  return absl::InvalidArgumentError(
      Cat(what, " is ", std::to_string(size), " bytes; the limit is ", std::to_string(limit)));
}

// The start of a label name for messages about names over the limit, which may be megabytes.
std::string Excerpt(std::string_view text) {
  constexpr std::size_t kExcerptBytes = 32;
  return text.size() <= kExcerptBytes ? std::string{text}
                                      : Cat(TruncateUtf8(text, kExcerptBytes), "...");
}

absl::Status CheckNameLength(std::string_view name, std::string_view what, std::size_t limit) {
  return name.size() > limit ? LimitError(what, name.size(), limit) : absl::OkStatus();
}

// Shared by namespace and service names; `what` is the field named in the message.
absl::Status ValidateName(std::string_view name, std::string_view what, std::size_t limit) {
  if (name.empty()) {
    return absl::InvalidArgumentError(Cat(what, " cannot be empty"));
  }
  DISCOVERY_RETURN_IF_ERROR(CheckNameLength(name, what, limit));
  if (!HasOnlyNameCharacters(name)) {
    return absl::InvalidArgumentError(Cat(what, " must only contain ", kNameCharacters));
  }
  return absl::OkStatus();
}

// ^[a-zA-Z_][a-zA-Z0-9_]*$ (Prometheus label names).
bool IsValidLabelName(std::string_view name) {
  if (name.empty() || !(IsAsciiLetter(name[0]) || name[0] == '_')) {
    return false;
  }
  return std::ranges::all_of(
      name.substr(1), [](char c) { return IsAsciiLetter(c) || IsAsciiDigit(c) || c == '_'; });
}

// Prometheus model.ParseDuration: "0", or number+unit pairs with units y, w, d, h, m, s, ms
// each at most once and in that order, within the range of a Go time.Duration. Returns the
// duration in milliseconds (the finest unit), or nullopt.
std::optional<uint64_t> ParsePrometheusDurationMs(std::string_view s) {
  if (s == "0") {
    return 0;
  }
  if (s.empty()) {
    return std::nullopt;
  }
  struct Unit {
    std::string_view name;
    uint64_t ms;
  };
  static constexpr std::array<Unit, 7> kUnits = {{
      {"y", 365ULL * 24 * 3600 * 1000},
      {"w", 7ULL * 24 * 3600 * 1000},
      {"d", 24ULL * 3600 * 1000},
      {"h", 3600ULL * 1000},
      {"m", 60ULL * 1000},
      {"s", 1000},
      {"ms", 1},
  }};
  // Go's time.Duration counts nanoseconds in an int64.
  constexpr uint64_t kMaxMs = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / 1000000;
  uint64_t total = 0;
  std::size_t next_unit = 0;
  while (!s.empty()) {
    std::size_t digits = 0;
    uint64_t value = 0;
    while (digits < s.size() && IsAsciiDigit(s[digits])) {
      if (value > kMaxMs) {
        return std::nullopt;
      }
      value = value * 10 + static_cast<uint64_t>(s[digits] - '0');
      ++digits;
    }
    if (digits == 0) {
      return std::nullopt;
    }
    s.remove_prefix(digits);
    std::size_t unit_len = 0;
    while (unit_len < s.size() && !IsAsciiDigit(s[unit_len])) {
      ++unit_len;
    }
    const std::string_view unit_name = s.substr(0, unit_len);
    s.remove_prefix(unit_len);
    std::size_t unit = next_unit;
    while (unit < kUnits.size() && kUnits[unit].name != unit_name) {
      ++unit;
    }
    if (unit == kUnits.size()) {
      return std::nullopt;  // unknown unit, a repeated unit, or units out of order
    }
    next_unit = unit + 1;
    if (value > kMaxMs / kUnits[unit].ms) {
      return std::nullopt;
    }
    total += value * kUnits[unit].ms;
    if (total > kMaxMs) {
      return std::nullopt;
    }
  }
  return total;
}

// Parses the 8-4-4-4-12 hex form (also accepted: 32 bare hex digits, "{...}" and
// "urn:uuid:..." as google/uuid does) into 16 bytes.
std::optional<std::array<unsigned char, 16>> ParseUuid(std::string_view text) {
  constexpr std::string_view kUrnPrefix = "urn:uuid:";
  if (text.size() >= kUrnPrefix.size() &&
      std::equal(kUrnPrefix.begin(), kUrnPrefix.end(), text.begin(),
                 [](char a, char b) { return a == (b >= 'A' && b <= 'Z' ? b - 'A' + 'a' : b); })) {
    text.remove_prefix(9);
  } else if (text.size() == 38 && text.front() == '{' && text.back() == '}') {
    text = text.substr(1, 36);
  }
  const bool hyphenated = text.size() == 36;
  if (!hyphenated && text.size() != 32) {
    return std::nullopt;
  }
  if (hyphenated && (text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-')) {
    return std::nullopt;
  }
  std::array<unsigned char, 16> bytes{};
  std::size_t pos = 0;
  for (unsigned char& byte : bytes) {
    if (hyphenated && (pos == 8 || pos == 13 || pos == 18 || pos == 23)) {
      ++pos;
    }
    const int high = HexDigitValue(text[pos]);
    const int low = HexDigitValue(text[pos + 1]);
    if (high < 0 || low < 0) {
      return std::nullopt;
    }
    byte = static_cast<unsigned char>((high << 4) | low);
    pos += 2;
  }
  return bytes;
}

std::string FormatUuid(const unsigned char* bytes) {
  constexpr std::string_view kHex = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      out += '-';
    }
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 0xf];
  }
  return out;
}

// SHA1() looks the algorithm up in OpenSSL's provider tables on every call, which took three
// quarters of the time of a service's id (bench/model_bench.cc): the digest is fetched once and
// each thread keeps its context.
std::array<unsigned char, EVP_MAX_MD_SIZE> Sha1(const std::array<unsigned char, 16>& prefix,
                                                std::string_view data) {
  // Leaked on purpose: ids may still be computed during static destruction.
  static EVP_MD* const sha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  struct ContextDeleter {
    void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
  };
  thread_local const std::unique_ptr<EVP_MD_CTX, ContextDeleter> context(EVP_MD_CTX_new());
  // Zeros when OpenSSL has no SHA-1 or no memory for a context, as SHA1() left them: it needs
  // both as well.
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  if (sha1 != nullptr && context != nullptr &&
      EVP_DigestInit_ex2(context.get(), sha1, nullptr) == 1 &&
      EVP_DigestUpdate(context.get(), prefix.data(), prefix.size()) == 1 &&
      EVP_DigestUpdate(context.get(), data.data(), data.size()) == 1) {
    EVP_DigestFinal_ex(context.get(), digest.data(), nullptr);
  }
  return digest;
}

std::string UuidV5FromBytes(const std::array<unsigned char, 16>& ns, std::string_view name) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest = Sha1(ns, name);
  digest[6] = static_cast<unsigned char>((digest[6] & 0x0f) | 0x50);  // version 5
  digest[8] = static_cast<unsigned char>((digest[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return FormatUuid(digest.data());
}

// The size limits of labels, checked before anything that quotes a name or value.
absl::Status CheckLabelLimits(const Labels& labels) {
  if (labels.size() > kMaxLabels) {
    return absl::InvalidArgumentError(
        Cat(std::to_string(labels.size()), " labels; the limit is ", std::to_string(kMaxLabels)));
  }
  for (const auto& [name, value] : labels) {
    if (name.size() > kMaxLabelNameBytes) {
      return LimitError(Cat("label name '", Excerpt(name), "'"), name.size(), kMaxLabelNameBytes);
    }
    if (value.size() > kMaxLabelValueBytes) {
      return LimitError(Cat("label value of '", name, "'"), value.size(), kMaxLabelValueBytes);
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string ExportConfigName(ExportConfig config) {
  switch (config) {
    case ExportConfig::kDisabled:
      return "disabled";
    case ExportConfig::kStandard:
      return "standard";
    case ExportConfig::kBlackbox:
      return "blackbox";
  }
  return Cat("ExportConfig(", std::to_string(static_cast<int32_t>(config)), ")");
}

absl::StatusOr<ExportConfig> ParseExportConfig(std::string_view name) {
  if (name == "disabled") {
    return ExportConfig::kDisabled;
  }
  if (name == "standard") {
    return ExportConfig::kStandard;
  }
  if (name == "blackbox") {
    return ExportConfig::kBlackbox;
  }
  return absl::InvalidArgumentError(
      Cat("invalid export config '", name, "': must be 'disabled', 'standard' or 'blackbox'"));
}

std::string ServerStateName(ServerState state) {
  switch (state) {
    case ServerState::kLeaving:
      return "leaving";
    case ServerState::kJoining:
      return "joining";
    case ServerState::kActive:
      return "active";
  }
  return Cat("ServerState(", std::to_string(static_cast<int64_t>(state)), ")");
}

absl::Status ValidateLabels(const Labels& labels) {
  DISCOVERY_RETURN_IF_ERROR(CheckLabelLimits(labels));
  for (const auto& [name, value] : labels) {
    if (value.empty()) {
      return absl::InvalidArgumentError(Cat("label value for '", name, "' cannot be empty string"));
    }
    if (!IsValidLabelName(name)) {
      return absl::InvalidArgumentError(
          Cat("label name '", name,
              "' is not valid: label names must contain only ASCII letters, numbers "
              "and underscores"));
    }
    // Target labels starting with "__" steer Prometheus itself (__address__, __scheme__,
    // __metrics_path__, __param_*) and would silently override what the registry generates;
    // only the per-target scrape interval and timeout are meant to be set by users.
    if (name.starts_with("__") && name != kScrapeIntervalLabel && name != kScrapeTimeoutLabel) {
      return absl::InvalidArgumentError(
          Cat("label name '", name,
              "' is reserved: names starting with '__' are reserved for Prometheus, "
              "except '__scrape_interval__' and '__scrape_timeout__'"));
    }
    if (!IsValidUtf8(value)) {
      return absl::InvalidArgumentError(Cat("label value for '", name, "' is not valid UTF-8"));
    }
    if ((name == kScrapeIntervalLabel || name == kScrapeTimeoutLabel) &&
        !ParsePrometheusDurationMs(value).has_value()) {
      return absl::InvalidArgumentError(
          Cat("label value for '", name, "' is not a valid duration: '", value,
              "' (use e.g. '15s', '1m30s' or '500ms'; units y, w, d, h, m, s, ms)"));
    }
  }
  // Prometheus drops a target whose timeout exceeds its interval; refuse it up front.
  const auto interval = labels.find(std::string(kScrapeIntervalLabel));
  const auto timeout = labels.find(std::string(kScrapeTimeoutLabel));
  if (interval != labels.end() && timeout != labels.end() &&
      *ParsePrometheusDurationMs(timeout->second) > *ParsePrometheusDurationMs(interval->second)) {
    return absl::InvalidArgumentError(
        Cat("label value for '__scrape_timeout__' ('", timeout->second,
            "') must not be greater than '__scrape_interval__' ('", interval->second, "')"));
  }
  return absl::OkStatus();
}

std::string LabelsToString(const Labels& labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!out.empty()) {
      out += ',';
    }
    out += Cat(name, "=", value);
  }
  return out;
}

absl::StatusOr<Labels> ParseLabels(std::string_view text) {
  Labels labels;
  while (!text.empty()) {
    std::string_view item = text;
    if (const std::size_t comma = text.find(','); comma != std::string_view::npos) {
      item = text.substr(0, comma);
      text = text.substr(comma + 1);
    } else {
      text = {};
    }
    if (item.empty()) {
      continue;  // tolerate "a=b," and "a=b,,c=d"
    }
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return absl::InvalidArgumentError(Cat("invalid label '", item, "': expected 'name=value'"));
    }
    labels[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
  }
  return labels;
}

absl::Status ValidateNamespaceName(std::string_view name) {
  return ValidateName(name, "name", kMaxNamespaceNameBytes);
}

absl::Status ValidateServiceName(std::string_view name) {
  return ValidateName(name, "name", kMaxServiceNameBytes);
}

absl::Status ValidateDescription(std::string_view description) {
  return description.size() > kMaxDescriptionBytes
             ? LimitError("description", description.size(), kMaxDescriptionBytes)
             : absl::OkStatus();
}

absl::Status ValidateServerName(std::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError("name cannot be empty");
  }
  if (name.size() > kMaxServerNameBytes) {
    return absl::InvalidArgumentError(
        Cat("name must be at most ", std::to_string(kMaxServerNameBytes), " characters"));
  }
  for (const char c : name) {
    if (!IsAsciiLetter(c) && !IsAsciiDigit(c) && c != '.' && c != '-' && c != '_') {
      return absl::InvalidArgumentError(
          "name must only contain 'a-z', 'A-Z', '0-9', '.', '-' and '_'");
    }
  }
  // Server names become store keys and exporter directory names: "." or ".." components
  // would escape the intended prefix or directory.
  if (name.front() == '.') {
    return absl::InvalidArgumentError("name must not start with '.'");
  }
  if (name.find("..") != std::string_view::npos) {
    return absl::InvalidArgumentError("name must not contain '..'");
  }
  return absl::OkStatus();
}

absl::Status ValidateExistingServerName(std::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError("name cannot be empty");
  }
  if (name == "." || name == "..") {
    return absl::InvalidArgumentError("name must not be '.' or '..'");
  }
  for (const char c : name) {
    if (c == '/' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("name must not contain '/' or control characters");
    }
  }
  return absl::OkStatus();
}

absl::Status Validate(const Namespace& ns) { return ValidateNamespaceName(ns.name); }

// Server labels are what service selectors match; a key or value no selector can name (e.g.
// "a=b", "two words") would silently never match, so it is refused at registration.
absl::Status Validate(const Server& server) {
  DISCOVERY_RETURN_IF_ERROR(ValidateServerName(server.name));
  if (server.labels.size() > kMaxLabels) {
    return absl::InvalidArgumentError(Cat("server ", server.name, ": ",
                                          std::to_string(server.labels.size()),
                                          " labels; the limit is ", std::to_string(kMaxLabels)));
  }
  for (const auto& [key, value] : server.labels) {
    if (absl::Status status = selector::ValidateLabelKey(key); !status.ok()) {
      return absl::InvalidArgumentError(
          model_internal::Cat("server ", server.name, ": ", status.message()));
    }
    if (absl::Status status = selector::ValidateLabelValue(value); !status.ok()) {
      return absl::InvalidArgumentError(
          model_internal::Cat("server ", server.name, ": ", status.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status Validate(const Service& service) {
  DISCOVERY_RETURN_IF_ERROR(ValidateServiceName(service.name));
  if (absl::Status status =
          ValidateName(service.namespace_name, "namespace", kMaxNamespaceNameBytes);
      !status.ok()) {
    return status;
  }
  if (service.endpoint.empty()) {
    return absl::InvalidArgumentError("endpoint cannot be empty");
  }
  DISCOVERY_ASSIGN_OR_RETURN(Endpoint endpoint, Endpoint::Parse(service.endpoint));
  // The ID and the placement hash are computed over the canonical string; a stored
  // non-canonical endpoint would hash differently from the same endpoint registered anew.
  if (endpoint.String() != service.endpoint) {
    return absl::InvalidArgumentError(Cat(
        "endpoint '", service.endpoint, "' is not canonical: expected '", endpoint.String(), "'"));
  }
  DISCOVERY_RETURN_IF_ERROR(ValidateLabels(service.labels));
  DISCOVERY_RETURN_IF_ERROR(ValidateDescription(service.description));
  if (const std::string id = ServiceId(service.endpoint); service.id != id) {
    return absl::InvalidArgumentError(Cat("id '", service.id, "' does not match endpoint '",
                                          service.endpoint, "': expected '", id, "'"));
  }
  if (absl::StatusOr<selector::Selector> parsed = selector::Selector::Parse(service.selector);
      !parsed.ok()) {
    return absl::InvalidArgumentError(
        Cat("invalid selector '", service.selector, "': ", parsed.status().message()));
  }
  return absl::OkStatus();
}

absl::Status CheckStoredService(const Service& service) {
  if (absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(service.endpoint); !endpoint.ok()) {
    return endpoint.status();
  }
  if (absl::Status status = CheckNameLength(service.name, "name", kMaxServiceNameBytes);
      !status.ok()) {
    return status;
  }
  if (absl::Status status =
          CheckNameLength(service.namespace_name, "namespace", kMaxNamespaceNameBytes);
      !status.ok()) {
    return status;
  }
  DISCOVERY_RETURN_IF_ERROR(CheckLabelLimits(service.labels));
  return ValidateDescription(service.description);
}

Service ClampToLimits(Service service) {
  auto clamp = [](std::string& text, std::size_t limit) {
    text.resize(TruncateUtf8(text, limit).size());
  };
  clamp(service.name, kMaxServiceNameBytes);
  clamp(service.namespace_name, kMaxNamespaceNameBytes);
  clamp(service.endpoint, kMaxLabelValueBytes);
  clamp(service.selector, kMaxLabelValueBytes);
  clamp(service.description, kMaxDescriptionBytes);
  Labels labels;
  for (auto& [name, value] : service.labels) {
    if (labels.size() == kMaxLabels) {
      break;
    }
    if (name.size() <= kMaxLabelNameBytes) {
      clamp(value, kMaxLabelValueBytes);
      labels.emplace(name, std::move(value));
    }
  }
  service.labels = std::move(labels);
  return service;
}

std::string ServiceId(std::string_view canonical_endpoint) {
  // UUIDv5(DNS, "discovery"), fixed by the Go original; every stored ID depends on it.
  static constexpr std::array<unsigned char, 16> kServiceNamespace = {
      0x12, 0xec, 0xe8, 0x26, 0xbf, 0xcf, 0x55, 0xf3,
      0x8e, 0x26, 0xf9, 0x2f, 0xe4, 0x4d, 0x4b, 0xe3};
  return UuidV5FromBytes(kServiceNamespace, canonical_endpoint);
}

absl::StatusOr<std::string> UuidV5(std::string_view namespace_uuid, std::string_view name) {
  const std::optional<std::array<unsigned char, 16>> ns = ParseUuid(namespace_uuid);
  if (!ns.has_value()) {
    return absl::InvalidArgumentError(Cat("invalid namespace uuid '", namespace_uuid, "'"));
  }
  return UuidV5FromBytes(*ns, name);
}

}  // namespace discovery
