// The audit trail: every call that changes something — registering or unregistering a
// server, service or namespace, creating or revoking a token — becomes one structured log line at
// info level saying who (principal kind and token id or username), what (object, operation and its
// arguments), from where (the client address) and the outcome, refused calls included.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

#include "auth/principal.h"
#include "common/logging.h"
#include "postfinance/discovery/v1/namespace_api.pb.h"
#include "postfinance/discovery/v1/server_api.pb.h"
#include "postfinance/discovery/v1/service_api.pb.h"
#include "postfinance/discovery/v1/token_api.pb.h"

namespace discovery::api {

// What a changing method does, e.g. {"service", "unregister"}.
struct Change {
  std::string_view object;  // "namespace", "server", "service" or "token"
  std::string_view op;      // "register", "unregister", "create" or "revoke"
};

// The change `full_method` makes; nullopt for calls that only read.
std::optional<Change> ChangeOf(std::string_view full_method);

// The outcome label of a change: "ok", "unauthenticated" (no valid credentials), "denied" (a
// known caller without the permission), "invalid" (the request was wrong: bad argument, not
// found, already exists, failed precondition), "unavailable" (the store or the provider could
// not be reached; retryable) or "error".
std::string_view OutcomeOf(absl::StatusCode code);

// The arguments of a change request that say what it changed, in the audit line.
LogFields AuditArguments(const ::postfinance::discovery::v1::RegisterNamespaceRequest& request);
LogFields AuditArguments(const ::postfinance::discovery::v1::UnregisterNamespaceRequest& request);
LogFields AuditArguments(const ::postfinance::discovery::v1::RegisterServerRequest& request);
LogFields AuditArguments(const ::postfinance::discovery::v1::UnregisterServerRequest& request);
LogFields AuditArguments(const ::postfinance::discovery::v1::RegisterServiceRequest& request);
LogFields AuditArguments(const ::postfinance::discovery::v1::UnRegisterServiceRequest& request);
LogFields AuditArguments(const ::postfinance::discovery::v1::CreateRequest& request);
LogFields AuditArguments(const ::postfinance::discovery::v1::RevokeRequest& request);
// Reads carry no audit arguments.
template <typename Request>
LogFields AuditArguments(const Request& /*request*/) {
  return {};
}

// What the answer of a change adds to its line (the id of a registered service).
LogFields AuditResult(const ::postfinance::discovery::v1::RegisterServiceResponse& response);
template <typename Response>
LogFields AuditResult(const Response& /*response*/) {
  return {};
}

// Writes the audit line of `change`:
//   msg "audit", object, op, <arguments>, who_kind ("machine", "user" or "none" when the caller
//   did not authenticate), who (token id or username), peer (the client address), outcome,
//   code (the gRPC code name) and error (the status message) unless OK, then `result`.
void LogChange(const Change& change, const LogFields& arguments, const auth::Principal* principal,
               std::string_view peer, const absl::Status& status, const LogFields& result);

}  // namespace discovery::api
