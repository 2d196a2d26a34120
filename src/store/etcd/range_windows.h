// The windows in which the etcd store reads a long key range page by page (Store::RangeInBatches).
// etcd (3.4, Debian 12's) walks every key between a request's `key` and its `range_end` to count
// them, whatever the request's `limit`: pages that all end at the range's end cost O(n) each, and
// reading a million keys in pages of 4,096 took 79 s where one request took 5 s. Each page is
// therefore asked for within a window [start, end) of the key space sized to hold about one
// page, learned from the keys the previous page returned, so that what etcd walks stays about
// what it returns. The windows tile the range exactly (each starts where the previous one ended,
// or right after the last key a full page returned), so every key is read once whatever the
// sizes; a poor guess costs only a walk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace discovery::store::etcd_internal {

class RangeWindows {
 public:
  // The range [key, range_end) as etcd takes it (range_end "\0": every key from `key` on), read in
  // pages of at most `page_keys` keys (>= 1).
  RangeWindows(std::string key, std::string range_end, size_t page_keys);

  // The current window, for a request with limit page_keys: [start(), end()).
  const std::string& start() const { return start_; }
  const std::string& end() const { return end_; }
  // True once the last window has been read in full: nothing is left to ask for.
  bool done() const { return done_; }

  // What the request for the current window answered: `count`, the keys in the window (etcd's
  // RangeResponse.count), and `more` when the page held only the first page_keys of them. Then
  // `last_key` is the page's last key, and `reference_key` one `keys_after_reference` keys before
  // it (from the page's second half, whose keys tell best how dense the keys ahead are). Moves
  // on to the next window.
  void Read(int64_t count, bool more, std::string_view reference_key, size_t keys_after_reference,
            std::string_view last_key);

 private:
  // end_ = start_ plus width_ in the eight bytes at offset_, or the range's end if that is past it.
  void PlaceEnd();
  // Keeps width_ between 2^8 and 2^56 by moving offset_, so that a window can both grow past
  // and shrink below the bytes the keys differ in.
  void Normalize();

  std::string start_;
  const std::string range_end_;
  const bool unbounded_;
  const size_t page_keys_;
  std::string end_;
  bool last_window_ = false;
  bool done_ = false;
  // A window's width: width_ in units of the key byte at offset_ + 7.
  size_t offset_ = 0;
  uint64_t width_ = 0;
};

}  // namespace discovery::store::etcd_internal
