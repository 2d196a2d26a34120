// Lamping & Veach's jump consistent hash, exactly as the Go original computes it (double
// precision step; buckets <= 0 are treated as 1).
#pragma once

#include <cstdint>

namespace discovery::hash {

int32_t JumpHash(uint64_t key, int32_t buckets);

}  // namespace discovery::hash
