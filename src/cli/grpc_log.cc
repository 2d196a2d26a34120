#include "cli/grpc_log.h"

#include <atomic>
#include <string>

#include "grpc/support/log.h"

#include "common/logging.h"

namespace discovery::cli {
namespace {

std::atomic<GrpcLogLevel> errors_level{GrpcLogLevel::kDebug};

// Called by gRPC on any of its threads; common/logging is thread-safe.
void Forward(gpr_log_func_args* args) {
  const LogFields fields = {{"source", "grpc"},
                            {"file", std::string(args->file) + ":" + std::to_string(args->line)}};
  if (args->severity == GPR_LOG_SEVERITY_ERROR && errors_level.load() == GrpcLogLevel::kWarn) {
    LogWarn(args->message, fields);
  } else {
    LogDebug(args->message, fields);
  }
}

}  // namespace

void RouteGrpcLogs(GrpcLogLevel errors) {
  errors_level.store(errors);
  gpr_set_log_function(&Forward);
}

}  // namespace discovery::cli
