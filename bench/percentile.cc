#include "percentile.h"

#include <algorithm>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace discovery::bench {

double Percentile(std::vector<double> values, double fraction) {
  if (values.empty()) {
    return 0;
  }
  const auto index = static_cast<size_t>(fraction * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index),
                   values.end());
  return values[index];
}

std::map<std::string, double> RoundRatios(const std::vector<double>& numerators,
                                          const std::vector<double>& denominators) {
  std::vector<double> ratios;
  for (size_t i = 0; i < numerators.size() && i < denominators.size(); ++i) {
    ratios.push_back(denominators[i] > 0 ? numerators[i] / denominators[i] : 0);
  }
  return {{"ratio", Percentile(ratios, 0.5)},
          {"ratio_min", Percentile(ratios, 0)},
          {"ratio_max", Percentile(ratios, 1)}};
}

}  // namespace discovery::bench
