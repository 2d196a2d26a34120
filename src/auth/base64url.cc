#include "auth/base64url.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace discovery::auth {
namespace {

// EVP_EncodeBlock/EVP_DecodeBlock take int lengths, so long inputs are processed in chunks
// that are whole base64 quanta (3 bytes in, 4 characters out).
constexpr std::size_t kEncodeChunk = std::size_t{3} * 4096;
constexpr std::size_t kDecodeChunk = std::size_t{4} * 4096;

bool IsBase64UrlChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

// The 6-bit value of a base64url character (which must be valid).
int SextetValue(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  return c == '-' ? 62 : 63;
}

}  // namespace

std::string Base64UrlEncode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::array<unsigned char, kEncodeChunk / 3 * 4 + 1> buffer{};
  for (std::size_t pos = 0; pos < data.size(); pos += kEncodeChunk) {
    const std::size_t n = std::min(kEncodeChunk, data.size() - pos);
    const int written =
        EVP_EncodeBlock(buffer.data(), reinterpret_cast<const unsigned char*>(data.data() + pos),
                        static_cast<int>(n));
    out.append(reinterpret_cast<const char*>(buffer.data()), static_cast<std::size_t>(written));
  }
  while (!out.empty() && out.back() == '=') {
    out.pop_back();
  }
  for (char& c : out) {
    if (c == '+') {
      c = '-';
    } else if (c == '/') {
      c = '_';
    }
  }
  return out;
}

absl::StatusOr<std::string> Base64UrlDecode(std::string_view text) {
  std::string standard;
  standard.reserve(text.size() + 3);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (!IsBase64UrlChar(c)) {
      return absl::InvalidArgumentError(
          c == '=' ? std::string("illegal base64url data: padding is not allowed")
                   : "illegal base64url data: unexpected character at offset " + std::to_string(i));
    }
    standard.push_back(c == '-' ? '+' : c == '_' ? '/' : c);
  }
  if (text.size() % 4 == 1) {
    return absl::InvalidArgumentError("illegal base64url data: impossible length");
  }
  // Strict decoding: the bits of the last character beyond the data must be zero, so that each
  // byte string has exactly one encoding (no malleable signatures).
  if (const std::size_t tail = text.size() % 4; tail != 0) {
    const int value = SextetValue(text.back());
    if ((value & (tail == 2 ? 0x0F : 0x03)) != 0) {
      return absl::InvalidArgumentError("illegal base64url data: non-zero trailing bits");
    }
  }
  const std::size_t padding = (4 - standard.size() % 4) % 4;
  standard.append(padding, '=');

  std::string out;
  out.reserve(standard.size() / 4 * 3);
  std::array<unsigned char, kDecodeChunk / 4 * 3> buffer{};
  for (std::size_t pos = 0; pos < standard.size(); pos += kDecodeChunk) {
    const std::size_t n = std::min(kDecodeChunk, standard.size() - pos);
    const int written = EVP_DecodeBlock(
        buffer.data(), reinterpret_cast<const unsigned char*>(standard.data() + pos),
        static_cast<int>(n));
    if (written < 0) {
      return absl::InvalidArgumentError("illegal base64url data");
    }
    out.append(reinterpret_cast<const char*>(buffer.data()), static_cast<std::size_t>(written));
  }
  // EVP_DecodeBlock counts the bytes that padding stands for as decoded zeros.
  out.resize(out.size() - padding);
  return out;
}

}  // namespace discovery::auth
