#include "config/suggest.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace discovery::config {

std::size_t EditDistance(std::string_view a, std::string_view b) {
  // rows[i][j]: the distance between the first i characters of a and the first j of b.
  std::vector<std::vector<std::size_t>> rows(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) {
    rows[i][0] = i;
  }
  for (std::size_t j = 0; j <= b.size(); ++j) {
    rows[0][j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitution = a[i - 1] == b[j - 1] ? 0 : 1;
      rows[i][j] =
          std::min({rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + substitution});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        rows[i][j] = std::min(rows[i][j], rows[i - 2][j - 2] + 1);
      }
    }
  }
  return rows[a.size()][b.size()];
}

std::optional<std::string> ClosestMatch(std::string_view word,
                                        std::span<const std::string> candidates) {
  const std::size_t limit = word.size() <= 4 ? 1 : 2;
  std::size_t best = std::numeric_limits<std::size_t>::max();
  std::vector<const std::string*> closest;
  for (const std::string& candidate : candidates) {
    const std::size_t distance = EditDistance(word, candidate);
    if (distance < best) {
      best = distance;
      closest.clear();
    }
    if (distance == best && std::find_if(closest.begin(), closest.end(), [&](const auto* c) {
                              return *c == candidate;
                            }) == closest.end()) {
      closest.push_back(&candidate);
    }
  }
  if (best <= limit && closest.size() == 1) {
    return *closest.front();
  }
  if (word.empty()) {
    return std::nullopt;
  }
  std::optional<std::string> prefixed;
  for (const std::string& candidate : candidates) {
    if (candidate.starts_with(word) && candidate != prefixed) {
      if (prefixed.has_value()) {
        return std::nullopt;
      }
      prefixed = candidate;
    }
  }
  return prefixed;
}

}  // namespace discovery::config
