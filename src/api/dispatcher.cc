#include "api/dispatcher.h"

#include <utility>

#include "fmt/format.h"

#include "common/format.h"
#include "common/logging.h"
#include "metrics/metrics.h"

namespace discovery::api {
namespace {

// Client mistakes are logged at DEBUG and everything else at ERROR, as the original does, so a
// misbehaving client cannot fill the error log (docs/decisions.md D34).
bool IsClientOutcome(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return true;
    default:
      return false;
  }
}

}  // namespace

Dispatcher::Dispatcher(Handlers& handlers, const auth::Authenticator& authenticator,
                       CallObserver observer, std::vector<Cidr> trusted_proxies)
    : handlers_(handlers),
      authenticator_(authenticator),
      observer_(std::move(observer)),
      trusted_proxies_(std::move(trusted_proxies)) {}

void Dispatcher::Started(std::string_view full_method) const {
  if (observer_.started) {
    observer_.started(full_method);
  }
}

void Dispatcher::Refused(std::string_view full_method, const absl::Status& status,
                         std::string_view peer) const {
  Started(full_method);
  Finished(full_method, {}, status, absl::ZeroDuration());
  if (const std::optional<Change> change = ChangeOf(full_method); change.has_value()) {
    Audit(*change, {}, nullptr, CallerInfo{.peer = peer}, status, {});
  }
}

void Dispatcher::Audit(const Change& change, const LogFields& arguments,
                       const auth::Principal* principal, const CallerInfo& caller,
                       const absl::Status& status, const LogFields& result) const {
  LogChange(change, arguments, principal,
            ClientAddress(caller.peer, caller.forwarded_for, trusted_proxies_), status, result);
  if (observer_.changed) {
    observer_.changed(change.object, change.op, OutcomeOf(status.code()));
  }
}

void Dispatcher::Finished(std::string_view full_method, std::string_view caller,
                          const absl::Status& status, absl::Duration elapsed) const {
  if (observer_.handled) {
    observer_.handled(full_method, status.code(), elapsed);
  }
  // A client outcome is a debug record: its fields are built only when debug records are written.
  const bool client_outcome = IsClientOutcome(status.code());
  if (client_outcome && !DebugLogEnabled()) {
    return;
  }
  LogFields fields = {{"code", metrics::GrpcCodeName(status.code())},
                      {"method", std::string{full_method}},
                      {"caller", std::string{caller}},
                      {"time_ms", fmt::format("{:.3f}", absl::ToDoubleMilliseconds(elapsed))}};
  if (!status.ok()) {
    fields.emplace_back("error", std::string{status.message()});
  }
  if (client_outcome) {
    LogDebug("finished unary call", fields);
  } else {
    LogError("finished unary call", fields);
  }
}

}  // namespace discovery::api
