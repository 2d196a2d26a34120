// gRPC core writes its own log lines ("E1204 12:00:00.000 ... Handshake failed") to stderr. Both
// binaries send them through common/logging instead, so that no library's logging reaches an
// operator's terminal in its own format.
#pragma once

namespace discovery::cli {

enum class GrpcLogLevel {
  kDebug,  // the CLI: its own one-line error says what failed; -d shows gRPC's details
  kWarn,   // discoveryd: gRPC's errors belong in the daemon's log
};

// Routes gRPC core's log lines to LogDebug, or to LogWarn for gRPC's errors with `kWarn`. Call
// after InitLogging and before the first channel or server; process-wide.
void RouteGrpcLogs(GrpcLogLevel errors);

}  // namespace discovery::cli
