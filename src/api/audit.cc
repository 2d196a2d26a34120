#include "api/audit.h"

#include <array>
#include <string>
#include <utility>

#include "absl/strings/str_join.h"

#include "api/dispatcher.h"
#include "metrics/metrics.h"

namespace discovery::api {
namespace {

struct ChangingMethod {
  std::string_view service;
  std::string_view method;
  Change change;
};

// ServiceAPI/KeepAlive is left out on purpose: every host with a TTL calls it every few seconds,
// which would bury the changes in renewals; discovery_service_renewals_total counts them, and a
// renewal changes nothing but the expiry.
constexpr std::array<ChangingMethod, 8> kChanges = {{
    {kNamespaceApi, "RegisterNamespace", {"namespace", "register"}},
    {kNamespaceApi, "UnregisterNamespace", {"namespace", "unregister"}},
    {kServerApi, "RegisterServer", {"server", "register"}},
    {kServerApi, "UnregisterServer", {"server", "unregister"}},
    {kServiceApi, "RegisterService", {"service", "register"}},
    {kServiceApi, "UnRegisterService", {"service", "unregister"}},
    {kTokenApi, "Create", {"token", "create"}},
    {kTokenApi, "Revoke", {"token", "revoke"}},
}};

std::string Joined(const google::protobuf::RepeatedPtrField<std::string>& values) {
  std::string joined;
  for (const std::string& value : values) {
    joined += joined.empty() ? "" : ",";
    joined += value;
  }
  return joined;
}

}  // namespace

std::optional<Change> ChangeOf(std::string_view full_method) {
  for (const ChangingMethod& candidate : kChanges) {
    if (full_method.size() == candidate.service.size() + candidate.method.size() &&
        full_method.starts_with(candidate.service) && full_method.ends_with(candidate.method)) {
      return candidate.change;
    }
  }
  return std::nullopt;
}

std::string_view OutcomeOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return "ok";
    case absl::StatusCode::kUnauthenticated:
      return "unauthenticated";
    case absl::StatusCode::kPermissionDenied:
      return "denied";
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return "invalid";
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
      return "unavailable";
    default:
      return "error";
  }
}

LogFields AuditArguments(const pb::RegisterNamespaceRequest& request) {
  return {{"name", request.name()}};
}
LogFields AuditArguments(const pb::UnregisterNamespaceRequest& request) {
  return {{"name", request.name()}};
}
LogFields AuditArguments(const pb::RegisterServerRequest& request) {
  return {{"name", request.name()}};
}
LogFields AuditArguments(const pb::UnregisterServerRequest& request) {
  return {{"name", request.name()}};
}
LogFields AuditArguments(const pb::RegisterServiceRequest& request) {
  // An omitted namespace is "default" for the registry too.
  return {{"namespace", request.namespace_().empty() ? "default" : request.namespace_()},
          {"name", request.name()},
          {"endpoint", request.endpoint()}};
}
LogFields AuditArguments(const pb::UnRegisterServiceRequest& request) {
  return {{"namespace", request.namespace_().empty() ? "default" : request.namespace_()},
          {"id", request.id()}};
}
LogFields AuditArguments(const pb::CreateRequest& request) {
  return {{"token_id", request.id()},
          {"namespaces", Joined(request.namespaces())},
          {"expires", request.expires()}};
}

LogFields AuditArguments(const pb::RevokeRequest& request) { return {{"token_id", request.id()}}; }

LogFields AuditResult(const pb::RegisterServiceResponse& response) {
  // Where it was placed, so that the audit line alone answers "which Prometheus scrapes it".
  return {{"id", response.service().id()},
          {"servers", absl::StrJoin(response.service().servers(), ",")}};
}

void LogChange(const Change& change, const LogFields& arguments, const auth::Principal* principal,
               std::string_view peer, const absl::Status& status, const LogFields& result) {
  LogFields fields = {{"object", std::string(change.object)}, {"op", std::string(change.op)}};
  fields.insert(fields.end(), arguments.begin(), arguments.end());
  fields.emplace_back("who_kind", principal == nullptr ? "none" : KindName(principal->kind));
  fields.emplace_back("who", principal == nullptr ? "" : principal->name);
  fields.emplace_back("peer", std::string(peer));
  fields.emplace_back("outcome", std::string(OutcomeOf(status.code())));
  fields.emplace_back("code", metrics::GrpcCodeName(status.code()));
  if (!status.ok()) {
    fields.emplace_back("error", std::string{status.message()});
  }
  fields.insert(fields.end(), result.begin(), result.end());
  LogInfo("audit", fields);
}

}  // namespace discovery::api
