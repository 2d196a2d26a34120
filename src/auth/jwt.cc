#include "auth/jwt.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

#include "auth/base64url.h"
#include "common/format.h"
#include "common/status_macros.h"

namespace discovery::auth {
namespace {

using Json = nlohmann::json;

absl::StatusOr<Json> DecodeJsonObject(std::string_view segment, std::string_view what) {
  absl::StatusOr<std::string> decoded = Base64UrlDecode(segment);
  if (!decoded.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("could not decode {}: {}", what, decoded.status().message()));
  }
  Json json = Json::parse(*decoded, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::InvalidArgumentError(fmt::format("{} is not valid JSON", what));
  }
  if (!json.is_object()) {
    return absl::InvalidArgumentError(fmt::format("{} is not a JSON object", what));
  }
  return json;
}

}  // namespace

absl::StatusOr<DecodedJwt> DecodeJwt(std::string_view token) {
  const std::size_t first = token.find('.');
  const std::size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    return absl::InvalidArgumentError("token contains an invalid number of segments");
  }
  DISCOVERY_ASSIGN_OR_RETURN(Json header, DecodeJsonObject(token.substr(0, first), "header"));
  DISCOVERY_ASSIGN_OR_RETURN(
      Json payload, DecodeJsonObject(token.substr(first + 1, second - first - 1), "payload"));
  const auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string()) {
    return absl::InvalidArgumentError("header has no string alg");
  }
  return DecodedJwt{.signing_input = token.substr(0, second),
                    .signature_segment = token.substr(second + 1),
                    .header = std::move(header),
                    .payload = std::move(payload)};
}

absl::StatusOr<std::optional<absl::Time>> NumericDateClaim(const Json& payload, const char* name) {
  const auto it = payload.find(name);
  if (it == payload.end() || it->is_null()) {
    return std::nullopt;
  }
  if (it->is_number_unsigned()) {
    const auto seconds = it->get<std::uint64_t>();
    if (seconds > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return absl::InfiniteFuture();
    }
    return absl::FromUnixSeconds(static_cast<std::int64_t>(seconds));
  }
  if (it->is_number_integer()) {
    return absl::FromUnixSeconds(it->get<std::int64_t>());
  }
  if (it->is_number_float()) {
    const double seconds = std::trunc(it->get<double>());
    if (!std::isfinite(seconds)) {
      return absl::InvalidArgumentError(fmt::format("claim {} is not a finite number", name));
    }
    // 2^63 is exactly representable; anything at or beyond it does not fit an int64.
    constexpr double kLimit = 9223372036854775808.0;
    if (seconds >= kLimit) {
      return absl::InfiniteFuture();
    }
    if (seconds < -kLimit) {
      return absl::InfinitePast();
    }
    return absl::FromUnixSeconds(static_cast<std::int64_t>(seconds));
  }
  return absl::InvalidArgumentError(fmt::format("claim {} is not a number", name));
}

}  // namespace discovery::auth
