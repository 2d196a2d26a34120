#include "model/endpoint.h"

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "common/go_quote.h"
#include "common/status_macros.h"
#include "model/go_url.h"
#include "model/text.h"

namespace discovery {
namespace {

using model_internal::CanonicalString;
using model_internal::Cat;
using model_internal::EscapedPath;
using model_internal::GetScheme;
using model_internal::GoUrl;
using model_internal::IsAsciiAlnum;
using model_internal::Mode;
using model_internal::ParseRequestUri;
using model_internal::SchemeSplit;
using model_internal::SerializedUserinfo;
using model_internal::SplitHostPort;
using model_internal::Unescape;

constexpr std::string_view kExpectedForm = "expected 'scheme://host[:port][/path][?query]'";

absl::Status Invalid(std::string_view text, std::string_view problem) {
  return absl::InvalidArgumentError(Cat("'", text, "' is not a valid url: ", problem));
}

bool StartsWithPort(std::string_view s) {
  std::size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') {
    ++digits;
  }
  return digits > 0 && (digits == s.size() || s[digits] == '/' || s[digits] == '?');
}

// Parses under Go's rules plus ours (scheme, "//" and a host name required, no fragment).
// With `suggest`, a rejected input that becomes valid by adding what is probably missing
// gets a "did you mean" hint; candidates are checked with suggest=false, so a hint is never
// itself invalid and the recursion stops after one level.
absl::StatusOr<GoUrl> ParseStrict(std::string_view text, bool suggest);

std::string Suggestion(std::string_view text) {
  std::vector<std::string> candidates;
  if (text.starts_with("://")) {
    candidates.push_back(Cat("http", text));
  } else if (text.starts_with("//")) {
    candidates.push_back(Cat("http:", text));
  } else if (absl::StatusOr<SchemeSplit> split = GetScheme(text); split.ok()) {
    if (split->scheme.empty()) {
      // "1http://host" already has an authority; prefixing another one would not help.
      if (!text.starts_with("/") && text.find("://") == std::string_view::npos) {
        candidates.push_back(Cat("http://", text));
      }
    } else if (!split->rest.starts_with("//")) {
      // "localhost:9100" and "example.com:9999/metrics" are host:port typed without a
      // scheme; "http:example.com" and "http:/example.com" lack slashes.
      if (StartsWithPort(split->rest)) {
        candidates.push_back(Cat("http://", text));
      }
      std::string_view rest = split->rest;
      while (rest.starts_with("/")) {
        rest.remove_prefix(1);
      }
      candidates.push_back(Cat(split->scheme, "://", rest));
    }
  }
  for (const std::string& candidate : candidates) {
    absl::StatusOr<GoUrl> url = ParseStrict(candidate, /*suggest=*/false);
    // Only a host that starts like a name or an address makes a believable suggestion
    // ("*" would give "http://*").
    if (url.ok() && (url->host.starts_with("[") ||
                     IsAsciiAlnum(static_cast<unsigned char>(url->host.front())))) {
      return Cat("; did you mean '", candidate, "'?");
    }
  }
  return "";
}

absl::StatusOr<GoUrl> ParseStrict(std::string_view text, bool suggest) {
  absl::StatusOr<GoUrl> url = ParseRequestUri(text);
  if (!url.ok()) {
    return Invalid(text, Cat("parse ", GoQuote(text), ": ", url.status().message(),
                             suggest ? Suggestion(text) : ""));
  }
  // Go's request parser keeps '#' in the path or query; a fragment never reaches the scraped
  // server, so accepting one would only store two IDs for the same target.
  if (text.find('#') != std::string_view::npos) {
    return Invalid(text, "fragments ('#...') are not allowed; escape a literal '#' as %23");
  }
  if (url->scheme.empty()) {
    const std::string hint = suggest ? Suggestion(text) : "";
    return Invalid(text, Cat(text.starts_with("//") ? "missing scheme" : "missing scheme and host",
                             hint.empty() ? Cat("; ", kExpectedForm) : hint));
  }
  // Go accepts "localhost:9100" as scheme "localhost" with opaque data "9100"; nothing could
  // scrape that, so it is refused with the likely intended URL.
  if (url->opaque) {
    const std::string hint = suggest ? Suggestion(text) : "";
    return Invalid(
        text, Cat("missing '//' after the scheme", hint.empty() ? Cat("; ", kExpectedForm) : hint));
  }
  if (!url->has_authority || SplitHostPort(url->host).first.empty()) {
    const std::string hint = suggest ? Suggestion(text) : "";
    return Invalid(text, Cat("missing host", hint.empty() ? Cat("; ", kExpectedForm) : hint));
  }
  // Go's parser takes any digits as the port; no target listens on a port TCP cannot address.
  if (const std::string_view port = SplitHostPort(url->host).second;
      !port.empty() && (port.size() > 5 || std::stoi(std::string(port)) > 65535)) {
    return Invalid(text, Cat("port ", port, " is out of range (at most 65535)"));
  }
  return url;
}

}  // namespace

absl::StatusOr<Endpoint> Endpoint::Parse(std::string_view text) {
  DISCOVERY_ASSIGN_OR_RETURN(GoUrl url, ParseStrict(text, /*suggest=*/true));
  std::string canonical = CanonicalString(url);
  // Go can print a URL it would not parse again (a zone such as "[a%25%FF]" decodes to a byte
  // it refuses to read back). Stored endpoints are re-validated, so only fixed points pass.
  if (canonical != text) {
    absl::StatusOr<GoUrl> again = ParseStrict(canonical, /*suggest=*/false);
    if (!again.ok() || CanonicalString(*again) != canonical) {
      return Invalid(text, Cat("its canonical form '", canonical, "' does not parse back"));
    }
  }
  Endpoint endpoint;
  endpoint.canonical_ = std::move(canonical);
  endpoint.userinfo_ = SerializedUserinfo(url);
  endpoint.raw_path_ = EscapedPath(url);
  endpoint.scheme_ = std::move(url.scheme);
  endpoint.host_ = std::move(url.host);
  endpoint.path_ = std::move(url.path);
  endpoint.raw_query_ = std::move(url.raw_query);
  return endpoint;
}

std::string Endpoint::Hostname() const { return std::string(SplitHostPort(host_).first); }

std::string Endpoint::Port() const { return std::string(SplitHostPort(host_).second); }

std::vector<std::pair<std::string, std::string>> Endpoint::QueryParams() const {
  // Go's url.ParseQuery: '&' separates pairs, a pair with a literal ';' is invalid (Go 1.17+),
  // a pair without '=' has an empty value, and a pair that fails to unescape is dropped.
  std::vector<std::pair<std::string, std::string>> params;
  std::string_view query = raw_query_;
  while (!query.empty()) {
    std::string_view pair = query;
    if (const std::size_t amp = query.find('&'); amp != std::string_view::npos) {
      pair = query.substr(0, amp);
      query = query.substr(amp + 1);
    } else {
      query = {};
    }
    if (pair.empty() || pair.find(';') != std::string_view::npos) {
      continue;
    }
    std::string_view key = pair;
    std::string_view value;
    if (const std::size_t eq = pair.find('='); eq != std::string_view::npos) {
      key = pair.substr(0, eq);
      value = pair.substr(eq + 1);
    }
    absl::StatusOr<std::string> decoded_key = Unescape(key, Mode::kQueryComponent);
    absl::StatusOr<std::string> decoded_value = Unescape(value, Mode::kQueryComponent);
    if (!decoded_key.ok() || !decoded_value.ok()) {
      continue;
    }
    params.emplace_back(*std::move(decoded_key), *std::move(decoded_value));
  }
  return params;
}

}  // namespace discovery
