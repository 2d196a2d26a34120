#include "common/go_duration.h"

#include <array>
#include <cstdint>
#include <limits>
#include <optional>

#include "absl/status/status.h"

namespace discovery {
namespace {

constexpr std::uint64_t kNanosecond = 1;
constexpr std::uint64_t kMicrosecond = 1000 * kNanosecond;
constexpr std::uint64_t kMillisecond = 1000 * kMicrosecond;
constexpr std::uint64_t kSecond = 1000 * kMillisecond;
constexpr std::uint64_t kMinute = 60 * kSecond;
constexpr std::uint64_t kHour = 60 * kMinute;
// 1<<63: one more than the largest positive duration, the magnitude of the smallest negative one.
constexpr std::uint64_t kMagnitudeLimit = std::uint64_t{1} << 63;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Go's time.quote: bytes outside printable ASCII become \xNN, quotes and backslashes are escaped.
std::string Quote(std::string_view text) {
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x80 || byte < 0x20) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xF];
      continue;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  out += '"';
  return out;
}

absl::Status InvalidDuration(std::string_view original) {
  return absl::InvalidArgumentError("time: invalid duration " + Quote(original));
}

std::optional<std::uint64_t> UnitNanoseconds(std::string_view unit) {
  if (unit == "ns") {
    return kNanosecond;
  }
  // U+00B5 (micro sign) and U+03BC (Greek small letter mu) are both accepted, as in Go.
  if (unit == "us" || unit == "\u00b5s" || unit == "\u03bcs") {
    return kMicrosecond;
  }
  if (unit == "ms") {
    return kMillisecond;
  }
  if (unit == "s") {
    return kSecond;
  }
  if (unit == "m") {
    return kMinute;
  }
  if (unit == "h") {
    return kHour;
  }
  return std::nullopt;
}

// Consumes leading digits of `text` into `value`; false on overflow past 1<<63 (Go's leadingInt).
bool ConsumeInt(std::string_view& text, std::uint64_t& value) {
  std::size_t i = 0;
  value = 0;
  for (; i < text.size() && IsDigit(text[i]); ++i) {
    if (value > kMagnitudeLimit / 10) {
      return false;
    }
    value = value * 10 + static_cast<std::uint64_t>(text[i] - '0');
    if (value > kMagnitudeLimit) {
      return false;
    }
  }
  text.remove_prefix(i);
  return true;
}

// Consumes the digits after a decimal point (Go's leadingFraction): digits that would overflow
// are dropped, so `value / scale` keeps as much precision as fits.
void ConsumeFraction(std::string_view& text, std::uint64_t& value, double& scale) {
  std::size_t i = 0;
  value = 0;
  scale = 1;
  bool overflow = false;
  for (; i < text.size() && IsDigit(text[i]); ++i) {
    if (overflow) {
      continue;
    }
    if (value > (kMagnitudeLimit - 1) / 10) {
      overflow = true;
      continue;
    }
    const std::uint64_t next = value * 10 + static_cast<std::uint64_t>(text[i] - '0');
    if (next > kMagnitudeLimit) {
      overflow = true;
      continue;
    }
    value = next;
    scale *= 10;
  }
  text.remove_prefix(i);
}

// Writes the fraction value / 10^precision (".12" style, trailing zeros and an all-zero fraction
// omitted) in front of `pos` and returns the integer part (Go's fmtFrac).
std::uint64_t PrependFraction(std::array<char, 32>& buf, std::size_t& pos, std::uint64_t value,
                              int precision) {
  bool print = false;
  for (int i = 0; i < precision; ++i) {
    const auto digit = static_cast<char>(value % 10);
    print = print || digit != 0;
    if (print) {
      buf[--pos] = static_cast<char>('0' + digit);
    }
    value /= 10;
  }
  if (print) {
    buf[--pos] = '.';
  }
  return value;
}

void PrependInt(std::array<char, 32>& buf, std::size_t& pos, std::uint64_t value) {
  if (value == 0) {
    buf[--pos] = '0';
    return;
  }
  while (value > 0) {
    buf[--pos] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

}  // namespace

absl::StatusOr<absl::Duration> ParseGoDuration(std::string_view text) {
  const std::string_view original = text;
  bool negative = false;
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  if (text == "0") {
    return absl::ZeroDuration();
  }
  if (text.empty()) {
    return InvalidDuration(original);
  }
  std::uint64_t total = 0;
  while (!text.empty()) {
    if (text.front() != '.' && !IsDigit(text.front())) {
      return InvalidDuration(original);
    }
    const std::size_t before_int = text.size();
    std::uint64_t value = 0;
    if (!ConsumeInt(text, value)) {
      return InvalidDuration(original);
    }
    const bool has_int = text.size() != before_int;
    std::uint64_t fraction = 0;
    double scale = 1;
    bool has_fraction = false;
    if (!text.empty() && text.front() == '.') {
      text.remove_prefix(1);
      const std::size_t before_fraction = text.size();
      ConsumeFraction(text, fraction, scale);
      has_fraction = text.size() != before_fraction;
    }
    if (!has_int && !has_fraction) {
      return InvalidDuration(original);
    }
    std::size_t unit_end = 0;
    while (unit_end < text.size() && text[unit_end] != '.' && !IsDigit(text[unit_end])) {
      ++unit_end;
    }
    if (unit_end == 0) {
      return absl::InvalidArgumentError("time: missing unit in duration " + Quote(original));
    }
    const std::string_view unit_name = text.substr(0, unit_end);
    text.remove_prefix(unit_end);
    const std::optional<std::uint64_t> unit = UnitNanoseconds(unit_name);
    if (!unit) {
      return absl::InvalidArgumentError("time: unknown unit " + Quote(unit_name) + " in duration " +
                                        Quote(original));
    }
    if (value > kMagnitudeLimit / *unit) {
      return InvalidDuration(original);
    }
    value *= *unit;
    if (fraction > 0) {
      // Go computes the fractional part in float64; doing the same keeps results bit-identical.
      value += static_cast<std::uint64_t>(static_cast<double>(fraction) *
                                          (static_cast<double>(*unit) / scale));
      if (value > kMagnitudeLimit) {
        return InvalidDuration(original);
      }
    }
    total += value;
    if (total > kMagnitudeLimit) {
      return InvalidDuration(original);
    }
  }
  if (negative) {
    if (total == kMagnitudeLimit) {
      return absl::Nanoseconds(std::numeric_limits<std::int64_t>::min());
    }
    return absl::Nanoseconds(-static_cast<std::int64_t>(total));
  }
  if (total > kMagnitudeLimit - 1) {
    return InvalidDuration(original);
  }
  return absl::Nanoseconds(static_cast<std::int64_t>(total));
}

std::string FormatGoDuration(absl::Duration duration) {
  const std::int64_t nanos = absl::ToInt64Nanoseconds(duration);
  const bool negative = nanos < 0;
  // Two's-complement negation in unsigned arithmetic also covers the smallest int64.
  std::uint64_t magnitude =
      negative ? ~static_cast<std::uint64_t>(nanos) + 1 : static_cast<std::uint64_t>(nanos);
  std::array<char, 32> buf{};
  std::size_t pos = buf.size();
  if (magnitude < kSecond) {
    // Below one second the largest fitting sub-second unit is used, e.g. "1.2ms".
    int precision = 0;
    buf[--pos] = 's';
    if (magnitude == 0) {
      buf[--pos] = '0';
      return {buf.data() + pos, buf.size() - pos};
    }
    if (magnitude < kMicrosecond) {
      buf[--pos] = 'n';
    } else if (magnitude < kMillisecond) {
      precision = 3;
      buf[--pos] = '\xb5';  // U+00B5 micro sign, UTF-8 0xC2 0xB5.
      buf[--pos] = '\xc2';
    } else {
      precision = 6;
      buf[--pos] = 'm';
    }
    magnitude = PrependFraction(buf, pos, magnitude, precision);
    PrependInt(buf, pos, magnitude);
  } else {
    buf[--pos] = 's';
    magnitude = PrependFraction(buf, pos, magnitude, 9);
    PrependInt(buf, pos, magnitude % 60);
    magnitude /= 60;
    if (magnitude > 0) {
      buf[--pos] = 'm';
      PrependInt(buf, pos, magnitude % 60);
      magnitude /= 60;
      // Hours are the largest unit because days vary in length.
      if (magnitude > 0) {
        buf[--pos] = 'h';
        PrependInt(buf, pos, magnitude);
      }
    }
  }
  if (negative) {
    buf[--pos] = '-';
  }
  return {buf.data() + pos, buf.size() - pos};
}

}  // namespace discovery
