#include "model/endpoint.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "testing/status_matchers.h"

namespace discovery {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

// Expected values below were produced by Go 1.19's url.ParseRequestURI + URL.String,
// Hostname, Port, Path and RawQuery, so they pin byte-for-byte compatibility with the
// original's canonical endpoints.
struct CanonicalCase {
  std::string input;
  std::string canonical;
  std::string host;
  std::string hostname;
  std::string port;
  std::string path;
  std::string raw_query;
};

void PrintTo(const CanonicalCase& c, std::ostream* os) { *os << "'" << c.input << "'"; }

class EndpointCanonicalTest : public ::testing::TestWithParam<CanonicalCase> {};

TEST_P(EndpointCanonicalTest, MatchesGo) {
  const CanonicalCase& c = GetParam();
  absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(c.input);
  ASSERT_THAT(endpoint, IsOk());
  EXPECT_EQ(endpoint->String(), c.canonical);
  EXPECT_EQ(endpoint->host(), c.host);
  EXPECT_EQ(endpoint->Hostname(), c.hostname);
  EXPECT_EQ(endpoint->Port(), c.port);
  EXPECT_EQ(endpoint->path(), c.path);
  EXPECT_EQ(endpoint->raw_query(), c.raw_query);
}

TEST_P(EndpointCanonicalTest, CanonicalFormIsAFixedPoint) {
  absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(GetParam().input);
  ASSERT_THAT(endpoint, IsOk());
  absl::StatusOr<Endpoint> again = Endpoint::Parse(endpoint->String());
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->String(), endpoint->String());
}

INSTANTIATE_TEST_SUITE_P(
    Ordinary, EndpointCanonicalTest,
    ::testing::Values(
        // The Go original's own test cases.
        CanonicalCase{"http://example.com/metrics?query=value",
                      "http://example.com/metrics?query=value", "example.com", "example.com", "",
                      "/metrics", "query=value"},
        CanonicalCase{"http://example.com:9999/metrics", "http://example.com:9999/metrics",
                      "example.com:9999", "example.com", "9999", "/metrics", ""},
        CanonicalCase{"https://www.test.com:7002/metrics", "https://www.test.com:7002/metrics",
                      "www.test.com:7002", "www.test.com", "7002", "/metrics", ""},
        CanonicalCase{"http://www.test.com/metrics", "http://www.test.com/metrics", "www.test.com",
                      "www.test.com", "", "/metrics", ""},
        CanonicalCase{"http://blackbox.example.com", "http://blackbox.example.com",
                      "blackbox.example.com", "blackbox.example.com", "", "", ""},
        // Scheme is lower-cased, host and path case are kept.
        CanonicalCase{"HTTP://example.com/metrics", "http://example.com/metrics", "example.com",
                      "example.com", "", "/metrics", ""},
        CanonicalCase{"HtTpS://Example.COM/Metrics", "https://Example.COM/Metrics", "Example.COM",
                      "Example.COM", "", "/Metrics", ""},
        CanonicalCase{"Http+Unix://x/", "http+unix://x/", "x", "x", "", "/", ""},
        // Empty path, root path, trailing slash.
        CanonicalCase{"http://example.com/", "http://example.com/", "example.com", "example.com",
                      "", "/", ""},
        CanonicalCase{"http://example.com/metrics/", "http://example.com/metrics/", "example.com",
                      "example.com", "", "/metrics/", ""},
        CanonicalCase{"http://127.0.0.1:9100", "http://127.0.0.1:9100", "127.0.0.1:9100",
                      "127.0.0.1", "9100", "", ""},
        // Other schemes (blackbox modules).
        CanonicalCase{"tcp://10.0.0.1:53", "tcp://10.0.0.1:53", "10.0.0.1:53", "10.0.0.1", "53", "",
                      ""},
        CanonicalCase{"icmp://10.0.0.1", "icmp://10.0.0.1", "10.0.0.1", "10.0.0.1", "", "", ""},
        CanonicalCase{"a+b.c-d://host/", "a+b.c-d://host/", "host", "host", "", "/", ""},
        CanonicalCase{"https://blackbox.example.com/probe?module=http_2xx",
                      "https://blackbox.example.com/probe?module=http_2xx", "blackbox.example.com",
                      "blackbox.example.com", "", "/probe", "module=http_2xx"}));

INSTANTIATE_TEST_SUITE_P(
    PathEscaping, EndpointCanonicalTest,
    ::testing::Values(
        CanonicalCase{"http://example.com/a b", "http://example.com/a%20b", "example.com",
                      "example.com", "", "/a b", ""},
        CanonicalCase{"http://example.com/a%20b", "http://example.com/a%20b", "example.com",
                      "example.com", "", "/a b", ""},
        // A valid escaping is kept as written (Go's RawPath), in either hex case.
        CanonicalCase{"http://example.com/a%2Fb", "http://example.com/a%2Fb", "example.com",
                      "example.com", "", "/a/b", ""},
        CanonicalCase{"http://example.com/a%2fb", "http://example.com/a%2fb", "example.com",
                      "example.com", "", "/a/b", ""},
        CanonicalCase{"http://example.com/%7Efoo", "http://example.com/%7Efoo", "example.com",
                      "example.com", "", "/~foo", ""},
        CanonicalCase{"http://x.com/a%41", "http://x.com/a%41", "x.com", "x.com", "", "/aA", ""},
        CanonicalCase{"http://x.com/%2F%2f", "http://x.com/%2F%2f", "x.com", "x.com", "", "///",
                      ""},
        CanonicalCase{"http://x.com/a%3Fb", "http://x.com/a%3Fb", "x.com", "x.com", "", "/a?b", ""},
        // ...but once anything needs escaping, Go re-escapes the decoded path and the written
        // %2F is lost.
        CanonicalCase{"http://example.com/a%2Fb c", "http://example.com/a/b%20c", "example.com",
                      "example.com", "", "/a/b c", ""},
        CanonicalCase{"http://x.com/\xc3\xa4%2F", "http://x.com/%C3%A4/", "x.com", "x.com", "",
                      "/\xc3\xa4/", ""},
        // Unicode paths.
        CanonicalCase{"http://example.com/\xc3\xa4", "http://example.com/%C3%A4", "example.com",
                      "example.com", "", "/\xc3\xa4", ""},
        CanonicalCase{"http://example.com/%c3%a4", "http://example.com/%c3%a4", "example.com",
                      "example.com", "", "/\xc3\xa4", ""},
        CanonicalCase{"http://example.com/\xe6\x97\xa5\xe6\x9c\xac",
                      "http://example.com/%E6%97%A5%E6%9C%AC", "example.com", "example.com", "",
                      "/\xe6\x97\xa5\xe6\x9c\xac", ""},
        CanonicalCase{"http://x.com/\xff", "http://x.com/%FF", "x.com", "x.com", "", "/\xff", ""},
        // Characters Go escapes in paths, and those it leaves alone.
        CanonicalCase{"http://example.com/a\"b<c>d", "http://example.com/a%22b%3Cc%3Ed",
                      "example.com", "example.com", "", "/a\"b<c>d", ""},
        CanonicalCase{"http://example.com/a{b}|c\\d^e`f",
                      "http://example.com/a%7Bb%7D%7Cc%5Cd%5Ee%60f", "example.com", "example.com",
                      "", "/a{b}|c\\d^e`f", ""},
        CanonicalCase{"http://example.com/!$&'()*+,;=:@", "http://example.com/!$&'()*+,;=:@",
                      "example.com", "example.com", "", "/!$&'()*+,;=:@", ""},
        CanonicalCase{"http://example.com/[x]", "http://example.com/[x]", "example.com",
                      "example.com", "", "/[x]", ""},
        CanonicalCase{"http://example.com/%25", "http://example.com/%25", "example.com",
                      "example.com", "", "/%", ""},
        CanonicalCase{"http://example.com/%2525", "http://example.com/%2525", "example.com",
                      "example.com", "", "/%25", ""},
        CanonicalCase{"http://example.com/a+b", "http://example.com/a+b", "example.com",
                      "example.com", "", "/a+b", ""},
        CanonicalCase{"http://example.com/%2B", "http://example.com/%2B", "example.com",
                      "example.com", "", "/+", ""},
        // Dot segments and double slashes are not normalised.
        CanonicalCase{"http://example.com/a/../b/./c", "http://example.com/a/../b/./c",
                      "example.com", "example.com", "", "/a/../b/./c", ""},
        CanonicalCase{"http://example.com//double//slash", "http://example.com//double//slash",
                      "example.com", "example.com", "", "//double//slash", ""}));

INSTANTIATE_TEST_SUITE_P(
    Queries, EndpointCanonicalTest,
    ::testing::Values(
        // A lone trailing '?' is kept (Go's ForceQuery).
        CanonicalCase{"http://example.com/metrics?", "http://example.com/metrics?", "example.com",
                      "example.com", "", "/metrics", ""},
        CanonicalCase{"http://example.com?", "http://example.com?", "example.com", "example.com",
                      "", "", ""},
        CanonicalCase{"http://example.com/metrics??", "http://example.com/metrics??", "example.com",
                      "example.com", "", "/metrics", "?"},
        CanonicalCase{"http://example.com/metrics?a=1?b=2", "http://example.com/metrics?a=1?b=2",
                      "example.com", "example.com", "", "/metrics", "a=1?b=2"},
        // The raw query is kept verbatim, even where it is not valid escaping.
        CanonicalCase{"http://example.com/metrics?q=a b", "http://example.com/metrics?q=a b",
                      "example.com", "example.com", "", "/metrics", "q=a b"},
        CanonicalCase{"http://example.com/metrics?a=%zz&b=%41+c",
                      "http://example.com/metrics?a=%zz&b=%41+c", "example.com", "example.com", "",
                      "/metrics", "a=%zz&b=%41+c"},
        CanonicalCase{"http://example.com/\xc3\xa4?\xc3\xa4=\xc3\xb6",
                      "http://example.com/%C3%A4?\xc3\xa4=\xc3\xb6", "example.com", "example.com",
                      "", "/\xc3\xa4", "\xc3\xa4=\xc3\xb6"},
        CanonicalCase{"http://x.com/?a=1&a=2&a=3", "http://x.com/?a=1&a=2&a=3", "x.com", "x.com",
                      "", "/", "a=1&a=2&a=3"},
        CanonicalCase{"http://x.com/a?b%3F", "http://x.com/a?b%3F", "x.com", "x.com", "", "/a",
                      "b%3F"}));

INSTANTIATE_TEST_SUITE_P(
    Authorities, EndpointCanonicalTest,
    ::testing::Values(
        // Userinfo is kept in the canonical form, but never in host().
        CanonicalCase{"http://user@example.com/metrics", "http://user@example.com/metrics",
                      "example.com", "example.com", "", "/metrics", ""},
        CanonicalCase{"http://user:pass@example.com/metrics",
                      "http://user:pass@example.com/metrics", "example.com", "example.com", "",
                      "/metrics", ""},
        CanonicalCase{"http://user:p%40ss@example.com/", "http://user:p%40ss@example.com/",
                      "example.com", "example.com", "", "/", ""},
        CanonicalCase{"http://us%3Aer:pa:ss@example.com/", "http://us%3Aer:pa%3Ass@example.com/",
                      "example.com", "example.com", "", "/", ""},
        CanonicalCase{"http://a!b@example.com/", "http://a%21b@example.com/", "example.com",
                      "example.com", "", "/", ""},
        CanonicalCase{"http://a@b@example.com/", "http://a%40b@example.com/", "example.com",
                      "example.com", "", "/", ""},
        CanonicalCase{"http://@example.com/", "http://@example.com/", "example.com", "example.com",
                      "", "/", ""},
        CanonicalCase{"http://:@example.com/", "http://:@example.com/", "example.com",
                      "example.com", "", "/", ""},
        CanonicalCase{"http://user:pass@[::1]:80/", "http://user:pass@[::1]:80/", "[::1]:80", "::1",
                      "80", "/", ""},
        // IPv6 literals and zones.
        CanonicalCase{"http://[::1]:9100/metrics", "http://[::1]:9100/metrics", "[::1]:9100", "::1",
                      "9100", "/metrics", ""},
        CanonicalCase{"http://[::1]/metrics", "http://[::1]/metrics", "[::1]", "::1", "",
                      "/metrics", ""},
        CanonicalCase{"http://[2001:db8::1]:443/x?y=z", "http://[2001:db8::1]:443/x?y=z",
                      "[2001:db8::1]:443", "2001:db8::1", "443", "/x", "y=z"},
        CanonicalCase{"http://[fe80::1%25en0]:8080/", "http://[fe80::1%25en0]:8080/",
                      "[fe80::1%en0]:8080", "fe80::1%en0", "8080", "/", ""},
        CanonicalCase{"http://[fe80::1%25%65n0]/", "http://[fe80::1%25en0]/", "[fe80::1%en0]",
                      "fe80::1%en0", "", "/", ""},
        // Go's port rule is only "digits"; an empty port is accepted, and (ours) up to 65535.
        CanonicalCase{"http://example.com:/", "http://example.com:/", "example.com:", "example.com",
                      "", "/", ""},
        CanonicalCase{"http://example.com:65535/", "http://example.com:65535/", "example.com:65535",
                      "example.com", "65535", "/", ""},
        CanonicalCase{"http://example.com:80:80/", "http://example.com:80:80/", "example.com:80:80",
                      "example.com:80", "80", "/", ""},
        // Hosts: non-ASCII bytes are stored decoded and written %-escaped.
        CanonicalCase{"http://%C3%BC.com/", "http://%C3%BC.com/", "\xc3\xbc.com", "\xc3\xbc.com",
                      "", "/", ""},
        CanonicalCase{"http://\xc3\xbc.com/", "http://%C3%BC.com/", "\xc3\xbc.com", "\xc3\xbc.com",
                      "", "/", ""},
        CanonicalCase{"http://exa_mple.com/", "http://exa_mple.com/", "exa_mple.com",
                      "exa_mple.com", "", "/", ""},
        CanonicalCase{"http://a<b>.com/", "http://a<b>.com/", "a<b>.com", "a<b>.com", "", "/",
                      ""}));

TEST(EndpointTest, QueryParamsDecodeInOrder) {
  absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(
      "http://example.com/metrics?module=http_2xx&target=https%3A%2F%2Fx.com&a=1&a=2&b");
  ASSERT_THAT(endpoint, IsOk());
  EXPECT_THAT(endpoint->QueryParams(),
              ElementsAre(Pair("module", "http_2xx"), Pair("target", "https://x.com"),
                          Pair("a", "1"), Pair("a", "2"), Pair("b", "")));
}

TEST(EndpointTest, QueryParamsFollowGoParseQuery) {
  struct Case {
    std::string query;
    std::vector<std::pair<std::string, std::string>> params;
  };
  const std::vector<Case> cases = {
      {"query=value", {{"query", "value"}}},
      {"a+b=c+d", {{"a b", "c d"}}},
      {"a=1;b=2&c=3", {{"c", "3"}}},      // pairs with ';' are dropped (Go 1.17+)
      {"a=%zz&b=%41+c", {{"b", "A c"}}},  // bad escapes drop the pair
      {"=v&k=", {{"", "v"}, {"k", ""}}},  // empty key and empty value are kept
      {"&&a=1&", {{"a", "1"}}},           // empty pairs are skipped
      {"a=1?b=2", {{"a", "1?b=2"}}},      // only the first '?' starts the query
      {"x=%C3%A4&y=\xc3\xa4", {{"x", "\xc3\xa4"}, {"y", "\xc3\xa4"}}},
      {"b%3F", {{"b?", ""}}},
      {"k=a=b", {{"k", "a=b"}}},
      {"", {}},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Endpoint> endpoint = Endpoint::Parse("http://x.com/p?" + c.query);
    ASSERT_THAT(endpoint, IsOk()) << c.query;
    EXPECT_EQ(endpoint->QueryParams(), c.params) << c.query;
  }
}

TEST(EndpointTest, NoQueryGivesNoParams) {
  absl::StatusOr<Endpoint> endpoint = Endpoint::Parse("http://x.com/p");
  ASSERT_THAT(endpoint, IsOk());
  EXPECT_THAT(endpoint->QueryParams(), IsEmpty());
  EXPECT_EQ(endpoint->raw_query(), "");
}

TEST(EndpointTest, SchemeIsLowerCased) {
  absl::StatusOr<Endpoint> endpoint = Endpoint::Parse("HTTPS://Host.Example.com/X");
  ASSERT_THAT(endpoint, IsOk());
  EXPECT_EQ(endpoint->scheme(), "https");
  EXPECT_EQ(endpoint->String(), "https://Host.Example.com/X");
}

struct ErrorCase {
  std::string input;
  std::string message;
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << "'" << c.input << "'"; }

class EndpointErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(EndpointErrorTest, IsInvalidArgumentWithMessage) {
  EXPECT_THAT(Endpoint::Parse(GetParam().input),
              StatusIs(absl::StatusCode::kInvalidArgument, GetParam().message));
}

// Go's own errors, with Go's wording after `parse "<input>": `.
INSTANTIATE_TEST_SUITE_P(
    GoErrors, EndpointErrorTest,
    ::testing::Values(
        ErrorCase{"", "'' is not a valid url: parse \"\": empty url"},
        ErrorCase{"http://example.com/a\nb",
                  "'http://example.com/a\nb' is not a valid url: parse "
                  "\"http://example.com/a\\nb\": net/url: invalid control character in URL"},
        ErrorCase{"http://example.com/a\tb",
                  "'http://example.com/a\tb' is not a valid url: parse "
                  "\"http://example.com/a\\tb\": net/url: invalid control character in URL"},
        ErrorCase{"http://example.com/a\x7f"
                  "b",
                  "'http://example.com/a\x7f"
                  "b' is not a valid url: parse \"http://example.com/a\\x7fb\": net/url: invalid "
                  "control character in URL"},
        ErrorCase{":foo", "':foo' is not a valid url: parse \":foo\": missing protocol scheme"},
        ErrorCase{"http://example.com/a%zzb",
                  "'http://example.com/a%zzb' is not a valid url: parse "
                  "\"http://example.com/a%zzb\": invalid URL escape \"%zz\""},
        ErrorCase{"http://example.com/a%2",
                  "'http://example.com/a%2' is not a valid url: parse \"http://example.com/a%2\": "
                  "invalid URL escape \"%2\""},
        ErrorCase{"http://example.com/a%",
                  "'http://example.com/a%' is not a valid url: parse \"http://example.com/a%\": "
                  "invalid URL escape \"%\""},
        ErrorCase{"http://a b@example.com/",
                  "'http://a b@example.com/' is not a valid url: parse "
                  "\"http://a b@example.com/\": net/url: invalid userinfo"},
        ErrorCase{"http://user%zz@example.com/",
                  "'http://user%zz@example.com/' is not a valid url: parse "
                  "\"http://user%zz@example.com/\": invalid URL escape \"%zz\""},
        ErrorCase{"http://[fe80::1%en0]/",
                  "'http://[fe80::1%en0]/' is not a valid url: parse \"http://[fe80::1%en0]/\": "
                  "invalid URL escape \"%en\""},
        ErrorCase{"http://[::1",
                  "'http://[::1' is not a valid url: parse \"http://[::1\": "
                  "missing ']' in host"},
        ErrorCase{"http://[::1]x/",
                  "'http://[::1]x/' is not a valid url: parse "
                  "\"http://[::1]x/\": invalid port \"x\" after host"},
        ErrorCase{"http://[::1]:abc/",
                  "'http://[::1]:abc/' is not a valid url: parse "
                  "\"http://[::1]:abc/\": invalid port \":abc\" after host"},
        ErrorCase{"http://example.com:abc/",
                  "'http://example.com:abc/' is not a valid url: parse "
                  "\"http://example.com:abc/\": invalid port \":abc\" after host"},
        ErrorCase{"http://exa mple.com/",
                  "'http://exa mple.com/' is not a valid url: parse \"http://exa mple.com/\": "
                  "invalid character \" \" in host name"},
        ErrorCase{"http://a{b}.com/",
                  "'http://a{b}.com/' is not a valid url: parse "
                  "\"http://a{b}.com/\": invalid character \"{\" in host "
                  "name"},
        // Hosts may %-escape only non-ASCII bytes.
        ErrorCase{"http://exa%20mple.com/",
                  "'http://exa%20mple.com/' is not a valid url: parse "
                  "\"http://exa%20mple.com/\": invalid URL escape \"%20\""},
        ErrorCase{"http://%41.com/",
                  "'http://%41.com/' is not a valid url: parse "
                  "\"http://%41.com/\": invalid URL escape \"%41\""},
        // Go quotes the input the way strconv.Quote does.
        ErrorCase{"\xff/x",
                  "'\xff/x' is not a valid url: parse \"\\xff/x\": invalid URI for "
                  "request"},
        ErrorCase{"\xc2\x80x y",
                  "'\xc2\x80x y' is not a valid url: parse \"\\u0080x y\": invalid "
                  "URI for request"},
        ErrorCase{"a\xc2\xad"
                  "b c",
                  "'a\xc2\xad"
                  "b c' is not a valid url: parse \"a\\u00adb c\": invalid URI for request"},
        ErrorCase{
            "\xe6\x97\xa5\xe6\x9c\xac x",
            "'\xe6\x97\xa5\xe6\x9c\xac x' is not a valid url: parse \"\xe6\x97\xa5\xe6\x9c\xac "
            "x\": invalid URI for request"},
        ErrorCase{"a\"b\\c d",
                  "'a\"b\\c d' is not a valid url: parse \"a\\\"b\\\\c d\": invalid URI for "
                  "request"},
        ErrorCase{"\xe2\x80\xa8 x",
                  "'\xe2\x80\xa8 x' is not a valid url: parse \"\\u2028 x\": "
                  "invalid URI for request"},
        ErrorCase{"\xf0\x9f\x98\x80 x",
                  "'\xf0\x9f\x98\x80 x' is not a valid url: parse "
                  "\"\xf0\x9f\x98\x80 x\": invalid URI for request"},
        ErrorCase{"\xed\xa0\x80 x",
                  "'\xed\xa0\x80 x' is not a valid url: parse "
                  "\"\\xed\\xa0\\x80 x\": invalid URI for request"},
        ErrorCase{"\xc0\xaf x",
                  "'\xc0\xaf x' is not a valid url: parse \"\\xc0\\xaf x\": invalid "
                  "URI for request"}));

// Inputs Go accepts or rejects without a hint, refused or explained by our stricter rules.
INSTANTIATE_TEST_SUITE_P(
    StricterRules, EndpointErrorTest,
    ::testing::Values(
        ErrorCase{"http://example.com:65536/metrics",
                  "'http://example.com:65536/metrics' is not a valid url: port 65536 is out of "
                  "range (at most 65535)"},
        ErrorCase{"http://[::1]:12345678/",
                  "'http://[::1]:12345678/' is not a valid url: port 12345678 is out of range (at "
                  "most 65535)"},
        // Opaque input: Go takes "localhost" for the scheme.
        ErrorCase{"localhost:9100",
                  "'localhost:9100' is not a valid url: missing '//' after the "
                  "scheme; did you mean 'http://localhost:9100'?"},
        ErrorCase{"localhost:9100/metrics",
                  "'localhost:9100/metrics' is not a valid url: missing '//' after the scheme; "
                  "did you mean 'http://localhost:9100/metrics'?"},
        ErrorCase{"example.com:9999/metrics",
                  "'example.com:9999/metrics' is not a valid url: missing '//' after the "
                  "scheme; did you mean 'http://example.com:9999/metrics'?"},
        ErrorCase{"http:example.com",
                  "'http:example.com' is not a valid url: missing '//' "
                  "after the scheme; did you mean 'http://example.com'?"},
        ErrorCase{"tcp:10.0.0.1:53",
                  "'tcp:10.0.0.1:53' is not a valid url: missing '//' after "
                  "the scheme; did you mean 'tcp://10.0.0.1:53'?"},
        ErrorCase{"http:",
                  "'http:' is not a valid url: missing '//' after the scheme; expected "
                  "'scheme://host[:port][/path][?query]'"},
        // No scheme.
        ErrorCase{"example.com/metrics",
                  "'example.com/metrics' is not a valid url: parse \"example.com/metrics\": "
                  "invalid URI for request; did you mean 'http://example.com/metrics'?"},
        ErrorCase{"example.com",
                  "'example.com' is not a valid url: parse \"example.com\": "
                  "invalid URI for request; did you mean 'http://example.com'?"},
        ErrorCase{"10.0.0.1:9100",
                  "'10.0.0.1:9100' is not a valid url: parse \"10.0.0.1:9100\": "
                  "invalid URI for request; did you mean "
                  "'http://10.0.0.1:9100'?"},
        ErrorCase{"://example.com",
                  "'://example.com' is not a valid url: parse "
                  "\"://example.com\": missing protocol scheme; did you mean "
                  "'http://example.com'?"},
        ErrorCase{"1http://host/",
                  "'1http://host/' is not a valid url: parse \"1http://host/\": invalid URI for "
                  "request"},
        ErrorCase{"/metrics",
                  "'/metrics' is not a valid url: missing scheme and host; expected "
                  "'scheme://host[:port][/path][?query]'"},
        ErrorCase{"*",
                  "'*' is not a valid url: missing scheme and host; expected "
                  "'scheme://host[:port][/path][?query]'"},
        ErrorCase{"//example.com/metrics",
                  "'//example.com/metrics' is not a valid url: missing scheme; did you mean "
                  "'http://example.com/metrics'?"},
        // No host.
        ErrorCase{"http://",
                  "'http://' is not a valid url: missing host; expected "
                  "'scheme://host[:port][/path][?query]'"},
        ErrorCase{"http:///metrics",
                  "'http:///metrics' is not a valid url: missing host; "
                  "expected 'scheme://host[:port][/path][?query]'"},
        ErrorCase{"http://:80/",
                  "'http://:80/' is not a valid url: missing host; expected "
                  "'scheme://host[:port][/path][?query]'"},
        ErrorCase{"http://@/",
                  "'http://@/' is not a valid url: missing host; expected "
                  "'scheme://host[:port][/path][?query]'"},
        ErrorCase{"http://[]:80/",
                  "'http://[]:80/' is not a valid url: missing host; expected "
                  "'scheme://host[:port][/path][?query]'"},
        ErrorCase{"http:/example.com",
                  "'http:/example.com' is not a valid url: missing host; "
                  "did you mean 'http://example.com'?"},
        // Go prints this zone as "%FF" but refuses to read that escape back in a zone.
        ErrorCase{"http://[a%25\xff]/",
                  "'http://[a%25\xff]/' is not a valid url: its canonical form "
                  "'http://[a%25%FF]/' does not parse back"},
        // Fragments.
        ErrorCase{"http://example.com/metrics#frag",
                  "'http://example.com/metrics#frag' is not a valid url: fragments ('#...') are "
                  "not allowed; escape a literal '#' as %23"},
        ErrorCase{"http://example.com/metrics?a=1#frag",
                  "'http://example.com/metrics?a=1#frag' is not a valid url: fragments ('#...') "
                  "are not allowed; escape a literal '#' as %23"}));

TEST(EndpointTest, EscapedHashIsAccepted) {
  absl::StatusOr<Endpoint> endpoint = Endpoint::Parse("http://example.com/a%23b");
  ASSERT_THAT(endpoint, IsOk());
  EXPECT_EQ(endpoint->path(), "/a#b");
  EXPECT_EQ(endpoint->String(), "http://example.com/a%23b");
}

TEST(EndpointTest, SuggestionIsItselfValid) {
  for (const std::string input :
       {"localhost:9100", "example.com:9999/metrics", "example.com/metrics", "10.0.0.1:9100",
        "http:example.com", "tcp:10.0.0.1:53", "//example.com/metrics", "://example.com"}) {
    absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(input);
    ASSERT_THAT(endpoint, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("did you mean")))
        << input;
    const std::string message{endpoint.status().message()};
    const std::size_t start = message.find("did you mean '") + 14;
    const std::string suggestion = message.substr(start, message.size() - start - 2);
    EXPECT_THAT(Endpoint::Parse(suggestion), IsOk()) << suggestion;
  }
}

}  // namespace
}  // namespace discovery
