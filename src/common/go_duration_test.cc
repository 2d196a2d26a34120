#include "common/go_duration.h"

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "testing/status_matchers.h"

namespace discovery {
namespace {

using ::discovery::testing::IsOkAndHolds;
using ::discovery::testing::StatusIs;

constexpr std::int64_t kMaxNanos = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMinNanos = std::numeric_limits<std::int64_t>::min();

struct ParseCase {
  std::string text;
  absl::Duration want;
};

// The valid inputs of Go's parseDurationTests (src/time/time_test.go).
TEST(ParseGoDurationTest, AcceptsGoTestVectors) {
  const absl::Duration h = absl::Hours(1);
  const absl::Duration m = absl::Minutes(1);
  const absl::Duration s = absl::Seconds(1);
  const absl::Duration ms = absl::Milliseconds(1);
  const absl::Duration us = absl::Microseconds(1);
  const absl::Duration ns = absl::Nanoseconds(1);
  const std::vector<ParseCase> cases = {
      {"0", absl::ZeroDuration()},
      {"5s", 5 * s},
      {"30s", 30 * s},
      {"1478s", 1478 * s},
      {"-5s", -5 * s},
      {"+5s", 5 * s},
      {"-0", absl::ZeroDuration()},
      {"+0", absl::ZeroDuration()},
      {"5.0s", 5 * s},
      {"5.6s", 5 * s + 600 * ms},
      {"5.s", 5 * s},
      {".5s", 500 * ms},
      {"1.0s", s},
      {"1.00s", s},
      {"1.004s", s + 4 * ms},
      {"1.0040s", s + 4 * ms},
      {"100.00100s", 100 * s + ms},
      {"10ns", 10 * ns},
      {"11us", 11 * us},
      {"12\u00b5s", 12 * us},
      {"12\u03bcs", 12 * us},
      {"13ms", 13 * ms},
      {"14s", 14 * s},
      {"15m", 15 * m},
      {"16h", 16 * h},
      {"3h30m", 3 * h + 30 * m},
      {"10.5s4m", 4 * m + 10 * s + 500 * ms},
      {"-2m3.4s", -(2 * m + 3 * s + 400 * ms)},
      {"1h2m3s4ms5us6ns", h + 2 * m + 3 * s + 4 * ms + 5 * us + 6 * ns},
      {"39h9m14.425s", 39 * h + 9 * m + 14 * s + 425 * ms},
      {"52763797000ns", 52763797000 * ns},
      {"0.3333333333333333333h", 20 * m},
      {"9007199254740993ns", absl::Nanoseconds((std::int64_t{1} << 53) + 1)},
      {"9223372036854775807ns", absl::Nanoseconds(kMaxNanos)},
      {"9223372036854775.807us", absl::Nanoseconds(kMaxNanos)},
      {"9223372036s854ms775us807ns", absl::Nanoseconds(kMaxNanos)},
      {"-9223372036854775808ns", absl::Nanoseconds(kMinNanos)},
      {"-9223372036854775.808us", absl::Nanoseconds(kMinNanos)},
      {"-9223372036s854ms775us808ns", absl::Nanoseconds(kMinNanos)},
      {"-2562047h47m16.854775808s", absl::Nanoseconds(kMinNanos)},
      {"0.100000000000000000000h", 6 * m},
      {"0.830103483285477580700h", 49 * m + 48 * s + 372539827 * ns},
  };
  for (const ParseCase& c : cases) {
    EXPECT_THAT(ParseGoDuration(c.text), IsOkAndHolds(c.want)) << c.text;
  }
}

// The invalid inputs of Go's parseDurationErrorTests, with Go's messages.
TEST(ParseGoDurationTest, RejectsGoTestVectorsWithGoMessages) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", R"(time: invalid duration "")"},
      {"3", R"(time: missing unit in duration "3")"},
      {"-", R"(time: invalid duration "-")"},
      {"s", R"(time: invalid duration "s")"},
      {".", R"(time: invalid duration ".")"},
      {"-.", R"(time: invalid duration "-.")"},
      {".s", R"(time: invalid duration ".s")"},
      {"+.s", R"(time: invalid duration "+.s")"},
      {"1d", R"(time: unknown unit "d" in duration "1d")"},
      {"\x85\x85", R"(time: invalid duration "\x85\x85")"},
      {"\xff"
       "ff",
       R"(time: invalid duration "\xffff")"},
      {"hello \xff"
       "ff world",
       R"(time: invalid duration "hello \xffff world")"},
      {"\uffef\uffef", R"(time: invalid duration "\xef\xbf\xaf\xef\xbf\xaf")"},
      {"9223372036854775808ns", R"(time: invalid duration "9223372036854775808ns")"},
      {"9223372036854775.808us", R"(time: invalid duration "9223372036854775.808us")"},
      {"9223372036854ms775us808ns", R"(time: invalid duration "9223372036854ms775us808ns")"},
      {"-9223372036854775809ns", R"(time: invalid duration "-9223372036854775809ns")"},
      {"1.2.3s", R"(time: missing unit in duration "1.2.3s")"},
      {"1\"s", R"(time: unknown unit "\"s" in duration "1\"s")"},
  };
  for (const auto& [text, message] : cases) {
    EXPECT_THAT(ParseGoDuration(text), StatusIs(absl::StatusCode::kInvalidArgument, message))
        << text;
  }
}

// Go's durationTests (src/time/time_test.go) and the examples of the Duration.String docs.
TEST(FormatGoDurationTest, MatchesGoDurationString) {
  const std::vector<std::pair<std::string, absl::Duration>> cases = {
      {"0s", absl::ZeroDuration()},
      {"1ns", absl::Nanoseconds(1)},
      {"1.1\u00b5s", absl::Nanoseconds(1100)},
      {"2.2ms", absl::Microseconds(2200)},
      {"3.3s", absl::Milliseconds(3300)},
      {"4m5s", absl::Minutes(4) + absl::Seconds(5)},
      {"4m5.001s", absl::Minutes(4) + absl::Milliseconds(5001)},
      {"5h6m7.001s", absl::Hours(5) + absl::Minutes(6) + absl::Milliseconds(7001)},
      {"8m0.000000001s", absl::Minutes(8) + absl::Nanoseconds(1)},
      {"2562047h47m16.854775807s", absl::Nanoseconds(kMaxNanos)},
      {"-2562047h47m16.854775808s", absl::Nanoseconds(kMinNanos)},
      {"1h0m0s", absl::Hours(1)},
      {"1.5s", absl::Milliseconds(1500)},
      {"300ms", absl::Milliseconds(300)},
      {"-1.5s", absl::Milliseconds(-1500)},
      {"2m3.000000004s", absl::Minutes(2) + absl::Seconds(3) + absl::Nanoseconds(4)},
      {"1h15m30.918273645s",
       absl::Hours(1) + absl::Minutes(15) + absl::Seconds(30) + absl::Nanoseconds(918273645)},
  };
  for (const auto& [want, duration] : cases) {
    EXPECT_EQ(FormatGoDuration(duration), want);
  }
}

TEST(FormatGoDurationTest, ClampsToGoRange) {
  EXPECT_EQ(FormatGoDuration(absl::InfiniteDuration()), "2562047h47m16.854775807s");
  EXPECT_EQ(FormatGoDuration(-absl::InfiniteDuration()), "-2562047h47m16.854775808s");
  EXPECT_EQ(FormatGoDuration(absl::Hours(3000000)), "2562047h47m16.854775807s");
}

TEST(FormatGoDurationTest, TruncatesSubNanoseconds) {
  EXPECT_EQ(FormatGoDuration(absl::Nanoseconds(1) / 2), "0s");
  EXPECT_EQ(FormatGoDuration(absl::Nanoseconds(3) / 2), "1ns");
}

TEST(GoDurationTest, FormatOutputParsesBack) {
  for (const absl::Duration d :
       {absl::ZeroDuration(), absl::Nanoseconds(1), absl::Microseconds(1500), absl::Hours(26),
        -absl::Minutes(90), absl::Nanoseconds(kMaxNanos), absl::Nanoseconds(kMinNanos)}) {
    EXPECT_THAT(ParseGoDuration(FormatGoDuration(d)), IsOkAndHolds(d)) << FormatGoDuration(d);
  }
}

}  // namespace
}  // namespace discovery
