#include "model/endpoint.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "model/text.h"

namespace discovery {
namespace {

using model_internal::Cat;

// The parse and serialise rules below follow Go's net/url (url.ParseRequestURI and
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

constexpr std::string_view kUpperHex = "0123456789ABCDEF";

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

unsigned char Unhex(char c) {
  if (c >= '0' && c <= '9') {
    return static_cast<unsigned char>(c - '0');
  }
  if (c >= 'a' && c <= 'f') {
    return static_cast<unsigned char>(c - 'a' + 10);
  }
  if (c >= 'A' && c <= 'F') {
    return static_cast<unsigned char>(c - 'A' + 10);
  }
  return 0;
}

bool IsAsciiAlnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Go's shouldEscape. It deliberately keeps Go's deviations from RFC 3986 (golang.org/issue/5684)
// because the canonical form must match Go's byte for byte.
bool ShouldEscape(unsigned char c, Mode mode) {
  if (IsAsciiAlnum(c)) {
    return false;
  }
  if (mode == Mode::kHost || mode == Mode::kZone) {
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
      case ':':
      case '[':
      case ']':
      case '<':
      case '>':
      case '"':
        return false;
      default:
        break;
    }
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

// Renders `s` the way Go's strconv.Quote does, so error texts read like Go's. Non-ASCII
// printability is approximated: C1 controls and common invisible format characters are
// escaped, every other valid code point is kept.
std::string GoQuote(std::string_view s) {
  constexpr std::string_view kLowerHex = "0123456789abcdef";
  std::string out = "\"";
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\a':
          out += "\\a";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\v':
          out += "\\v";
          break;
        default:
          if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += kLowerHex[c >> 4];
            out += kLowerHex[c & 0xf];
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    // Decode one UTF-8 sequence; invalid bytes are written as \xNN one at a time.
    std::size_t len = 0;
    uint32_t cp = 0;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    }
    bool valid = len != 0 && i + len <= s.size();
    for (std::size_t k = 1; valid && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) {
        valid = false;
      } else {
        cp = (cp << 6) | (cc & 0x3f);
      }
    }
    if (valid) {
      const uint32_t min_cp = len == 2 ? 0x80 : (len == 3 ? 0x800 : 0x10000);
      valid = cp >= min_cp && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    }
    if (!valid) {
      out += "\\x";
      out += kLowerHex[c >> 4];
      out += kLowerHex[c & 0xf];
      ++i;
      continue;
    }
    const bool printable = !(cp <= 0x9f || cp == 0xad || (cp >= 0x200b && cp <= 0x200f) ||
                             (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2064) ||
                             cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb));
    if (printable) {
      out.append(s.substr(i, len));
    } else {
      const bool wide = cp > 0xffff;
      out += wide ? "\\U" : "\\u";
      for (int shift = wide ? 28 : 12; shift >= 0; shift -= 4) {
        out += kLowerHex[(cp >> shift) & 0xf];
      }
    }
    i += len;
  }
  out += '"';
  return out;
}

absl::Status EscapeError(std::string_view s) {
  return absl::InvalidArgumentError(Cat("invalid URL escape ", GoQuote(s)));
}

// Go's unescape: decodes %XX (and '+' in query components), with Go's extra restrictions on
// hosts (only non-ASCII bytes and "%25" may be escaped) and IPv6 zones.
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

// Go's escape.
std::string Escape(std::string_view s, Mode mode) {
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

// Go's validEncoded for paths: true when `s` contains no byte that escaping would change
// (sub-delims, ':', '@', '[', ']' and '%' are left as written).
bool ValidEncodedPath(std::string_view s) {
  for (const char ch : s) {
    switch (ch) {
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
      case ':':
      case '@':
      case '[':
      case ']':
      case '%':
        break;
      default:
        if (ShouldEscape(static_cast<unsigned char>(ch), Mode::kPath)) {
          return false;
        }
    }
  }
  return true;
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
  if (IsAsciiAlnum(c)) {
    return true;
  }
  switch (c) {
    case '-':
    case '.':
    case '_':
    case ':':
    case '~':
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
    case '%':
    case '@':
      return true;
    default:
      return false;
  }
}

// Go's validUserinfo; escapes are checked later by Unescape.
bool ValidUserinfo(std::string_view s) {
  return std::ranges::all_of(s,
                             [](char c) { return IsUserinfoChar(static_cast<unsigned char>(c)); });
}

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
      absl::StatusOr<std::string> address = Unescape(host.substr(0, zone), Mode::kHost);
      if (!address.ok()) {
        return address.status();
      }
      absl::StatusOr<std::string> zone_id = Unescape(host.substr(zone, close - zone), Mode::kZone);
      if (!zone_id.ok()) {
        return zone_id.status();
      }
      absl::StatusOr<std::string> tail = Unescape(host.substr(close), Mode::kHost);
      if (!tail.ok()) {
        return tail.status();
      }
      return Cat(*address, *zone_id, *tail);
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
  absl::StatusOr<std::string> host =
      ParseHost(at == std::string_view::npos ? authority : authority.substr(at + 1));
  if (!host.ok()) {
    return host.status();
  }
  url.host = *std::move(host);
  if (at == std::string_view::npos) {
    return absl::OkStatus();
  }
  const std::string_view userinfo = authority.substr(0, at);
  if (!ValidUserinfo(userinfo)) {
    return absl::InvalidArgumentError("net/url: invalid userinfo");
  }
  const std::size_t colon = userinfo.find(':');
  absl::StatusOr<std::string> username = Unescape(userinfo.substr(0, colon), Mode::kUserPassword);
  if (!username.ok()) {
    return username.status();
  }
  url.username = *std::move(username);
  if (colon != std::string_view::npos) {
    absl::StatusOr<std::string> password =
        Unescape(userinfo.substr(colon + 1), Mode::kUserPassword);
    if (!password.ok()) {
      return password.status();
    }
    url.password = *std::move(password);
  }
  return absl::OkStatus();
}

// Go's setPath: Path is the decoded form; RawPath keeps the written form only when Go's own
// escaping of Path would spell it differently.
absl::Status SetPath(std::string_view written, GoUrl& url) {
  absl::StatusOr<std::string> path = Unescape(written, Mode::kPath);
  if (!path.ok()) {
    return path.status();
  }
  url.path = *std::move(path);
  if (Escape(url.path, Mode::kPath) == written) {
    url.raw_path.clear();
  } else {
    url.raw_path = std::string(written);
  }
  return absl::OkStatus();
}

// Go's URL.EscapedPath.
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

bool ContainsControlByte(std::string_view s) {
  return std::ranges::any_of(s, [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c < 0x20 || c == 0x7f;
  });
}

// Go's parse(rawURL, viaRequest=true). Errors carry Go's message without the
// `parse "<url>": ` prefix.
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
  absl::StatusOr<SchemeSplit> split = GetScheme(raw);
  if (!split.ok()) {
    return split.status();
  }
  url.scheme = std::string(split->scheme);
  for (char& c : url.scheme) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  std::string_view rest = split->rest;

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
    if (absl::Status status = ParseAuthority(authority, url); !status.ok()) {
      return status;
    }
  }
  if (absl::Status status = SetPath(rest, url); !status.ok()) {
    return status;
  }
  return url;
}

// Go's splitHostPort (URL.Hostname / URL.Port): a trailing ":digits" is the port, and
// brackets around the remaining host are dropped.
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

// "userinfo@" as Go's URL.String writes it, or "" without userinfo. Go writes the '@' even
// for an empty user name ("http://@host"), so the prefix is kept whole rather than as a name.
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

// Go's URL.String for the authority form. The host is re-escaped because Go stores it
// decoded (non-ASCII bytes and zone characters come back as %XX).
std::string CanonicalString(const GoUrl& url) {
  std::string out = Cat(url.scheme, "://", SerializedUserinfo(url), Escape(url.host, Mode::kHost),
                        EscapedPath(url));
  if (url.force_query || !url.raw_query.empty()) {
    out += Cat("?", url.raw_query);
  }
  return out;
}

}  // namespace

absl::StatusOr<Endpoint> Endpoint::Parse(std::string_view text) {
  absl::StatusOr<GoUrl> url = ParseStrict(text, /*suggest=*/true);
  if (!url.ok()) {
    return url.status();
  }
  std::string canonical = CanonicalString(*url);
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
  endpoint.userinfo_ = SerializedUserinfo(*url);
  endpoint.raw_path_ = EscapedPath(*url);
  endpoint.scheme_ = std::move(url->scheme);
  endpoint.host_ = std::move(url->host);
  endpoint.path_ = std::move(url->path);
  endpoint.raw_query_ = std::move(url->raw_query);
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
