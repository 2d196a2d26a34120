// The regular-expression filters of service lists (ListServiceStream's filter_* fields and the
// CLI's --filter-* flags), next to the label selector that narrows the same lists.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace discovery::selector {

// A compiled filter: RE2, the syntax of Go's regexp that the original's filters use. A regular
// value: copy it freely; const methods may be called from any number of threads at once.
class RegexFilter {
 public:
  // The filter of `pattern`; the empty pattern matches everything. InvalidArgument
  // `invalid <name> "<pattern>": <RE2's error>` when it does not compile.
  static absl::StatusOr<RegexFilter> Compile(std::string_view name, const std::string& pattern);

  // True when the pattern is empty or finds a match anywhere in `text` (unanchored, as Go's
  // MatchString).
  bool Matches(const std::string& text) const;
  // True when the pattern is empty or finds a match in one of `texts` (so a non-empty pattern
  // never matches an empty list).
  bool MatchesAny(const std::vector<std::string>& texts) const;

 private:
  explicit RegexFilter(std::shared_ptr<const re2::RE2> regex) : regex_(std::move(regex)) {}

  std::shared_ptr<const re2::RE2> regex_;  // nullptr for the empty pattern
};

}  // namespace discovery::selector
