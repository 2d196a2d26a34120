#include "compress/gzip.h"

#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <limits>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace discovery::compress {
namespace {

// windowBits 15 plus 16: a gzip header and trailer around the deflate stream.
constexpr int kGzipWindowBits = 15 + 16;
// 32 more: inflate detects zlib or gzip framing by itself.
constexpr int kAutoWindowBits = 15 + 32;
constexpr size_t kChunk = 64 << 10;

unsigned AvailIn(size_t size) {
  return static_cast<unsigned>(std::min<size_t>(size, std::numeric_limits<unsigned>::max()));
}

// zlib's API takes non-const input pointers it does not write through.
Bytef* InputBytes(std::string_view data) {
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast,cppcoreguidelines-pro-type-reinterpret-cast)
  return reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
}

}  // namespace

std::string Gzip(std::string_view data, int level) {
  z_stream stream{};
  // Only fails for bad parameters or no memory; both are programming errors here.
  if (deflateInit2(&stream, std::clamp(level, 1, 9), Z_DEFLATED, kGzipWindowBits, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return {};
  }
  std::string out;
  out.resize(deflateBound(&stream, static_cast<uLong>(data.size())));
  stream.next_in = InputBytes(data);
  stream.avail_in = AvailIn(data.size());
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): zlib's byte type
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = AvailIn(out.size());
  const int rc = deflate(&stream, Z_FINISH);
  const size_t written = stream.total_out;
  deflateEnd(&stream);
  if (rc != Z_STREAM_END) {
    return {};
  }
  out.resize(written);
  return out;
}

absl::StatusOr<std::string> Gunzip(std::string_view compressed, size_t max_bytes) {
  z_stream stream{};
  if (inflateInit2(&stream, kAutoWindowBits) != Z_OK) {
    return absl::InternalError("gunzip: inflateInit2 failed");
  }
  std::string out;
  stream.next_in = InputBytes(compressed);
  stream.avail_in = AvailIn(compressed.size());
  int rc = Z_OK;
  while (true) {
    const size_t old_size = out.size();
    out.resize(old_size + kChunk);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): zlib's byte type
    stream.next_out = reinterpret_cast<Bytef*>(out.data() + old_size);
    stream.avail_out = static_cast<unsigned>(kChunk);
    rc = inflate(&stream, Z_NO_FLUSH);
    out.resize(old_size + (kChunk - stream.avail_out));
    if (out.size() > max_bytes) {
      inflateEnd(&stream);
      return absl::ResourceExhaustedError(absl::StrCat("gunzip: more than ", max_bytes, " bytes"));
    }
    if (rc == Z_STREAM_END) {
      if (stream.avail_in == 0) {
        break;
      }
      // Another member follows.
      if (inflateReset(&stream) != Z_OK) {
        break;
      }
      continue;
    }
    if (rc != Z_OK) {
      inflateEnd(&stream);
      return absl::InvalidArgumentError(
          absl::StrCat("gunzip: ", rc == Z_BUF_ERROR ? "truncated input" : "not a gzip stream"));
    }
    if (stream.avail_in == 0 && stream.avail_out != 0) {
      inflateEnd(&stream);
      return absl::InvalidArgumentError("gunzip: truncated input");
    }
  }
  inflateEnd(&stream);
  return out;
}

bool AcceptsGzip(std::string_view accept_encoding) {
  std::optional<bool> gzip;
  std::optional<bool> any;
  for (absl::string_view item :
       absl::StrSplit(absl::string_view(accept_encoding.data(), accept_encoding.size()), ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, ';');
    const std::string coding = absl::AsciiStrToLower(absl::StripAsciiWhitespace(parts[0]));
    bool acceptable = true;
    for (size_t i = 1; i < parts.size(); ++i) {
      absl::string_view parameter = absl::StripAsciiWhitespace(parts[i]);
      if (parameter.size() > 2 && absl::AsciiStrToLower(parameter.substr(0, 2)) == "q=") {
        double q = 0;
        acceptable = absl::SimpleAtod(parameter.substr(2), &q) && q > 0;
      }
    }
    if (coding == "gzip" || coding == "x-gzip") {
      gzip = gzip.value_or(false) || acceptable;
    } else if (coding == "*") {
      any = acceptable;
    }
  }
  return gzip.has_value() ? *gzip : any.value_or(false);
}

}  // namespace discovery::compress
