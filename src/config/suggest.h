// "Did you mean ...?" for mistyped commands and flags.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace discovery::config {

// The edit distance between `a` and `b` counting insertions, deletions, substitutions and swaps
// of two adjacent characters (optimal string alignment), so `outptu` is one edit from `output`.
std::size_t EditDistance(std::string_view a, std::string_view b);

// The candidate `word` was most likely meant to be: the closest one within one edit for words of
// up to four characters and two edits for longer ones, else the only candidate that `word` is a
// prefix of. nullopt when there is none, or when two candidates are equally close.
std::optional<std::string> ClosestMatch(std::string_view word,
                                        std::span<const std::string> candidates);

}  // namespace discovery::config
