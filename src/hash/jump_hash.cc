#include "hash/jump_hash.h"

#include <cstdint>

namespace discovery::hash {

int32_t JumpHash(uint64_t key, int32_t buckets) {
  // The Go original clamps instead of failing, and placement of the jump algorithm must match it
  // bit for bit.
  if (buckets <= 0) {
    buckets = 1;
  }
  int64_t b = -1;
  int64_t j = 0;
  while (j < buckets) {
    b = j;
    key = key * 2862933555777941757ULL + 1;
    // Double precision exactly as in the paper and in Go; an integer rewrite could round
    // differently for large bucket counts and move services.
    j = static_cast<int64_t>(static_cast<double>(b + 1) * (static_cast<double>(int64_t{1} << 31) /
                                                           static_cast<double>((key >> 33) + 1)));
  }
  return static_cast<int32_t>(b);
}

}  // namespace discovery::hash
