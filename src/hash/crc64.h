// CRC-64/XZ (Go's crc64 with the ECMA table): reflected polynomial 0xC96C5795D7870F42,
// init and final xor all ones. The original hashes canonical endpoints with it for placement.
#pragma once

#include <cstdint>
#include <string_view>

namespace discovery::hash {

uint64_t Crc64Xz(std::string_view data);

}  // namespace discovery::hash
