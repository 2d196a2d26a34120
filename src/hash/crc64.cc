#include "hash/crc64.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace discovery::hash {
namespace {

// Reversed form of the ECMA-182 polynomial 0x42F0E1EBA9EA3693, as Go's crc64.ECMA.
constexpr uint64_t kEcmaReflected = 0xC96C5795D7870F42ULL;

using Table = std::array<uint64_t, 256>;

// Slicing-by-8 tables (Go's crc64 uses the same scheme): kTables[0] is the classic bytewise
// table and kTables[k][b] is the CRC state after byte b followed by k zero bytes. Rendezvous
// placement hashes every candidate name for every service, so the 8-bytes-per-step loop is what
// keeps a full re-placement of 100,000 services well inside the two-second budget.
constexpr std::array<Table, 8> MakeTables() {
  std::array<Table, 8> tables{};
  for (uint64_t i = 0; i < 256; ++i) {
    uint64_t crc = i;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 1) != 0 ? (crc >> 1) ^ kEcmaReflected : crc >> 1;
    }
    tables[0][i] = crc;
  }
  for (size_t k = 1; k < tables.size(); ++k) {
    for (size_t i = 0; i < 256; ++i) {
      const uint64_t previous = tables[k - 1][i];
      tables[k][i] = (previous >> 8) ^ tables[0][previous & 0xFF];
    }
  }
  return tables;
}

// Built at compile time so there is no lazy initialisation to race on.
constexpr std::array<Table, 8> kTables = MakeTables();

uint64_t Byte(const char* p, int index) { return static_cast<unsigned char>(p[index]); }

// Little-endian regardless of the host, because the reflected CRC consumes the first byte in
// the low bits; compilers turn this into a single load on little-endian machines.
uint64_t LoadLittleEndian64(const char* p) {
  return Byte(p, 0) | Byte(p, 1) << 8 | Byte(p, 2) << 16 | Byte(p, 3) << 24 | Byte(p, 4) << 32 |
         Byte(p, 5) << 40 | Byte(p, 6) << 48 | Byte(p, 7) << 56;
}

}  // namespace

uint64_t Crc64Xz(std::string_view data) {
  uint64_t crc = ~uint64_t{0};
  const char* p = data.data();
  size_t remaining = data.size();
  for (; remaining >= 8; remaining -= 8, p += 8) {
    crc ^= LoadLittleEndian64(p);
    crc = kTables[7][crc & 0xFF] ^ kTables[6][(crc >> 8) & 0xFF] ^ kTables[5][(crc >> 16) & 0xFF] ^
          kTables[4][(crc >> 24) & 0xFF] ^ kTables[3][(crc >> 32) & 0xFF] ^
          kTables[2][(crc >> 40) & 0xFF] ^ kTables[1][(crc >> 48) & 0xFF] ^ kTables[0][crc >> 56];
  }
  for (; remaining > 0; --remaining, ++p) {
    crc = kTables[0][(crc ^ static_cast<unsigned char>(*p)) & 0xFF] ^ (crc >> 8);
  }
  return ~crc;
}

}  // namespace discovery::hash
