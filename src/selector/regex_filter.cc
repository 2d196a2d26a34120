#include "selector/regex_filter.h"

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "fmt/format.h"

#include "re2/re2.h"

namespace discovery::selector {

absl::StatusOr<RegexFilter> RegexFilter::Compile(std::string_view name,
                                                 const std::string& pattern) {
  if (pattern.empty()) {
    return RegexFilter(nullptr);
  }
  std::shared_ptr<const RE2> regex = std::make_shared<RE2>(pattern, RE2::Quiet);
  if (!regex->ok()) {
    return absl::InvalidArgumentError(
        fmt::format("invalid {} \"{}\": {}", name, pattern, regex->error()));
  }
  return RegexFilter(std::move(regex));
}

bool RegexFilter::Matches(const std::string& text) const {
  return regex_ == nullptr || RE2::PartialMatch(text, *regex_);
}

bool RegexFilter::MatchesAny(const std::vector<std::string>& texts) const {
  return regex_ == nullptr || std::any_of(texts.begin(), texts.end(), [&](const std::string& text) {
           return RE2::PartialMatch(text, *regex_);
         });
}

}  // namespace discovery::selector
