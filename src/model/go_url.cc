#include "model/go_url.h"

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "common/go_quote.h"
#include "common/hex.h"
#include "common/status_macros.h"
#include "model/text.h"

namespace discovery::model_internal {
namespace {

constexpr std::string_view kUpperHex = "0123456789ABCDEF";

bool IsHex(char c) { return HexDigitValue(c) >= 0; }

// Only for a digit IsHex accepted.
unsigned char Unhex(char c) { return static_cast<unsigned char>(HexDigitValue(c)); }

// RFC 3986's sub-delims: "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "=".
bool IsSubDelim(unsigned char c) {
  switch (c) {
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
      return true;
    default:
      return false;
  }
}

// Go's shouldEscape, with its deviations from RFC 3986 kept, because the canonical form must
// match Go's byte for byte: a host also keeps ':' (of its port), '[' and ']' (of an IPv6
// literal) and '<', '>' and '"', which the RFC does not allow there but which Go leaves as they
// are since its parser refuses %-escaped ASCII in a host.
bool ShouldEscape(unsigned char c, Mode mode) {
  if (IsAsciiAlnum(c)) {
    return false;
  }
  if ((mode == Mode::kHost || mode == Mode::kZone) &&
      (IsSubDelim(c) || c == ':' || c == '[' || c == ']' || c == '<' || c == '>' || c == '"')) {
    return false;
  }
  switch (c) {
    case '-':
    case '_':
    case '.':
    case '~':
      return false;
    case '$':
    case '&':
    case '+':
    case ',':
    case '/':
    case ':':
    case ';':
    case '=':
    case '?':
    case '@':
      switch (mode) {
        case Mode::kPath:
          // Go manipulates the path as a whole, so only '?' would change its meaning.
          return c == '?';
        case Mode::kUserPassword:
          return c == '@' || c == '/' || c == '?' || c == ':';
        case Mode::kQueryComponent:
          return true;
        case Mode::kHost:
        case Mode::kZone:
          break;
      }
      break;
    default:
      break;
  }
  return true;
}

absl::Status EscapeError(std::string_view s) {
  return absl::InvalidArgumentError(Cat("invalid URL escape ", GoQuote(s)));
}

// Go's validEncoded for paths: true when `s` contains no byte that escaping would change
// (sub-delims, ':', '@', '[', ']' and '%' are left as written).
bool ValidEncodedPath(std::string_view s) {
  return std::ranges::all_of(s, [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return IsSubDelim(c) || c == ':' || c == '@' || c == '[' || c == ']' || c == '%' ||
           !ShouldEscape(c, Mode::kPath);
  });
}

// Go's validOptionalPort: "" or ':' followed by digits only.
bool ValidOptionalPort(std::string_view port) {
  if (port.empty()) {
    return true;
  }
  if (port[0] != ':') {
    return false;
  }
  return std::ranges::all_of(port.substr(1), [](char c) { return c >= '0' && c <= '9'; });
}

// The characters of RFC 3986 §3.2.1 userinfo, as Go's validUserinfo lists them.
bool IsUserinfoChar(unsigned char c) {
  return IsAsciiAlnum(c) || IsSubDelim(c) || c == '-' || c == '.' || c == '_' || c == ':' ||
         c == '~' || c == '%' || c == '@';
}

// Go's validUserinfo; escapes are checked later by Unescape.
bool ValidUserinfo(std::string_view s) {
  return std::ranges::all_of(s,
                             [](char c) { return IsUserinfoChar(static_cast<unsigned char>(c)); });
}

// Go's parseHost: host[:port] of an authority, with IPv6 literals and RFC 6874 zones.
absl::StatusOr<std::string> ParseHost(std::string_view host) {
  if (host.starts_with("[")) {
    const std::size_t close = host.rfind(']');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError("missing ']' in host");
    }
    const std::string_view colon_port = host.substr(close + 1);
    if (!ValidOptionalPort(colon_port)) {
      return absl::InvalidArgumentError(Cat("invalid port ", GoQuote(colon_port), " after host"));
    }
    // "%25" starts the zone, which may use escapes the address part may not.
    const std::size_t zone = host.substr(0, close).find("%25");
    if (zone != std::string_view::npos) {
      DISCOVERY_ASSIGN_OR_RETURN(std::string address, Unescape(host.substr(0, zone), Mode::kHost));
      DISCOVERY_ASSIGN_OR_RETURN(std::string zone_id,
                                 Unescape(host.substr(zone, close - zone), Mode::kZone));
      DISCOVERY_ASSIGN_OR_RETURN(std::string tail, Unescape(host.substr(close), Mode::kHost));
      return Cat(address, zone_id, tail);
    }
  } else if (const std::size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    const std::string_view colon_port = host.substr(colon);
    if (!ValidOptionalPort(colon_port)) {
      return absl::InvalidArgumentError(Cat("invalid port ", GoQuote(colon_port), " after host"));
    }
  }
  return Unescape(host, Mode::kHost);
}

// Go's parseAuthority: [userinfo@]host[:port]; the last '@' separates the userinfo.
absl::Status ParseAuthority(std::string_view authority, GoUrl& url) {
  const std::size_t at = authority.rfind('@');
  DISCOVERY_ASSIGN_OR_RETURN(
      url.host, ParseHost(at == std::string_view::npos ? authority : authority.substr(at + 1)));
  if (at == std::string_view::npos) {
    return absl::OkStatus();
  }
  const std::string_view userinfo = authority.substr(0, at);
  if (!ValidUserinfo(userinfo)) {
    return absl::InvalidArgumentError("net/url: invalid userinfo");
  }
  const std::size_t colon = userinfo.find(':');
  DISCOVERY_ASSIGN_OR_RETURN(url.username,
                             Unescape(userinfo.substr(0, colon), Mode::kUserPassword));
  if (colon != std::string_view::npos) {
    DISCOVERY_ASSIGN_OR_RETURN(url.password,
                               Unescape(userinfo.substr(colon + 1), Mode::kUserPassword));
  }
  return absl::OkStatus();
}

// Go's setPath: Path is the decoded form; RawPath keeps the written form only when Go's own
// escaping of Path would spell it differently.
absl::Status SetPath(std::string_view written, GoUrl& url) {
  DISCOVERY_ASSIGN_OR_RETURN(url.path, Unescape(written, Mode::kPath));
  if (Escape(url.path, Mode::kPath) == written) {
    url.raw_path.clear();
  } else {
    url.raw_path = std::string(written);
  }
  return absl::OkStatus();
}

bool ContainsControlByte(std::string_view s) {
  return std::ranges::any_of(s, [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c < 0x20 || c == 0x7f;
  });
}

}  // namespace

bool IsAsciiAlnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

absl::StatusOr<std::string> Unescape(std::string_view s, Mode mode) {
  std::size_t escapes = 0;
  bool has_plus = false;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '%') {
      ++escapes;
      if (i + 2 >= s.size() || !IsHex(s[i + 1]) || !IsHex(s[i + 2])) {
        return EscapeError(s.substr(i, 3));
      }
      const std::string_view escape = s.substr(i, 3);
      if (mode == Mode::kHost && Unhex(s[i + 1]) < 8 && escape != "%25") {
        return EscapeError(escape);
      }
      if (mode == Mode::kZone) {
        // Escapes in a zone may only spell bytes that could be written directly (Go allows a
        // space too, because Windows uses it in interface names).
        const auto v = static_cast<unsigned char>((Unhex(s[i + 1]) << 4) | Unhex(s[i + 2]));
        if (escape != "%25" && v != ' ' && ShouldEscape(v, Mode::kHost)) {
          return EscapeError(escape);
        }
      }
      i += 3;
    } else if (c == '+') {
      has_plus = mode == Mode::kQueryComponent;
      ++i;
    } else {
      if ((mode == Mode::kHost || mode == Mode::kZone) && c < 0x80 && ShouldEscape(c, mode)) {
        return absl::InvalidArgumentError(
            Cat("invalid character ", GoQuote(s.substr(i, 1)), " in host name"));
      }
      ++i;
    }
  }
  if (escapes == 0 && !has_plus) {
    return std::string(s);
  }
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      out += static_cast<char>((Unhex(s[i + 1]) << 4) | Unhex(s[i + 2]));
      i += 2;
    } else if (s[i] == '+' && mode == Mode::kQueryComponent) {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string Escape(std::string_view s, Mode mode) {
  // Most of what is escaped (every stored endpoint's host and path on a load) needs no escape:
  // then it is its own escaped form, copied at once rather than a byte at a time.
  if (std::ranges::none_of(
          s, [mode](char ch) { return ShouldEscape(static_cast<unsigned char>(ch), mode); })) {
    return std::string(s);
  }
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == ' ' && mode == Mode::kQueryComponent) {
      out += '+';
    } else if (ShouldEscape(c, mode)) {
      out += '%';
      out += kUpperHex[c >> 4];
      out += kUpperHex[c & 0xf];
    } else {
      out += ch;
    }
  }
  return out;
}

absl::StatusOr<SchemeSplit> GetScheme(std::string_view raw) {
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      continue;
    }
    if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.') {
      if (i == 0) {
        return SchemeSplit{{}, raw};
      }
      continue;
    }
    if (c == ':') {
      if (i == 0) {
        return absl::InvalidArgumentError("missing protocol scheme");
      }
      return SchemeSplit{raw.substr(0, i), raw.substr(i + 1)};
    }
    return SchemeSplit{{}, raw};
  }
  return SchemeSplit{{}, raw};
}

std::string EscapedPath(const GoUrl& url) {
  if (!url.raw_path.empty() && ValidEncodedPath(url.raw_path)) {
    absl::StatusOr<std::string> decoded = Unescape(url.raw_path, Mode::kPath);
    if (decoded.ok() && *decoded == url.path) {
      return url.raw_path;
    }
  }
  if (url.path == "*") {
    return "*";
  }
  return Escape(url.path, Mode::kPath);
}

absl::StatusOr<GoUrl> ParseRequestUri(std::string_view raw) {
  if (ContainsControlByte(raw)) {
    return absl::InvalidArgumentError("net/url: invalid control character in URL");
  }
  if (raw.empty()) {
    return absl::InvalidArgumentError("empty url");
  }
  GoUrl url;
  if (raw == "*") {
    url.path = "*";
    return url;
  }
  DISCOVERY_ASSIGN_OR_RETURN(SchemeSplit split, GetScheme(raw));
  url.scheme = std::string(split.scheme);
  for (char& c : url.scheme) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  std::string_view rest = split.rest;

  // A single trailing '?' is remembered (Go's ForceQuery) so the canonical form keeps it.
  if (rest.ends_with("?") && rest.find('?') == rest.size() - 1) {
    url.force_query = true;
    rest.remove_suffix(1);
  } else if (const std::size_t q = rest.find('?'); q != std::string_view::npos) {
    url.raw_query = std::string(rest.substr(q + 1));
    rest = rest.substr(0, q);
  }

  if (!rest.starts_with("/")) {
    if (!url.scheme.empty()) {
      // Go treats a rootless path after the scheme as opaque data and parses nothing more.
      url.opaque = true;
      return url;
    }
    return absl::InvalidArgumentError("invalid URI for request");
  }

  if (!url.scheme.empty() && rest.starts_with("//")) {
    std::string_view authority = rest.substr(2);
    rest = {};
    if (const std::size_t slash = authority.find('/'); slash != std::string_view::npos) {
      rest = authority.substr(slash);
      authority = authority.substr(0, slash);
    }
    url.has_authority = true;
    DISCOVERY_RETURN_IF_ERROR(ParseAuthority(authority, url));
  }
  DISCOVERY_RETURN_IF_ERROR(SetPath(rest, url));
  return url;
}

std::pair<std::string_view, std::string_view> SplitHostPort(std::string_view host_port) {
  std::string_view host = host_port;
  std::string_view port;
  if (const std::size_t colon = host.rfind(':');
      colon != std::string_view::npos && ValidOptionalPort(host.substr(colon))) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host.starts_with("[") && host.ends_with("]")) {
    host = host.substr(1, host.size() - 2);
  }
  return {host, port};
}

std::string SerializedUserinfo(const GoUrl& url) {
  if (!url.username.has_value()) {
    return "";
  }
  std::string out = Escape(*url.username, Mode::kUserPassword);
  if (url.password.has_value()) {
    out += Cat(":", Escape(*url.password, Mode::kUserPassword));
  }
  out += '@';
  return out;
}

std::string CanonicalString(const GoUrl& url) {
  std::string out = Cat(url.scheme, "://", SerializedUserinfo(url), Escape(url.host, Mode::kHost),
                        EscapedPath(url));
  if (url.force_query || !url.raw_query.empty()) {
    out += Cat("?", url.raw_query);
  }
  return out;
}

}  // namespace discovery::model_internal
