// A port of the parts of Go's net/url that endpoints need (url.ParseRequestURI, URL.String,
// URL.Hostname/Port and the escaping rules), for model/endpoint.cc. Internal to the model
// module.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace discovery::model_internal {

// The parse and serialise rules here follow Go's net/url (url.ParseRequestURI and
// URL.String) step by step, because the canonical string feeds the service ID and the
// placement hash: any divergence would give an endpoint a different ID than the Go original
// gave it. Error texts are Go's too, so operators see the messages they know.

// Which URL component a byte is escaped or unescaped for (Go's `encoding`).
enum class Mode {
  kPath,
  kHost,
  kZone,
  kUserPassword,
  kQueryComponent,
};

bool IsAsciiAlnum(unsigned char c);

// Go's unescape: decodes %XX (and '+' in query components), with Go's extra restrictions on
// hosts (only non-ASCII bytes and "%25" may be escaped) and IPv6 zones.
absl::StatusOr<std::string> Unescape(std::string_view s, Mode mode);

// Go's escape.
std::string Escape(std::string_view s, Mode mode);

// The fields of Go's url.URL that ParseRequestURI can set.
struct GoUrl {
  std::string scheme;
  bool opaque = false;  // scheme present but not followed by '/': Go's URL.Opaque form
  bool has_authority = false;
  std::optional<std::string> username;  // set when userinfo was present
  std::optional<std::string> password;  // set when userinfo contained ':'
  std::string host;                     // decoded, as Go's URL.Host
  std::string path;                     // decoded
  std::string raw_path;                 // Go's RawPath hint ("" when the default escaping fits)
  bool force_query = false;
  std::string raw_query;
};

struct SchemeSplit {
  std::string_view scheme;
  std::string_view rest;
};

// Go's getScheme: a leading [A-Za-z][A-Za-z0-9+.-]* terminated by ':'.
absl::StatusOr<SchemeSplit> GetScheme(std::string_view raw);

// Go's parse(rawURL, viaRequest=true). Errors carry Go's message without the
// `parse "<url>": ` prefix.
absl::StatusOr<GoUrl> ParseRequestUri(std::string_view raw);

// Go's splitHostPort (URL.Hostname / URL.Port): a trailing ":digits" is the port, and
// brackets around the remaining host are dropped.
std::pair<std::string_view, std::string_view> SplitHostPort(std::string_view host_port);

// Go's URL.EscapedPath.
std::string EscapedPath(const GoUrl& url);

// "userinfo@" as Go's URL.String writes it, or "" without userinfo. Go writes the '@' even
// for an empty user name ("http://@host"), so the prefix is kept whole rather than as a name.
std::string SerializedUserinfo(const GoUrl& url);

// Go's URL.String for the authority form. The host is re-escaped because Go stores it
// decoded (non-ASCII bytes and zone characters come back as %XX).
std::string CanonicalString(const GoUrl& url);

}  // namespace discovery::model_internal
