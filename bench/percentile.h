#ifndef DISCOVERY_BENCH_PERCENTILE_H_
#define DISCOVERY_BENCH_PERCENTILE_H_

#include <map>
#include <string>
#include <vector>

namespace discovery::bench {

// The sample at `fraction` (0 to 1) of `values` in ascending order, without interpolation: the
// one at index floor(fraction * (size - 1)), so 0.5 is the median of an odd count and 1.0 the
// maximum. 0 for no values.
double Percentile(std::vector<double> values, double fraction);

// The ratios numerators[i] / denominators[i] of alternating rounds (0 where a denominator is 0),
// as the benchmarks report them: their median as "ratio" (the figure), with "ratio_min" and
// "ratio_max".
std::map<std::string, double> RoundRatios(const std::vector<double>& numerators,
                                          const std::vector<double>& denominators);

}  // namespace discovery::bench

#endif  // DISCOVERY_BENCH_PERCENTILE_H_
