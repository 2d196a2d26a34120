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

enum class Operator {
  kEquals,
  kDoubleEquals,
  kNotEquals,
  kIn,
  kNotIn,
  kExists,
  kDoesNotExist,
  kGreaterThan,
  kLessThan
};

struct Requirement {
  std::string key;
  Operator op = Operator::kEquals;
  std::vector<std::string> values;  // sorted, unique (as apimachinery stores them)

  friend bool operator==(const Requirement&, const Requirement&) = default;
};

// An immutable, parsed selector. A regular value: copy it freely; const methods may be called
// from any number of threads at once.
// A label key as selectors accept it (k8s qualified name: optional DNS-subdomain prefix and '/',
// then <= 63 chars of [A-Za-z0-9._-], alphanumeric at both ends). InvalidArgument naming the key
// otherwise. Labels that selectors will match against (server labels) are checked with these.
absl::Status ValidateLabelKey(std::string_view key);
// A label value as selectors accept it: empty, or <= 63 chars as a key's name part.
absl::Status ValidateLabelValue(std::string_view value);

class Selector {
 public:
  // Parses `text` exactly as apimachinery labels.Parse does. Returns InvalidArgument when the
  // text is malformed; the message quotes the text and names the 0-based byte offset of the
  // offending token and what was expected there, e.g.
  //   invalid selector 'env in (a' at position 9: found end of string, expected: ',' or ')'
  // Keys are validated as k8s qualified names, values as k8s label values (<= 63 chars of
  // [A-Za-z0-9._-], alphanumeric at both ends, or empty); "k>n"/"k<n" require an integer n.
  // Blank text yields the empty selector, which matches everything.
  static absl::StatusOr<Selector> Parse(std::string_view text);

  // True when every requirement holds for `labels`. "!=" and "notin" also match when the key
  // is absent; ">"/"<" match only when the label value is an integer.
  bool Matches(const std::map<std::string, std::string>& labels) const;

  bool Empty() const { return requirements_.empty(); }
  // Requirements sorted by key (stable for equal keys), as apimachinery keeps them.
  const std::vector<Requirement>& requirements() const { return requirements_; }
  // Canonical text form (apimachinery Selector.String()), e.g. "a=b,c!=d,e in (f,g)"; it
  // parses back to an equal selector.
  std::string String() const;

 private:
  std::vector<Requirement> requirements_;
};

}  // namespace discovery::selector
