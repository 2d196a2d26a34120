#include "store/etcd/range_windows.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

namespace discovery::store::etcd_internal {
namespace {

constexpr size_t kWidthBytes = 8;
constexpr uint64_t kMinWidth = uint64_t{1} << 8;
constexpr uint64_t kMaxWidth = uint64_t{1} << 56;
// Keys in etcd are at most about 1.5 MiB; a window never needs to be finer than that.
constexpr size_t kMaxOffset = size_t{1} << 21;

size_t CommonPrefix(std::string_view a, std::string_view b) {
  const auto [a_end, b_end] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  return static_cast<size_t>(a_end - a.begin());
}

// The eight bytes of `key` at `offset` as a big-endian number (missing bytes are zero).
uint64_t BytesAt(std::string_view key, size_t offset) {
  uint64_t value = 0;
  for (size_t i = 0; i < kWidthBytes; ++i) {
    const size_t at = offset + i;
    value = (value << 8) | (at < key.size() ? static_cast<unsigned char>(key[at]) : 0U);
  }
  return value;
}

// width * factor, at least 1 and at most the largest width.
uint64_t Scaled(uint64_t width, long double factor) {
  const long double scaled = static_cast<long double>(width) * factor;
  if (scaled >= static_cast<long double>(std::numeric_limits<uint64_t>::max())) {
    return std::numeric_limits<uint64_t>::max();
  }
  return std::max<uint64_t>(static_cast<uint64_t>(scaled), 1);
}

}  // namespace

RangeWindows::RangeWindows(std::string key, std::string range_end, size_t page_keys)
    : start_(std::move(key)),
      range_end_(std::move(range_end)),
      unbounded_(range_end_ == std::string_view("\0", 1)),
      page_keys_(std::max<size_t>(page_keys, 1)),
      // The first window is the whole range at the coarsest width its bounds allow; the keys of
      // its first page tell how wide a page's worth is.
      offset_(unbounded_ ? 0 : CommonPrefix(start_, range_end_)),
      width_(kMaxWidth) {
  PlaceEnd();
}

void RangeWindows::Read(int64_t count, bool more, std::string_view reference_key,
                        size_t keys_after_reference, std::string_view last_key) {
  const long double wanted = static_cast<long double>(page_keys_) * 0.75L;
  if (more) {
    // A full page: the next window starts right after its last key.
    start_ = std::string(last_key) + '\0';
    if (static_cast<uint64_t>(count) / 4 <= page_keys_) {
      // The window was about right: scale it to the keys it held.
      width_ = Scaled(width_, wanted / static_cast<long double>(count));
    } else {
      // Far too wide (the first window is the whole range): as wide as about three quarters of
      // a page of keys as dense as those between the reference and the last.
      offset_ = std::min(CommonPrefix(reference_key, last_key), kMaxOffset);
      const uint64_t span = BytesAt(last_key, offset_) - BytesAt(reference_key, offset_);
      width_ = Scaled(span,
                      wanted / static_cast<long double>(std::max<size_t>(keys_after_reference, 1)));
    }
  } else {
    if (last_window_) {
      done_ = true;
      return;
    }
    start_ = end_;
    // Too few keys: widen in proportion, by at most 16 times per window; an empty one by 2 (the
    // key space has gaps, e.g. between the digits and letters of hexadecimal ids).
    width_ = Scaled(
        width_,
        count <= 0 ? 2.0L : std::clamp(wanted / static_cast<long double>(count), 1.0L, 16.0L));
  }
  Normalize();
  PlaceEnd();
}

void RangeWindows::Normalize() {
  while (width_ > kMaxWidth && offset_ > 0) {
    width_ >>= 8;
    --offset_;
  }
  while (width_ < kMinWidth && offset_ < kMaxOffset) {
    width_ <<= 8;
    ++offset_;
  }
}

void RangeWindows::PlaceEnd() {
  // start_ padded or cut to offset_ + 8 bytes, plus width_ there: a key past every key that
  // begins as start_ does up to that point, so the window is never empty of key space.
  std::string end = start_.substr(0, std::min(start_.size(), offset_ + kWidthBytes));
  end.resize(offset_ + kWidthBytes, '\0');
  const uint64_t low = BytesAt(end, offset_);
  const uint64_t sum = low + width_;
  bool carry = sum < low;
  for (size_t i = 0; i < kWidthBytes; ++i) {
    end[offset_ + kWidthBytes - 1 - i] = static_cast<char>((sum >> (8 * i)) & 0xff);
  }
  for (size_t i = offset_; carry && i > 0; --i) {
    auto byte = static_cast<unsigned char>(end[i - 1]);
    ++byte;
    end[i - 1] = static_cast<char>(byte);
    carry = byte == 0;
  }
  // Past the largest key of this length, or past the range's end: the last window.
  last_window_ = carry || (!unbounded_ && end >= range_end_);
  if (last_window_) {
    end_ = range_end_;
  } else {
    end_ = std::move(end);
  }
}

}  // namespace discovery::store::etcd_internal
