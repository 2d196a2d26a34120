// Fuzzes selector::Selector::Parse, which parses the `selector` of every service registration
// (REST, gRPC, CLI). Invariants: malformed text is InvalidArgument; a parsed selector prints
// (String) to text that parses back to the same requirements and prints the same again; a
// selector matches the labels its own equality requirements describe when those are consistent.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "fuzz_check.h"

#include "selector/selector.h"

namespace {

using ::discovery::fuzz::Check;
using ::discovery::selector::Operator;
using ::discovery::selector::Requirement;
using ::discovery::selector::Selector;

// The labels that satisfy every "=", "==" and "exists" requirement of `selector`; false when
// two requirements want different values for one key, or when another kind of requirement
// names a key of them (its outcome then depends on the value).
bool EqualityLabels(const Selector& selector, std::map<std::string, std::string>& labels) {
  for (const Requirement& requirement : selector.requirements()) {
    switch (requirement.op) {
      case Operator::kEquals:
      case Operator::kDoubleEquals: {
        Check(requirement.values.size() == 1, "an equality has one value", requirement.key);
        const auto [it, inserted] = labels.emplace(requirement.key, requirement.values.front());
        if (!inserted && it->second != requirement.values.front()) {
          return false;
        }
        break;
      }
      case Operator::kExists:
        labels.emplace(requirement.key, "");
        break;
      default:
        return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // Label validation sees the same bytes as user-supplied server labels.
  (void)discovery::selector::ValidateLabelKey(text);
  (void)discovery::selector::ValidateLabelValue(text);

  const absl::StatusOr<Selector> parsed = Selector::Parse(text);
  if (!parsed.ok()) {
    Check(parsed.status().code() == absl::StatusCode::kInvalidArgument,
          "parse errors are InvalidArgument", parsed.status().message());
    return 0;
  }
  for (const Requirement& requirement : parsed->requirements()) {
    Check(discovery::selector::ValidateLabelKey(requirement.key).ok(),
          "a parsed key is a valid label key", requirement.key);
  }

  const std::string printed = parsed->String();
  const absl::StatusOr<Selector> reparsed = Selector::Parse(printed);
  Check(reparsed.ok(), "String() parses back", printed);
  Check(reparsed->requirements() == parsed->requirements(),
        "String() parses back to the same requirements", printed);
  Check(reparsed->String() == printed, "String() is a fixed point", printed);

  Check(parsed->Empty() == printed.empty(), "only the empty selector prints as \"\"", printed);
  if (std::map<std::string, std::string> labels; EqualityLabels(*parsed, labels)) {
    Check(parsed->Matches(labels), "matches the labels of its equality requirements", printed);
  }
  (void)parsed->Matches({});
  return 0;
}
