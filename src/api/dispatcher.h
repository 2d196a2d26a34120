// One entry point for every API call, whatever the transport: authenticate the bearer
// credentials, run the handler, report the outcome to metrics and the request log. gRPC and
// REST adapters call Dispatch() and only translate their wire formats.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#include "api/audit.h"
#include "api/handlers.h"
#include "api/peer.h"
#include "auth/authenticator.h"

namespace discovery::api {

// Hooks for metrics; all may be empty. `method` is the full gRPC method name,
// e.g. "/postfinance.discovery.v1.ServiceAPI/RegisterService".
struct CallObserver {
  std::function<void(std::string_view method)> started;
  std::function<void(std::string_view method, absl::StatusCode code, absl::Duration elapsed)>
      handled;
  // A change was attempted (see audit.h): object, op and outcome labels.
  std::function<void(std::string_view object, std::string_view op, std::string_view outcome)>
      changed;
};

// A call's credentials and origin as its transport received them; the views must outlive the
// Dispatch call.
struct CallerInfo {
  // The raw `authorization` header or metadata value.
  std::string_view authorization;
  // The transport's peer ("ip:port", "[ip]:port" or gRPC's "ipv4:..."); "" when unknown.
  std::string_view peer;
  // The X-Forwarded-For header or metadata value; "" when absent. Believed only when the peer
  // is a trusted proxy.
  std::string_view forwarded_for;
};

// The full method names of the four services.
inline constexpr std::string_view kNamespaceApi = "/postfinance.discovery.v1.NamespaceAPI/";
inline constexpr std::string_view kServerApi = "/postfinance.discovery.v1.ServerAPI/";
inline constexpr std::string_view kServiceApi = "/postfinance.discovery.v1.ServiceAPI/";
inline constexpr std::string_view kTokenApi = "/postfinance.discovery.v1.TokenAPI/";

class Dispatcher {
 public:
  // Handlers and authenticator must outlive the dispatcher. `trusted_proxies`
  // (--trusted-proxies) are the peers whose X-Forwarded-For is believed in the audit trail.
  Dispatcher(Handlers& handlers, const auth::Authenticator& authenticator,
             CallObserver observer = {}, std::vector<Cidr> trusted_proxies = {});

  template <typename Response, typename Request>
  using Method = absl::StatusOr<Response> (Handlers::*)(const auth::Principal&, const Request&);

  // Authenticates the caller's authorization, then runs `method`; a change (audit.h) is
  // written to the audit trail and counted, whatever its outcome.
  template <typename Response, typename Request>
  absl::StatusOr<Response> Dispatch(std::string_view full_method, const CallerInfo& caller,
                                    const Request& request, Method<Response, Request> method) {
    const absl::Time start = absl::Now();
    Started(full_method);
    absl::StatusOr<auth::Principal> principal = authenticator_.Authenticate(caller.authorization);
    absl::StatusOr<Response> response =
        principal.ok() ? (handlers_.*method)(*principal, request) : principal.status();
    Report(full_method, principal.ok() ? &*principal : nullptr, caller, request, response, start);
    return response;
  }

  template <typename Response, typename Request>
  using AsyncMethod = void (Handlers::*)(const auth::Principal&, const Request&,
                                         Handlers::Answer<Response>);

  // Dispatch for a method that answers later (Handlers::RegisterServiceAsync): the outcome is
  // reported and `done` called on whichever thread the method answers on. `request` must stay
  // alive until `done` has run; `caller` is copied.
  template <typename Response, typename Request>
  void DispatchAsync(std::string_view full_method, const CallerInfo& caller, const Request& request,
                     AsyncMethod<Response, Request> method,
                     std::type_identity_t<Handlers::Answer<Response>> done) {
    const absl::Time start = absl::Now();
    Started(full_method);
    absl::StatusOr<auth::Principal> principal = authenticator_.Authenticate(caller.authorization);
    if (!principal.ok()) {
      absl::StatusOr<Response> refused = principal.status();
      Report(full_method, nullptr, caller, request, refused, start);
      std::move(done)(std::move(refused));
      return;
    }
    (handlers_.*method)(
        *principal, request,
        [this, full_method = std::string(full_method), principal = *principal,
         peer = std::string(caller.peer), forwarded_for = std::string(caller.forwarded_for),
         &request, start, done = std::move(done)](absl::StatusOr<Response> response) mutable {
          Report(full_method, &principal, {.peer = peer, .forwarded_for = forwarded_for}, request,
                 response, start);
          std::move(done)(std::move(response));
        });
  }

  template <typename Response, typename Request>
  using AsyncFromMemoryMethod = Handlers::Answer<Response> (Handlers::*)(
      const auth::Principal&, const Request&, Handlers::Answer<Response>);

  // DispatchAsync for a thread that must not block (gRPC's callback threads): runs `method`
  // (Handlers::RegisterServiceFromMemory) only for a caller the authenticator remembers
  // (Authenticator::CachedPrincipal), and `method` hands its answer back when it cannot start
  // without blocking. In both cases nothing is reported and `done` comes back, for DispatchAsync
  // on a thread that may block; otherwise an empty Answer is returned and the call is reported
  // as DispatchAsync reports it.
  template <typename Response, typename Request>
  Handlers::Answer<Response> DispatchAsyncFromMemory(
      std::string_view full_method, const CallerInfo& caller, const Request& request,
      AsyncFromMemoryMethod<Response, Request> method,
      std::type_identity_t<Handlers::Answer<Response>> done) {
    const absl::Time start = absl::Now();
    std::optional<auth::Principal> principal = authenticator_.CachedPrincipal(caller.authorization);
    if (!principal.has_value()) {
      return done;
    }
    // Shared with the method's answer so that `done` can come back when the call is not taken.
    auto answer = std::make_shared<Handlers::Answer<Response>>(std::move(done));
    Handlers::Answer<Response> back = (handlers_.*method)(
        *principal, request,
        [this, full_method = std::string(full_method), principal = *principal,
         peer = std::string(caller.peer), forwarded_for = std::string(caller.forwarded_for),
         &request, start, answer](absl::StatusOr<Response> response) {
          Report(full_method, &principal, {.peer = peer, .forwarded_for = forwarded_for}, request,
                 response, start);
          std::move (*answer)(std::move(response));
        });
    if (back != nullptr) {
      return std::move(*answer);
    }
    // Only now that it is known to be taken (a refusal may have been reported already).
    Started(full_method);
    return nullptr;
  }

  // Dispatch for an answer from memory (for the HTTP server's I/O thread): runs `method`
  // (called as method(handlers, principal, request), returning absl::StatusOr of a pointer)
  // only for a caller the authenticator remembers (Authenticator::CachedPrincipal), and
  // `method` answers nullptr when it cannot answer without blocking. nullopt in both cases,
  // with nothing reported, so that the caller dispatches the call in full; otherwise reported
  // as Dispatch.
  template <typename Request, typename Fn>
  auto DispatchFromMemory(std::string_view full_method, std::string_view authorization,
                          const Request& request, Fn&& method)
      -> std::optional<
          std::invoke_result_t<Fn&, Handlers&, const auth::Principal&, const Request&>> {
    const absl::Time start = absl::Now();
    std::optional<auth::Principal> principal = authenticator_.CachedPrincipal(authorization);
    if (!principal.has_value()) {
      return std::nullopt;
    }
    auto response = std::invoke(method, handlers_, *principal, request);
    if (response.ok() && *response == nullptr) {
      return std::nullopt;
    }
    Started(full_method);
    Finished(full_method, principal->name, response.status(), absl::Now() - start);
    return response;
  }

  // Reports a call that was answered with `status` without running: refused because the server
  // is overloaded or shutting down, or abandoned by its client while it waited. A change is
  // audited with no caller and no arguments (the request was not looked at).
  void Refused(std::string_view full_method, const absl::Status& status,
               std::string_view peer = {}) const;

 private:
  // Reports a call's outcome to the metrics, the request log and, for a change, the audit trail.
  template <typename Response, typename Request>
  void Report(std::string_view full_method, const auth::Principal* principal,
              const CallerInfo& caller, const Request& request,
              const absl::StatusOr<Response>& response, absl::Time start) const {
    Finished(full_method, principal != nullptr ? principal->name : std::string_view{},
             response.status(), absl::Now() - start);
    if (const std::optional<Change> change = ChangeOf(full_method); change.has_value()) {
      Audit(*change, AuditArguments(request), principal, caller, response.status(),
            response.ok() ? AuditResult(*response) : LogFields{});
    }
  }

  void Started(std::string_view full_method) const;
  void Finished(std::string_view full_method, std::string_view caller, const absl::Status& status,
                absl::Duration elapsed) const;
  void Audit(const Change& change, const LogFields& arguments, const auth::Principal* principal,
             const CallerInfo& caller, const absl::Status& status, const LogFields& result) const;

  Handlers& handlers_;
  const auth::Authenticator& authenticator_;
  const CallObserver observer_;
  const std::vector<Cidr> trusted_proxies_;
};

}  // namespace discovery::api
