#include "common/utf8.h"

#include <optional>
#include <string_view>

#include "gtest/gtest.h"

#include "common/go_quote.h"

namespace discovery {
namespace {

TEST(Utf8Test, DecodesEachSequenceLength) {
  EXPECT_EQ(DecodeUtf8("a")->code_point, U'a');
  EXPECT_EQ(DecodeUtf8("\xC3\xA9")->code_point, U'\u00e9');
  EXPECT_EQ(DecodeUtf8("\xE2\x82\xAC")->length, 3U);
  EXPECT_EQ(DecodeUtf8("\xF0\x9F\x98\x80x")->code_point, U'\U0001F600');
  EXPECT_EQ(DecodeUtf8("\xF0\x9F\x98\x80x")->length, 4U);
}

TEST(Utf8Test, RefusesWhatGoRefuses) {
  for (const std::string_view bad : {std::string_view(""), std::string_view("\x80"),
                                     std::string_view("\xC0\xAF"),          // overlong '/'
                                     std::string_view("\xED\xA0\x80"),      // surrogate
                                     std::string_view("\xF4\x90\x80\x80"),  // above U+10FFFF
                                     std::string_view("\xE2\x82")}) {       // truncated
    EXPECT_EQ(DecodeUtf8(bad), std::nullopt) << bad.size();
  }
  EXPECT_TRUE(IsValidUtf8("plain \xC3\xA9 text"));
  EXPECT_FALSE(IsValidUtf8("ok then \xFF"));
}

TEST(GoQuoteTest, QuotesLikeStrconvQuote) {
  EXPECT_EQ(GoQuote("a\"b\\c\n"), R"("a\"b\\c\n")");
  EXPECT_EQ(GoQuote("%\xC3\xA9"), "\"%\xC3\xA9\"");
  EXPECT_EQ(GoQuote("%\xFF"
                    "1"),
            R"("%\xff1")");
  EXPECT_EQ(GoQuote("\xE2\x80\x8B"), R"("\u200b")");
}

}  // namespace
}  // namespace discovery
