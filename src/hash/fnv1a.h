// FNV-1a, 64 bits: a fast, stable hash of bytes, for validators such as ETags (not for keys an
// adversary may choose).
#pragma once

#include <cstdint>
#include <string_view>

namespace discovery::hash {

uint64_t Fnv1a64(std::string_view data);

}  // namespace discovery::hash
