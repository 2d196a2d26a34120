#include "common/json_string.h"

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "fmt/format.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace discovery {
namespace {

std::string Dumped(std::string_view text) {
  return nlohmann::json(std::string(text))
      .dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
}

void ExpectSameAsDump(std::string_view text) {
  // Appended after what the buffer holds.
  std::string into_string = "x";
  AppendJsonString(text, into_string);
  EXPECT_EQ(into_string.front(), 'x');
  EXPECT_EQ(std::string_view(into_string).substr(1), Dumped(text)) << text;
  fmt::memory_buffer into_buffer;
  AppendJsonString(text, into_buffer);
  EXPECT_EQ(fmt::to_string(into_buffer), Dumped(text)) << text;
}

TEST(JsonStringTest, WritesWhatNlohmannWrites) {
  for (std::string_view text :
       {"", "plain", "with space", "quote\"", "back\\slash", "line\nbreak", "\t\r\b\f", "\x01\x1f",
        "del\x7f", "caf\xc3\xa9", "\xf0\x9f\x98\x80", "\xe2\x80\xa8", "</script>", "\xff",
        "cut \xc3", "surrogate \xed\xa0\x80", "overlong \xc0\xaf"}) {
    ExpectSameAsDump(text);
  }
  ExpectSameAsDump(std::string_view("nul\0byte", 8));
}

TEST(JsonStringTest, WritesWhatNlohmannWritesForAnyBytes) {
  std::mt19937 random(15);
  for (int i = 0; i < 20000; ++i) {
    std::string text(std::uniform_int_distribution<size_t>(0, 12)(random), ' ');
    for (char& c : text) {
      // Printable ASCII half of the time, any byte otherwise.
      c = static_cast<char>(std::uniform_int_distribution<int>(0, 1)(random) == 0
                                ? std::uniform_int_distribution<int>(0x20, 0x7e)(random)
                                : std::uniform_int_distribution<int>(0, 255)(random));
    }
    ExpectSameAsDump(text);
  }
}

TEST(JsonStringTest, PlainTextIsPrintableAsciiWithoutQuotesOrBackslashes) {
  EXPECT_TRUE(IsPlainJsonText(""));
  EXPECT_TRUE(IsPlainJsonText("http://host:9100/metrics?a=b&c=<d>"));
  EXPECT_FALSE(IsPlainJsonText("a\"b"));
  EXPECT_FALSE(IsPlainJsonText("a\\b"));
  EXPECT_FALSE(IsPlainJsonText("a\nb"));
  EXPECT_FALSE(IsPlainJsonText("a\x7f"));
  EXPECT_FALSE(IsPlainJsonText("caf\xc3\xa9"));
}

}  // namespace
}  // namespace discovery
