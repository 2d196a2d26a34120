// Invariant checks for the fuzz targets: a violated invariant aborts, which libFuzzer reports
// as a crash and saves the input for, just like a sanitizer finding.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace discovery::fuzz {

// Aborts with `what` on stderr unless `condition` holds. A function rather than assert(): it
// stays active in optimised builds and needs no NDEBUG discipline.
inline void Check(bool condition, std::string_view what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz invariant violated: %.*s\n", static_cast<int>(what.size()),
                 what.data());
    std::abort();
  }
}

// As above, also printing `detail` (e.g. the text that failed to round-trip) between brackets,
// so that unprintable bytes show where they are. `detail` is any contiguous text (std::string,
// std::string_view, absl::string_view: Debian's abseil has its own string_view).
template <typename Text>
void Check(bool condition, std::string_view what, const Text& detail) {
  if (!condition) {
    std::fprintf(stderr, "fuzz invariant violated: %.*s [%.*s]\n", static_cast<int>(what.size()),
                 what.data(), static_cast<int>(detail.size()), detail.data());
    std::abort();
  }
}

}  // namespace discovery::fuzz
