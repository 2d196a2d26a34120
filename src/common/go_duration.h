// Go duration syntax ("300ms", "1h30m", "-2.5s"), as used by the flags, environment variables
// and config files of both binaries. Parsing and formatting follow Go's time.ParseDuration and
// time.Duration.String exactly, so values round-trip with the Go original.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace discovery {

// Parses `text` like Go's time.ParseDuration: an optional sign, then one or more decimal numbers
// (fraction allowed) each followed by a unit (ns, us, µs, μs, ms, s, m, h); "0" needs no unit.
// The result lies in Go's range, [-2^63ns, 2^63-1ns]. Returns InvalidArgument with Go's message
// (`time: invalid duration "x"`, `time: missing unit in duration "1"`,
// `time: unknown unit "d" in duration "1d"`) otherwise. Thread-safe.
absl::StatusOr<absl::Duration> ParseGoDuration(std::string_view text);

// Formats `duration` like Go's Duration.String: "0s", "1.5µs", "300ms", "1h0m0s",
// "2m3.000000004s". Sub-nanosecond parts are truncated and values beyond Go's int64 range are
// clamped to it (infinite durations included). Thread-safe.
std::string FormatGoDuration(absl::Duration duration);

}  // namespace discovery
