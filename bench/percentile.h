#ifndef DISCOVERY_BENCH_PERCENTILE_H_
#define DISCOVERY_BENCH_PERCENTILE_H_

#include <vector>

namespace discovery::bench {

// The sample at `fraction` (0 to 1) of `values` in ascending order, without interpolation: the
// one at index floor(fraction * (size - 1)), so 0.5 is the median of an odd count and 1.0 the
// maximum. 0 for no values.
double Percentile(std::vector<double> values, double fraction);

}  // namespace discovery::bench

#endif  // DISCOVERY_BENCH_PERCENTILE_H_
