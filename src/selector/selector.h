// Kubernetes label selectors (apimachinery labels.Parse syntax and semantics) over string maps:
// "k=v", "k==v", "k!=v", "k in (a,b)", "k notin (a,b)", "k", "!k", "k>n", "k<n"; comma = AND;
// the empty selector matches everything.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace discovery::selector {

enum class Operator { kEquals, kDoubleEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist,
                      kGreaterThan, kLessThan };

struct Requirement {
  std::string key;
  Operator op = Operator::kEquals;
  std::vector<std::string> values;  // sorted, unique (as apimachinery stores them)

  friend bool operator==(const Requirement&, const Requirement&) = default;
};

class Selector {
 public:
  // Parses `text`. InvalidArgument with a message that names the position and the offending
  // token (e.g. "unable to parse requirement: at position 4: found ')', expected: ..."),
  // and k8s validation of keys (qualified names) and values (<= 63 chars of [A-Za-z0-9._-],
  // alphanumeric at both ends). "k>n"/"k<n" require an integer n.
  static absl::StatusOr<Selector> Parse(std::string_view text);

  // True when every requirement holds for `labels`. "!=" and "notin" also match when the key
  // is absent; ">"/"<" match only when the label value is an integer.
  bool Matches(const std::map<std::string, std::string>& labels) const;

  bool Empty() const { return requirements_.empty(); }
  // Requirements sorted by key, as apimachinery keeps them.
  const std::vector<Requirement>& requirements() const { return requirements_; }
  // Canonical text form (apimachinery Selector.String()).
  std::string String() const;

 private:
  std::vector<Requirement> requirements_;
};

}  // namespace discovery::selector
