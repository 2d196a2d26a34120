#include "selector/selector.h"

#include <map>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "testing/status_matchers.h"

namespace discovery::selector {

// Readable gtest failure output for requirements.
void PrintTo(const Requirement& requirement, std::ostream* os) {
  *os << "{key: '" << requirement.key << "', op: " << static_cast<int>(requirement.op)
      << ", values: [" << absl::StrJoin(requirement.values, "|") << "]}";
}

namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using Labels = std::map<std::string, std::string>;

// 253 characters: three 63-character DNS labels and one of 61, joined by dots.
std::string LongestPrefix() {
  return absl::StrCat(std::string(63, 'a'), ".", std::string(63, 'b'), ".", std::string(63, 'c'),
                      ".", std::string(61, 'd'));
}

struct ValidCase {
  std::string input;
  std::vector<Requirement> requirements;
  std::string canonical;
};

std::vector<ValidCase> ValidCases() {
  return {
      {"", {}, ""},
      {" \t\r\n ", {}, ""},
      {"x=a", {{"x", Operator::kEquals, {"a"}}}, "x=a"},
      {"x==a", {{"x", Operator::kDoubleEquals, {"a"}}}, "x==a"},
      {"x!=a", {{"x", Operator::kNotEquals, {"a"}}}, "x!=a"},
      {"x in (b,a,b)", {{"x", Operator::kIn, {"a", "b"}}}, "x in (a,b)"},
      {"x notin (a)", {{"x", Operator::kNotIn, {"a"}}}, "x notin (a)"},
      {"x", {{"x", Operator::kExists, {}}}, "x"},
      {"!x", {{"x", Operator::kDoesNotExist, {}}}, "!x"},
      {"x>1", {{"x", Operator::kGreaterThan, {"1"}}}, "x>1"},
      {"x<10", {{"x", Operator::kLessThan, {"10"}}}, "x<10"},
      {"x>007", {{"x", Operator::kGreaterThan, {"007"}}}, "x>007"},
      {"x>9223372036854775807",
       {{"x", Operator::kGreaterThan, {"9223372036854775807"}}},
       "x>9223372036854775807"},
      // The empty value, in every spelling apimachinery accepts.
      {"x=", {{"x", Operator::kEquals, {""}}}, "x="},
      {"x!=", {{"x", Operator::kNotEquals, {""}}}, "x!="},
      {"x==,y", {{"x", Operator::kDoubleEquals, {""}}, {"y", Operator::kExists, {}}}, "x==,y"},
      {"x in ()", {{"x", Operator::kIn, {""}}}, "x in ()"},
      {"x in (,)", {{"x", Operator::kIn, {""}}}, "x in ()"},
      {"x in (,,)", {{"x", Operator::kIn, {""}}}, "x in ()"},
      {"x in (,a)", {{"x", Operator::kIn, {"", "a"}}}, "x in (,a)"},
      {"x in (a,)", {{"x", Operator::kIn, {"", "a"}}}, "x in (,a)"},
      {"x in (a,,b)", {{"x", Operator::kIn, {"", "a", "b"}}}, "x in (,a,b)"},
      {"x notin ()", {{"x", Operator::kNotIn, {""}}}, "x notin ()"},
      // "in" and "notin" are keywords only in operator position.
      {"in in (in,notin)", {{"in", Operator::kIn, {"in", "notin"}}}, "in in (in,notin)"},
      {"notin notin (in)", {{"notin", Operator::kNotIn, {"in"}}}, "notin notin (in)"},
      {"x=in", {{"x", Operator::kEquals, {"in"}}}, "x=in"},
      {"in", {{"in", Operator::kExists, {}}}, "in"},
      {"!notin", {{"notin", Operator::kDoesNotExist, {}}}, "!notin"},
      // Whitespace is allowed around every token, but not required next to symbols.
      {"  x  =  a  ,  y  in  (  c  ,  b  )  ,  !  z  ",
       {{"x", Operator::kEquals, {"a"}},
        {"y", Operator::kIn, {"b", "c"}},
        {"z", Operator::kDoesNotExist, {}}},
       "x=a,y in (b,c),!z"},
      {"x\tin\t(a)", {{"x", Operator::kIn, {"a"}}}, "x in (a)"},
      {"x\n!=\ra", {{"x", Operator::kNotEquals, {"a"}}}, "x!=a"},
      {"x in(a)", {{"x", Operator::kIn, {"a"}}}, "x in (a)"},
      {"x notin(a,b)", {{"x", Operator::kNotIn, {"a", "b"}}}, "x notin (a,b)"},
      {"x>1,y<2",
       {{"x", Operator::kGreaterThan, {"1"}}, {"y", Operator::kLessThan, {"2"}}},
       "x>1,y<2"},
      {"x > 1", {{"x", Operator::kGreaterThan, {"1"}}}, "x>1"},
      // Sorted by key; requirements on one key keep their written order.
      {"b=1,a=2", {{"a", Operator::kEquals, {"2"}}, {"b", Operator::kEquals, {"1"}}}, "a=2,b=1"},
      {"a!=x,a=y",
       {{"a", Operator::kNotEquals, {"x"}}, {"a", Operator::kEquals, {"y"}}},
       "a!=x,a=y"},
      {"a=y,a!=x",
       {{"a", Operator::kEquals, {"y"}}, {"a", Operator::kNotEquals, {"x"}}},
       "a=y,a!=x"},
      {"x=a,x=a", {{"x", Operator::kEquals, {"a"}}, {"x", Operator::kEquals, {"a"}}}, "x=a,x=a"},
      {"!x,y", {{"x", Operator::kDoesNotExist, {}}, {"y", Operator::kExists, {}}}, "!x,y"},
      {"c notin (f,e),b!=d,a",
       {{"a", Operator::kExists, {}},
        {"b", Operator::kNotEquals, {"d"}},
        {"c", Operator::kNotIn, {"e", "f"}}},
       "a,b!=d,c notin (e,f)"},
      // Keys with prefixes and the full name alphabet; values with the full alphabet.
      {"example.com/name=v",
       {{"example.com/name", Operator::kEquals, {"v"}}},
       "example.com/name=v"},
      {"a-b.c/A_b.c-D9=z_Y.x-9",
       {{"a-b.c/A_b.c-D9", Operator::kEquals, {"z_Y.x-9"}}},
       "a-b.c/A_b.c-D9=z_Y.x-9"},
      {"a=b,c!=d,e in (g,f)",
       {{"a", Operator::kEquals, {"b"}},
        {"c", Operator::kNotEquals, {"d"}},
        {"e", Operator::kIn, {"f", "g"}}},
       "a=b,c!=d,e in (f,g)"},
  };
}

TEST(SelectorParseTest, AcceptsValidSelectors) {
  for (const ValidCase& c : ValidCases()) {
    SCOPED_TRACE(c.input);
    absl::StatusOr<Selector> selector = Selector::Parse(c.input);
    ASSERT_THAT(selector, IsOk());
    EXPECT_EQ(selector->requirements(), c.requirements);
    EXPECT_EQ(selector->String(), c.canonical);
    EXPECT_EQ(selector->Empty(), c.requirements.empty());
  }
}

TEST(SelectorParseTest, StringRoundTrips) {
  for (const ValidCase& c : ValidCases()) {
    SCOPED_TRACE(c.input);
    absl::StatusOr<Selector> parsed = Selector::Parse(c.input);
    ASSERT_THAT(parsed, IsOk());
    absl::StatusOr<Selector> reparsed = Selector::Parse(parsed->String());
    ASSERT_THAT(reparsed, IsOk());
    EXPECT_EQ(reparsed->requirements(), parsed->requirements());
    EXPECT_EQ(reparsed->String(), parsed->String());
  }
}

struct ErrorCase {
  std::string input;
  int position;
  std::string detail;
};

std::string ExpectedMessage(const ErrorCase& c) {
  return absl::StrCat("invalid selector '", c.input, "' at position ", c.position, ": ", c.detail);
}

constexpr absl::string_view kOperatorExpected =
    "one of 'in', 'notin', '=', '==', '!=', '>', '<', ',' or end of string";
constexpr absl::string_view kNameRule =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName', 'my.name' or '123-abc')";
constexpr absl::string_view kValueRule =
    "must be empty or consist of alphanumeric characters, '-', '_' or '.', and start and end "
    "with an alphanumeric character (e.g. 'MyValue', 'my_value' or '12345')";

TEST(SelectorParseTest, RejectsMalformedSyntaxWithPosition) {
  const std::vector<ErrorCase> cases = {
      {"env in (a", 9, "found end of string, expected: ',' or ')'"},
      {",", 0, "found ',', expected: '!', identifier or end of string"},
      {" , ", 1, "found ',', expected: '!', identifier or end of string"},
      {"(", 0, "found '(', expected: '!', identifier or end of string"},
      {"!=a", 0, "found '!=', expected: '!', identifier or end of string"},
      {"=a", 0, "found '=', expected: '!', identifier or end of string"},
      {"a,", 2, "found end of string, expected: identifier or '!' after ','"},
      {"a,,b", 2, "found ',', expected: identifier or '!' after ','"},
      {"x in (a,b),,y", 11, "found ',', expected: identifier or '!' after ','"},
      {"a, =b", 3, "found '=', expected: identifier or '!' after ','"},
      {"a b", 2, absl::StrCat("found 'b', expected: ", kOperatorExpected)},
      {"k ! v", 2, absl::StrCat("found '!', expected: ", kOperatorExpected)},
      {"k (a)", 2, absl::StrCat("found '(', expected: ", kOperatorExpected)},
      {"a=b,c d", 6, absl::StrCat("found 'd', expected: ", kOperatorExpected)},
      {"x=a b", 4, "found 'b', expected: ',' or end of string"},
      {"k=v=w", 3, "found '=', expected: ',' or end of string"},
      {"k in (a)x", 8, "found 'x', expected: ',' or end of string"},
      {"k in (a))", 8, "found ')', expected: ',' or end of string"},
      {"!", 1, "found end of string, expected: identifier"},
      {"!!a", 1, "found '!', expected: identifier"},
      {"a,!", 3, "found end of string, expected: identifier"},
      {"!a=b", 2, "found '=', expected: ',' or end of string ('!key' takes no operator or value)"},
      {"!a in (b)", 3,
       "found 'in', expected: ',' or end of string ('!key' takes no operator or value)"},
      {"k in", 4, "found end of string, expected: '('"},
      {"k notin", 7, "found end of string, expected: '('"},
      {"k in a", 5, "found 'a', expected: '('"},
      {"k in in", 5, "found 'in', expected: '('"},
      {"k in (", 6, "found end of string, expected: identifier, ',' or ')'"},
      {"k in (=)", 6, "found '=', expected: identifier, ',' or ')'"},
      {"k in ((a))", 6, "found '(', expected: identifier, ',' or ')'"},
      {"k in (a b)", 8, "found 'b', expected: ',' or ')'"},
      {"k in (a,", 8, "found end of string, expected: identifier, ',' or ')'"},
      {"k in (a,=)", 8, "found '=', expected: identifier, ',' or ')'"},
      {"k in (,", 7, "found end of string, expected: identifier, ',' or ')'"},
      {"k=(", 2, "found '(', expected: value"},
      {"k===v", 3, "found '=', expected: value"},
      {"k!=!v", 3, "found '!', expected: value"},
      {"k==)", 3, "found ')', expected: value"},
      {"k>", 2, "'>' and '<' require an integer (64-bit), found no value"},
      {"k<,a", 2, "'>' and '<' require an integer (64-bit), found no value"},
      {"k>a", 2, "'>' and '<' require an integer (64-bit), found 'a'"},
      {"k < 1.5", 4, "'>' and '<' require an integer (64-bit), found '1.5'"},
      {"k>1_000", 2, "'>' and '<' require an integer (64-bit), found '1_000'"},
      {"k>9223372036854775808", 2,
       "'>' and '<' require an integer (64-bit), found '9223372036854775808'"},
      {"k>+-1", 2, "'>' and '<' require an integer (64-bit), found '+-1'"},
      // Signed integers parse but are not valid label values, exactly as in apimachinery.
      {"k>-1", 2, absl::StrCat("invalid label value '-1': ", kValueRule)},
      {"k<+1", 2, absl::StrCat("invalid label value '+1': ", kValueRule)},
  };
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.input);
    EXPECT_THAT(Selector::Parse(c.input),
                StatusIs(absl::StatusCode::kInvalidArgument, ExpectedMessage(c)));
  }
}

TEST(SelectorParseTest, RejectsInvalidKeysAndValuesWithPosition) {
  const std::string name64 = std::string(64, 'n');
  const std::string value64 = std::string(64, 'v');
  const std::string prefix254 = LongestPrefix() + "d";
  const std::vector<ErrorCase> cases = {
      {"1$=a", 0, absl::StrCat("invalid label key '1$': name part ", kNameRule)},
      {"x, !y$", 4, absl::StrCat("invalid label key 'y$': name part ", kNameRule)},
      {"_a", 0, absl::StrCat("invalid label key '_a': name part ", kNameRule)},
      {"a. in (b)", 0, absl::StrCat("invalid label key 'a.': name part ", kNameRule)},
      {"a/-b", 0, absl::StrCat("invalid label key 'a/-b': name part ", kNameRule)},
      {"a/b/c=d", 0,
       "invalid label key 'a/b/c': a label key is a name with an optional DNS subdomain prefix "
       "and one '/' (e.g. 'example.com/MyName')"},
      {"/a", 0, "invalid label key '/a': prefix part must be non-empty"},
      {"a/", 0, "invalid label key 'a/': name part must be non-empty"},
      {name64 + "=v", 0,
       absl::StrCat("invalid label key '", name64,
                    "': name part must be no more than 63 characters (has 64)")},
      {"x=y,p/" + name64, 4,
       absl::StrCat("invalid label key 'p/", name64,
                    "': name part must be no more than 63 characters (has 64)")},
      {prefix254 + "/n", 0,
       absl::StrCat("invalid label key '", prefix254,
                    "/n': prefix part must be no more than 253 characters (has 254)")},
      {"Example.com/n", 0,
       "invalid label key 'Example.com/n': prefix part must be a lowercase RFC 1123 subdomain: "
       "lower case alphanumeric characters, '-' or '.', starting and ending with an "
       "alphanumeric character (e.g. 'example.com')"},
      {"a..b/n", 0,
       "invalid label key 'a..b/n': prefix part must be a lowercase RFC 1123 subdomain: lower "
       "case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric "
       "character (e.g. 'example.com')"},
      {"-a.b/n", 0,
       "invalid label key '-a.b/n': prefix part must be a lowercase RFC 1123 subdomain: lower "
       "case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric "
       "character (e.g. 'example.com')"},
      {"a_b.c/n", 0,
       "invalid label key 'a_b.c/n': prefix part must be a lowercase RFC 1123 subdomain: lower "
       "case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric "
       "character (e.g. 'example.com')"},
      {"k=" + value64, 2,
       absl::StrCat("invalid label value '", value64,
                    "': must be no more than 63 characters (has 64)")},
      {"k=-a", 2, absl::StrCat("invalid label value '-a': ", kValueRule)},
      {"k!=a.", 3, absl::StrCat("invalid label value 'a.': ", kValueRule)},
      {"k in (a,b$)", 8, absl::StrCat("invalid label value 'b$': ", kValueRule)},
      {"k notin (ok, a/b)", 13, absl::StrCat("invalid label value 'a/b': ", kValueRule)},
  };
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.input);
    EXPECT_THAT(Selector::Parse(c.input),
                StatusIs(absl::StatusCode::kInvalidArgument, ExpectedMessage(c)));
  }
}

// Go's lexer would stop at the NUL and accept "a"; an embedded NUL is rejected here instead.
TEST(SelectorParseTest, RejectsNulByteAndEscapesItInTheMessage) {
  const std::string input("a\0b=c", 5);
  EXPECT_THAT(Selector::Parse(input),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("invalid selector 'a\\000b=c' at position 0: invalid label key "
                                 "'a\\000b'")));
}

// Characters outside apimachinery's whitespace set (here a vertical tab) belong to the
// identifier, so they make it invalid.
TEST(SelectorParseTest, TreatsOtherControlCharactersAsPartOfTheIdentifier) {
  EXPECT_THAT(Selector::Parse("k=a\vb"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("invalid selector 'k=a\\013b' at position 2: invalid label "
                                    "value 'a\\013b': ",
                                    kValueRule)));
}

TEST(SelectorParseTest, AcceptsKeysAndValuesAtTheLengthLimits) {
  const std::string name63 = std::string(63, 'n');
  const std::string value63 = std::string(63, 'v');
  const std::string key = LongestPrefix() + "/" + name63;
  absl::StatusOr<Selector> selector =
      Selector::Parse(key + "=" + value63 + ",a in (" + value63 + ")," + name63 + ">1");
  ASSERT_THAT(selector, IsOk());
  EXPECT_THAT(selector->requirements(),
              ElementsAre(Requirement{"a", Operator::kIn, {value63}},
                          Requirement{key, Operator::kEquals, {value63}},
                          Requirement{name63, Operator::kGreaterThan, {"1"}}));
}

TEST(SelectorParseTest, AcceptsSingleCharacterKeysAndValues) {
  absl::StatusOr<Selector> selector = Selector::Parse("a=b,c/d=e,9 in (0)");
  ASSERT_THAT(selector, IsOk());
  EXPECT_EQ(selector->String(), "9 in (0),a=b,c/d=e");
}

TEST(SelectorParseTest, EmptySelectorHasNoRequirements) {
  absl::StatusOr<Selector> selector = Selector::Parse("");
  ASSERT_THAT(selector, IsOk());
  EXPECT_TRUE(selector->Empty());
  EXPECT_THAT(selector->requirements(), IsEmpty());
  EXPECT_EQ(selector->String(), "");
}

// Arbitrary inputs over the selector alphabet never crash the parser; each one is either
// accepted and round-trips through String(), or rejected with a position inside the input.
TEST(SelectorParseTest, ArbitraryInputsParseOrReportAPosition) {
  constexpr std::string_view kAlphabet = "ab1-=!(),<> \tinot/.";
  std::mt19937 rng(20240601);
  std::uniform_int_distribution<std::size_t> length(0, 12);
  std::uniform_int_distribution<std::size_t> pick(0, kAlphabet.size() - 1);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string input;
    for (std::size_t n = length(rng); n > 0; --n) {
      input.push_back(kAlphabet[pick(rng)]);
    }
    SCOPED_TRACE(input);
    absl::StatusOr<Selector> selector = Selector::Parse(input);
    if (!selector.ok()) {
      ASSERT_EQ(selector.status().code(), absl::StatusCode::kInvalidArgument);
      const std::string message{selector.status().message()};
      const std::size_t at = message.find("' at position ");
      ASSERT_NE(at, std::string::npos);
      const std::size_t digits = at + 14;
      std::size_t position = 0;
      ASSERT_TRUE(
          absl::SimpleAtoi(message.substr(digits, message.find(':', digits) - digits), &position));
      EXPECT_LE(position, input.size());
      continue;
    }
    ++accepted;
    absl::StatusOr<Selector> reparsed = Selector::Parse(selector->String());
    ASSERT_THAT(reparsed, IsOk());
    EXPECT_EQ(reparsed->requirements(), selector->requirements());
  }
  // The alphabet is chosen so that a fair share of inputs is valid.
  EXPECT_GT(accepted, 1000);
}

struct MatchCase {
  std::string selector;
  Labels labels;
  bool matches;
};

TEST(SelectorMatchesTest, FollowsApimachinerySemantics) {
  const std::vector<MatchCase> cases = {
      {"", {}, true},
      {"", {{"x", "a"}}, true},
      {"x=a", {{"x", "a"}}, true},
      {"x=a", {{"x", "b"}}, false},
      {"x=a", {}, false},
      {"x==a", {{"x", "a"}, {"y", "b"}}, true},
      {"x==a", {{"y", "a"}}, false},
      {"x!=a", {{"x", "a"}}, false},
      {"x!=a", {{"x", "b"}}, true},
      {"x!=a", {}, true},
      {"x in (a,b)", {{"x", "b"}}, true},
      {"x in (a,b)", {{"x", "c"}}, false},
      {"x in (a,b)", {}, false},
      {"x notin (a,b)", {{"x", "a"}}, false},
      {"x notin (a,b)", {{"x", "c"}}, true},
      {"x notin (a,b)", {}, true},
      {"x", {{"x", ""}}, true},
      {"x", {{"y", "x"}}, false},
      {"!x", {}, true},
      {"!x", {{"x", ""}}, false},
      {"x=", {{"x", ""}}, true},
      {"x=", {}, false},
      {"x in ()", {{"x", ""}}, true},
      {"x in ()", {{"x", "a"}}, false},
      {"x in (,a)", {{"x", ""}}, true},
      {"x notin ()", {}, true},
      {"x>5", {{"x", "6"}}, true},
      {"x>5", {{"x", "5"}}, false},
      {"x>5", {{"x", "abc"}}, false},
      {"x>5", {}, false},
      {"x>5", {{"x", "-10"}}, false},
      {"x<5", {{"x", "-10"}}, true},
      {"x<5", {{"x", "+3"}}, true},
      {"x<5", {{"x", "3.0"}}, false},
      {"x<5", {{"x", ""}}, false},
      {"x>05", {{"x", "6"}}, true},
      {"x>1", {{"x", "99999999999999999999"}}, false},
      {"x<1", {{"x", "-99999999999999999999"}}, false},
      {"x<9223372036854775807", {{"x", "-9223372036854775808"}}, true},
      {"x>1,x<10", {{"x", "5"}}, true},
      {"x>1,x<10", {{"x", "10"}}, false},
      {"x=a,y!=b", {{"x", "a"}, {"y", "b"}}, false},
      {"x=a,y!=b", {{"x", "a"}}, true},
      {"x=a,!y,z in (1,2)", {{"x", "a"}, {"z", "2"}}, true},
      {"x=a,!y,z in (1,2)", {{"x", "a"}, {"y", "0"}, {"z", "2"}}, false},
      {"example.com/role=db", {{"example.com/role", "db"}}, true},
      {"in in (notin)", {{"in", "notin"}}, true},
  };
  for (const MatchCase& c : cases) {
    SCOPED_TRACE(c.selector);
    absl::StatusOr<Selector> selector = Selector::Parse(c.selector);
    ASSERT_THAT(selector, IsOk());
    EXPECT_EQ(selector->Matches(c.labels), c.matches);
  }
}

TEST(SelectorMatchesTest, DefaultSelectorMatchesEverything) {
  const Selector selector;
  EXPECT_TRUE(selector.Empty());
  EXPECT_TRUE(selector.Matches({}));
  EXPECT_TRUE(selector.Matches({{"x", "a"}}));
}

}  // namespace
}  // namespace discovery::selector
