#include "registry/registry.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "absl/synchronization/notification.h"
#include "fmt/format.h"

#include "common/format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/thread_name.h"
#include "model/endpoint.h"
#include "selector/selector.h"

namespace discovery::registry {
namespace {

constexpr std::string_view kDefaultNamespace = "default";
// Compare-and-set writes retry this often when a concurrent change got in between.
constexpr int kCasAttempts = 5;

// A store failure as the caller sees it: unavailability and timeouts keep their code so that
// clients know to retry; anything else is Internal, prefixed with what was being done.
absl::Status StoreError(const absl::Status& status, std::string_view context) {
  const std::string message = fmt::format("{}: {}", context, status.message());
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
      return absl::UnavailableError(message);
    case absl::StatusCode::kDeadlineExceeded:
      return absl::DeadlineExceededError(message);
    default:
      return absl::InternalError(message);
  }
}

// A server name RegisterServer would accept but for ':' ("host:9090"): how Go deployments often
// named their Prometheus servers. Such a name is looked up like a valid one (an unknown one has
// no targets), whether or not a server of that name is stored.
bool IsHostPortName(std::string_view name) {
  if (name.find(':') == std::string_view::npos) {
    return false;
  }
  std::string probe(name);
  std::replace(probe.begin(), probe.end(), ':', '-');
  return ValidateServerName(probe).ok();
}

absl::Status ValidationError(const absl::Status& status) {
  return absl::InvalidArgumentError(fmt::format("{} : validation error", status.message()));
}

// Query parameters become __param_<key> labels; a key that is not a valid label name would
// hand Prometheus a target group it rejects as a whole.
absl::Status ValidateQueryKeys(const Endpoint& endpoint) {
  for (const auto& [key, value] : endpoint.QueryParams()) {
    const bool valid = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    });
    if (!valid) {
      return absl::InvalidArgumentError(fmt::format(
          "query parameter '{}' cannot become the Prometheus label '__param_{}': parameter names "
          "must contain only ASCII letters, numbers and underscores",
          key, key));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view NamespaceOrDefault(std::string_view namespace_name) {
  return namespace_name.empty() ? kDefaultNamespace : namespace_name;
}

Registry::Registry(store::Store& store, repo::Keys keys, RegistryOptions options)
    : store_(store), repo_(store, keys), options_(std::move(options)) {
  repo::ViewOptions view_options = options_.view;
  // The clock that sets `expires` is the one that ends it.
  view_options.clock = options_.clock;
  view_wait_timer_ = std::jthread([this](const std::stop_token& stop) {
    NameThisThread("view-wait");
    RunViewWaitTimer(stop);
  });
  view_ = std::make_unique<repo::View>(
      store_, std::move(keys), std::move(view_options),
      [this](const std::shared_ptr<const repo::Snapshot>& snapshot) { OnSnapshot(snapshot); });
}

Registry::~Registry() {
  view_.reset();  // no snapshot is published after this
  {
    absl::MutexLock lock(&published_mu_);
    stopping_ = true;
  }
  view_wait_timer_.request_stop();
  view_wait_timer_.join();
  // Writes still waiting were committed: their writers get their answer rather than none.
  std::multimap<int64_t, ViewWaiter> left;
  {
    absl::MutexLock lock(&published_mu_);
    left.swap(view_waiters_);
  }
  for (auto& [revision, waiter] : left) {
    std::move(waiter.then)();
  }
}

void Registry::OnSnapshot(const std::shared_ptr<const repo::Snapshot>& snapshot) {
  std::shared_ptr<const readmodel::Placed> previous = Current();
  std::shared_ptr<const readmodel::Placed> placed = readmodel::Placed::Compute(
      snapshot, previous.get(), options_.placement.value_or(placement::Settings{}));
  if (options_.on_counts) {
    options_.on_counts(placed->Counts());
  }
  if (options_.on_invalid) {
    options_.on_invalid(repo::InvalidRecordCounts(*snapshot));
  }
  if (options_.on_ttl) {
    options_.on_ttl(snapshot->services_with_ttl, snapshot->expired_services);
  }
  const int64_t revision = placed->snapshot().revision;
  {
    absl::MutexLock lock(&mu_);
    std::swap(placed_, placed);
  }
  std::vector<absl::AnyInvocable<void() &&>> shown;
  {
    absl::MutexLock lock(&published_mu_);
    published_revision_ = revision;
    published_ = true;
    const auto end = view_waiters_.upper_bound(revision);
    for (auto it = view_waiters_.begin(); it != end; ++it) {
      shown.push_back(std::move(it->second.then));
    }
    view_waiters_.erase(view_waiters_.begin(), end);
  }
  for (absl::AnyInvocable<void() &&>& then : shown) {
    std::move(then)();
  }
  // The replaced placement (and perhaps its snapshot) is freed here, outside the lock.
}

void Registry::WhenViewShows(int64_t revision, absl::AnyInvocable<void() &&> then) {
  {
    absl::MutexLock lock(&published_mu_);
    if (!published_ || published_revision_ < revision) {
      view_waiters_.emplace(revision, ViewWaiter{.deadline = absl::Now() + options_.view_wait,
                                                 .then = std::move(then)});
      return;
    }
  }
  std::move(then)();
}

void Registry::RunViewWaitTimer(const std::stop_token& stop) {
  // Overdue waiters are looked for a few times per view_wait: the wait is a safety net for a
  // view that stopped following the store, not a deadline to keep to the millisecond.
  const absl::Duration interval =
      std::clamp(options_.view_wait / 4, absl::Milliseconds(10), absl::Seconds(1));
  auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(published_mu_) { return stopping_; };
  while (!stop.stop_requested()) {
    std::vector<absl::AnyInvocable<void() &&>> overdue;
    int64_t revision = 0;
    {
      absl::MutexLock lock(&published_mu_);
      if (published_mu_.AwaitWithTimeout(absl::Condition(&stopping), interval)) {
        return;
      }
      const absl::Time now = absl::Now();
      for (auto it = view_waiters_.begin(); it != view_waiters_.end();) {
        if (it->second.deadline <= now) {
          revision = std::max(revision, it->first);
          overdue.push_back(std::move(it->second.then));
          it = view_waiters_.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (!overdue.empty()) {
      LogWarn("the view did not reach the store revision in time; a read may not show it yet",
              {{"revision", std::to_string(revision)},
               {"writes", std::to_string(overdue.size())},
               {"wait", absl::FormatDuration(options_.view_wait)}});
    }
    for (absl::AnyInvocable<void() &&>& then : overdue) {
      std::move(then)();
    }
  }
}

std::shared_ptr<const readmodel::Placed> Registry::Current() const {
  absl::MutexLock lock(&mu_);
  return placed_;
}

bool Registry::WaitForRevision(int64_t revision, absl::Duration timeout) const {
  absl::MutexLock lock(&published_mu_);
  auto reached = [this, revision]() ABSL_SHARED_LOCKS_REQUIRED(published_mu_) {
    return published_ && published_revision_ >= revision;
  };
  return published_mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

void Registry::AwaitView(int64_t revision) const {
  if (!WaitForRevision(revision, options_.view_wait)) {
    LogWarn("the view did not reach the store revision in time; a read may not show it yet",
            {{"revision", std::to_string(revision)},
             {"wait", absl::FormatDuration(options_.view_wait)}});
  }
}

absl::Status Registry::Ready() const {
  if (Current() == nullptr) {
    absl::Status health = view_->Health();
    return absl::UnavailableError(
        health.ok()
            ? std::string{"the registry has not loaded the store yet"}
            : fmt::format("the registry has not loaded the store yet: {}", health.message()));
  }
  if (absl::Status health = view_->Health(); !health.ok()) {
    return absl::UnavailableError(fmt::format("the registry lost the store: {}", health.message()));
  }
  if (!initialized_) {
    return absl::UnavailableError("the registry is storing its settings and namespace default");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const readmodel::Placed>> Registry::Loaded() const {
  std::shared_ptr<const readmodel::Placed> placed = Current();
  if (placed == nullptr) {
    return Ready();
  }
  return placed;
}

absl::Status Registry::Initialize(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const int64_t failed_before = view_->FailedReads();
  {
    absl::MutexLock lock(&published_mu_);
    published_mu_.AwaitWithDeadline(absl::Condition(&published_), deadline);
  }
  if (Current() == nullptr) {
    // Reading a million services, or placing them once read, takes seconds: that is no failure
    // of the store. A read that failed while this waited is one, even if the view is trying
    // again at the instant it is asked.
    const bool failed_meanwhile = view_->FailedReads() != failed_before;
    if (view_->Current() != nullptr || (view_->Loading() && !failed_meanwhile)) {
      return absl::DeadlineExceededError(
          fmt::format("the store is still being loaded after {}", absl::FormatDuration(timeout)));
    }
    return absl::UnavailableError(fmt::format("could not load the store within {}: {}",
                                              absl::FormatDuration(timeout),
                                              view_->Health().message()));
  }
  DISCOVERY_RETURN_IF_ERROR(StorePlacementSettings());
  DISCOVERY_RETURN_IF_ERROR(EnsureDefaultNamespace());
  initialized_ = true;
  return absl::OkStatus();
}

absl::Status Registry::StorePlacementSettings() {
  std::shared_ptr<const readmodel::Placed> placed = Current();
  const std::optional<placement::Settings>& stored = placed->snapshot().placement;
  std::optional<placement::Settings> wanted = options_.placement;
  if (!wanted.has_value() && !stored.has_value()) {
    wanted = placement::Settings{};
  }
  if (!wanted.has_value() || wanted == stored) {
    return absl::OkStatus();
  }
  absl::StatusOr<int64_t> revision = repo_.PutPlacementSettings(*wanted);
  if (!revision.ok()) {
    return StoreError(revision.status(), "could not store the placement settings");
  }
  LogInfo("placement settings stored", {{"algorithm", placement::AlgorithmName(wanted->algorithm)},
                                        {"replicas", std::to_string(wanted->replicas)}});
  AwaitView(*revision);
  return absl::OkStatus();
}

absl::Status Registry::EnsureDefaultNamespace() {
  const Namespace ns{.name = std::string{kDefaultNamespace},
                     .export_config = ExportConfig::kStandard,
                     .modified = options_.clock()};
  DISCOVERY_ASSIGN_OR_RETURN(store::Op op, repo_.PutNamespaceOp(ns));
  // Create only if absent: another replica may have created it, or an operator changed it.
  absl::StatusOr<store::TxnResult> result = store_.Commit(
      {.compares = {{.key = repo_.keys().Namespace(ns.name), .mod_revision = 0}}, .ops = {op}});
  if (!result.ok()) {
    return StoreError(result.status(), "could not create the default namespace");
  }
  if (result->succeeded) {
    LogInfo("creating default namespace");
    AwaitView(result->revision);
  }
  return absl::OkStatus();
}

absl::StatusOr<Namespace> Registry::RegisterNamespace(std::string name,
                                                      ExportConfig export_config) {
  Namespace ns{
      .name = std::move(name), .export_config = export_config, .modified = options_.clock()};
  if (absl::Status valid = Validate(ns); !valid.ok()) {
    return ValidationError(valid);
  }
  if (export_config != ExportConfig::kDisabled && export_config != ExportConfig::kStandard &&
      export_config != ExportConfig::kBlackbox) {
    return absl::InvalidArgumentError(
        fmt::format("export config {} is not valid: use 0 (disabled), 1 (standard) or 2 (blackbox)",
                    static_cast<int32_t>(export_config)));
  }
  absl::StatusOr<int64_t> revision = repo_.PutNamespace(ns);
  if (!revision.ok()) {
    return StoreError(revision.status(),
                      fmt::format("could not register namespace {} in store", ns.name));
  }
  LogDebug("register namespace",
           {{"namespace", ns.name}, {"export", ExportConfigName(ns.export_config)}});
  AwaitView(*revision);
  return ns;
}

absl::Status Registry::UnregisterNamespace(std::string_view name) {
  if (absl::Status valid = ValidateNamespaceName(name); !valid.ok()) {
    return ValidationError(valid);
  }
  if (name == kDefaultNamespace) {
    // Every registration without a namespace goes to `default`: without it they all fail until
    // a restart recreates it.
    return absl::FailedPreconditionError(
        "namespace default cannot be unregistered: services registered without a namespace go "
        "there");
  }
  std::vector<std::string> bounds;
  if (const std::shared_ptr<const readmodel::Placed> placed = Current(); placed != nullptr) {
    if (const repo::ServiceMap* services = placed->snapshot().ServicesIn(name);
        services != nullptr && options_.services_per_deletion > 0) {
      size_t index = 0;
      services->ForEach([&](std::string_view id, const repo::ServicePtr& /*service*/) {
        if (++index % options_.services_per_deletion == 0) {
          bounds.emplace_back(id);
        }
      });
    }
  }
  absl::StatusOr<int64_t> revision = repo_.DeleteNamespace(name, bounds);
  if (absl::IsNotFound(revision.status())) {
    return absl::NotFoundError(fmt::format(
        "could not unregister namespace {} in store: namespace {} not found", name, name));
  }
  if (!revision.ok()) {
    return StoreError(revision.status(),
                      fmt::format("could not unregister namespace {} in store", name));
  }
  LogDebug("unregister namespace", {{"namespace", std::string{name}}});
  AwaitView(*revision);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Namespace>> Registry::ListNamespaces() const {
  DISCOVERY_ASSIGN_OR_RETURN(std::shared_ptr<const readmodel::Placed> placed, Loaded());
  std::vector<Namespace> namespaces;
  for (const auto& [name, ns] : placed->snapshot().namespaces) {
    namespaces.push_back(ns);
  }
  return namespaces;
}

absl::StatusOr<Server> Registry::RegisterServer(std::string name, Labels labels) {
  Server server{.name = std::move(name),
                .labels = std::move(labels),
                .state = ServerState::kActive,
                .modified = options_.clock()};
  if (absl::Status valid = Validate(server); !valid.ok()) {
    return ValidationError(valid);
  }
  absl::StatusOr<int64_t> revision = repo_.PutServer(server);
  if (!revision.ok()) {
    return StoreError(revision.status(),
                      fmt::format("could not register server {} in store", server.name));
  }
  LogDebug("register server", {{"server", server.name}, {"labels", LabelsToString(server.labels)}});
  AwaitView(*revision);
  return server;
}

absl::Status Registry::UnregisterServer(std::string_view name) {
  // Not only names RegisterServer accepts: a server the Go original stored as "host:9090" must
  // be removable. Any other name it refuses stays a validation error.
  const absl::Status valid = ValidateServerName(name);
  const bool host_port = valid.ok() || IsHostPortName(name);
  if (!host_port && !ValidateExistingServerName(name).ok()) {
    return ValidationError(valid);
  }
  absl::StatusOr<int64_t> revision = repo_.DeleteServer(name);
  if (absl::IsNotFound(revision.status()) && !host_port) {
    return ValidationError(valid);
  }
  if (absl::IsNotFound(revision.status())) {
    return absl::NotFoundError(
        fmt::format("could not unregister server {} in store: server {} not found", name, name));
  }
  if (!revision.ok()) {
    return StoreError(revision.status(),
                      fmt::format("could not unregister server {} in store", name));
  }
  LogDebug("unregister server", {{"server", std::string{name}}});
  AwaitView(*revision);
  return absl::OkStatus();
}

absl::StatusOr<repo::TokenRevocation> Registry::RevokeToken(std::string id,
                                                            std::string revoked_by) {
  DISCOVERY_RETURN_IF_ERROR(repo::ValidateTokenId(id));
  repo::TokenRevocation revocation{
      .id = std::move(id), .revoked_at = options_.clock(), .revoked_by = std::move(revoked_by)};
  absl::StatusOr<int64_t> revision = repo_.PutRevocation(revocation);
  if (!revision.ok()) {
    return StoreError(revision.status(),
                      fmt::format("could not revoke token {} in store", revocation.id));
  }
  AwaitView(*revision);
  return revocation;
}

bool Registry::IsTokenRevoked(std::string_view id) const {
  const std::shared_ptr<const readmodel::Placed> placed = Current();
  return placed != nullptr && placed->snapshot().revoked_tokens.contains(id);
}

absl::StatusOr<std::vector<repo::TokenRevocation>> Registry::ListRevokedTokens() const {
  DISCOVERY_ASSIGN_OR_RETURN(std::shared_ptr<const readmodel::Placed> placed, Loaded());
  std::vector<repo::TokenRevocation> revoked;
  for (const auto& [id, revocation] : placed->snapshot().revoked_tokens) {
    revoked.push_back(revocation);
  }
  return revoked;
}

absl::StatusOr<std::vector<Server>> Registry::ListServers() const {
  DISCOVERY_ASSIGN_OR_RETURN(std::shared_ptr<const readmodel::Placed> placed, Loaded());
  std::vector<Server> servers;
  for (const auto& [name, server] : placed->snapshot().servers) {
    servers.push_back(server);
  }
  return servers;
}

struct Registry::PendingRegistration {
  Service service;
  std::string scheme;  // of the endpoint
  RegisterCallback done;
};

absl::StatusOr<Service> Registry::RegisterService(const ServiceRegistration& registration) {
  absl::Notification answered;
  absl::StatusOr<Service> answer;
  RegisterServiceAsync(registration, [&](absl::StatusOr<Service> result) {
    answer = std::move(result);
    answered.Notify();
  });
  answered.WaitForNotification();
  return answer;
}

namespace {

// The service a valid registration stores (without its placement and times), and its endpoint's
// scheme; InvalidArgument naming what is wrong otherwise.
absl::StatusOr<std::pair<Service, std::string>> ServiceOf(const ServiceRegistration& registration,
                                                          const RegistryOptions& options) {
  absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(registration.endpoint);
  if (!endpoint.ok()) {
    return absl::InvalidArgumentError(fmt::format("service with endpoint {} is invalid: {}",
                                                  registration.endpoint,
                                                  endpoint.status().message()));
  }
  if (absl::Status valid = ValidateServiceName(registration.name); !valid.ok()) {
    return absl::InvalidArgumentError(fmt::format("service with endpoint {} is invalid: {}",
                                                  registration.endpoint, valid.message()));
  }
  DISCOVERY_RETURN_IF_ERROR(ValidateQueryKeys(*endpoint));
  Service service{.id = ServiceId(endpoint->String()),
                  .name = registration.name,
                  .namespace_name = std::string{NamespaceOrDefault(registration.namespace_name)},
                  .endpoint = endpoint->String(),
                  .selector = registration.selector,
                  .labels = registration.labels,
                  .description = registration.description};
  if (registration.ttl < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        fmt::format("service with endpoint {} is invalid: negative TTL {}", registration.endpoint,
                    absl::FormatDuration(registration.ttl)));
  }
  if (registration.ttl > absl::ZeroDuration()) {
    service.ttl = std::clamp(registration.ttl, options.min_ttl, options.max_ttl);
  }
  if (absl::Status valid = ValidateNamespaceName(service.namespace_name); !valid.ok()) {
    return ValidationError(valid);
  }
  if (absl::Status valid = ValidateLabels(service.labels); !valid.ok()) {
    return ValidationError(valid);
  }
  if (absl::Status valid = ValidateDescription(service.description); !valid.ok()) {
    return ValidationError(valid);
  }
  absl::StatusOr<selector::Selector> selector = selector::Selector::Parse(service.selector);
  if (!selector.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("invalid selector '{}': {}", service.selector, selector.status().message()));
  }
  std::string scheme = endpoint->scheme();
  return std::pair<Service, std::string>(std::move(service), std::move(scheme));
}

}  // namespace

void Registry::RegisterServiceAsync(const ServiceRegistration& registration,
                                    RegisterCallback done) {
  absl::StatusOr<std::pair<Service, std::string>> valid = ServiceOf(registration, options_);
  if (!valid.ok()) {
    std::move(done)(valid.status());
    return;
  }
  TryRegister(
      std::make_unique<PendingRegistration>(PendingRegistration{.service = std::move(valid->first),
                                                                .scheme = std::move(valid->second),
                                                                .done = std::move(done)}),
      /*attempt=*/1);
}

Registry::RegisterCallback Registry::RegisterServiceFromMemory(
    const ServiceRegistration& registration, RegisterCallback done) {
  absl::StatusOr<std::pair<Service, std::string>> valid = ServiceOf(registration, options_);
  if (!valid.ok()) {
    std::move(done)(valid.status());
    return nullptr;
  }
  if (valid->first.HasTtl()) {
    return done;
  }
  std::unique_ptr<PendingRegistration> back = TryRegister(
      std::make_unique<PendingRegistration>(PendingRegistration{.service = std::move(valid->first),
                                                                .scheme = std::move(valid->second),
                                                                .done = std::move(done)}),
      /*attempt=*/1, /*may_read_store=*/false);
  return back == nullptr ? nullptr : std::move(back->done);
}

std::unique_ptr<Registry::PendingRegistration> Registry::TryRegister(
    std::unique_ptr<PendingRegistration> pending, int attempt, bool may_read_store) {
  bool needs_store_read = false;
  absl::Status outcome = [&]() -> absl::Status {
    Service& service = pending->service;
    DISCOVERY_ASSIGN_OR_RETURN(std::shared_ptr<const readmodel::Placed> placed, Loaded());
    // The namespace's revision guards the write: a namespace deleted in between (which deletes
    // its services) must not get a service back. The view knows the revision, so a write costs
    // no read; only when the guard failed (the namespace changed after the view saw it) or the
    // view does not know the namespace yet is the store asked.
    int64_t namespace_revision = 0;
    ExportConfig export_config = ExportConfig::kStandard;
    const auto& known = placed->snapshot().namespace_revisions;
    const auto& namespaces = placed->snapshot().namespaces;
    if (auto it = known.find(service.namespace_name);
        it != known.end() && attempt == 1 && namespaces.contains(service.namespace_name)) {
      namespace_revision = it->second;
      export_config = namespaces.at(service.namespace_name).export_config;
    } else if (!may_read_store) {
      needs_store_read = true;
      return absl::OkStatus();
    } else {
      absl::StatusOr<repo::Versioned<Namespace>> ns = repo_.GetNamespace(service.namespace_name);
      if (absl::IsNotFound(ns.status())) {
        return absl::NotFoundError(
            fmt::format("could not register service {}: namespace {} not found", service.endpoint,
                        service.namespace_name));
      }
      if (!ns.ok()) {
        return StoreError(ns.status(),
                          fmt::format("could not register service {} in store", service.endpoint));
      }
      namespace_revision = ns->mod_revision;
      export_config = ns->value.export_config;
    }
    // Prometheus scrapes a standard target with __scheme__ http or https only and drops any
    // other; a blackbox namespace hands the whole URL to an exporter, which may probe anything.
    if (export_config == ExportConfig::kStandard && pending->scheme != "http" &&
        pending->scheme != "https") {
      return absl::InvalidArgumentError(fmt::format(
          "service with endpoint {} is invalid: namespace {} is exported as standard, where "
          "Prometheus scrapes http and https only; use a blackbox namespace for {} probes",
          service.endpoint, service.namespace_name, pending->scheme));
    }
    const std::shared_ptr<const std::vector<std::string>> candidates =
        placed->CandidatesFor(service.selector);
    if (candidates->empty()) {
      return absl::NotFoundError(
          fmt::format("no server found for selector '{}'", service.selector));
    }
    // Stored for readers that do not derive placement (the Go original's tools); ours
    // recompute it from the view.
    service.servers = placement::Place(service.endpoint, *candidates, placed->settings().replicas,
                                       placed->settings().algorithm);
    service.modified = options_.clock();
    if (service.HasTtl()) {
      service.expires = service.modified + service.ttl;
    }
    DISCOVERY_ASSIGN_OR_RETURN(store::Op op, repo_.PutServiceOp(service));
    store_.CommitAsync({.compares = {{.key = repo_.keys().Namespace(service.namespace_name),
                                      .mod_revision = namespace_revision}},
                        .ops = {std::move(op)}},
                       [this, pending = std::move(pending),
                        attempt](absl::StatusOr<store::TxnResult> result) mutable {
                         OnRegisterCommitted(std::move(pending), attempt, std::move(result));
                       });
    return absl::OkStatus();
  }();
  if (needs_store_read) {
    return pending;
  }
  // Answered here only when nothing was handed to the store (then `pending` was moved).
  if (!outcome.ok()) {
    std::move(pending->done)(std::move(outcome));
  }
  return nullptr;
}

void Registry::OnRegisterCommitted(std::unique_ptr<PendingRegistration> pending, int attempt,
                                   absl::StatusOr<store::TxnResult> result) {
  const Service& service = pending->service;
  if (!result.ok()) {
    std::move(pending->done)(StoreError(
        result.status(), fmt::format("could not register service {} in store", service.endpoint)));
    return;
  }
  if (!result->succeeded) {
    if (attempt == kCasAttempts) {
      std::move(pending->done)(absl::AbortedError(
          fmt::format("could not register service {}: namespace {} kept changing", service.endpoint,
                      service.namespace_name)));
      return;
    }
    TryRegister(std::move(pending), attempt + 1);
    return;
  }
  // The change's record at INFO is the audit line the dispatcher writes once it is answered;
  // this one (built only when written: one per registration) tells when the store took it.
  if (DebugLogEnabled()) {
    LogDebug("register service", {{"endpoint", service.endpoint},
                                  {"namespace", service.namespace_name},
                                  {"servers", fmt::format("{}", fmt::join(service.servers, ","))}});
  }
  if (service.HasTtl() && options_.on_renewals) {
    options_.on_renewals(1);
  }
  WhenViewShows(result->revision, [pending = std::move(pending)]() mutable {
    std::move(pending->done)(std::move(pending->service));
  });
}

absl::Status Registry::UnregisterService(std::string_view id_or_endpoint,
                                         std::string_view namespace_name) {
  const std::string_view ns = NamespaceOrDefault(namespace_name);
  if (absl::Status valid = ValidateNamespaceName(ns); !valid.ok()) {
    return ValidationError(valid);
  }
  std::string id{id_or_endpoint};
  if (id_or_endpoint.find(':') != std::string_view::npos) {
    absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(id_or_endpoint);
    if (!endpoint.ok()) {
      return absl::InvalidArgumentError(fmt::format("could not unregister service {}: {}",
                                                    id_or_endpoint, endpoint.status().message()));
    }
    id = ServiceId(endpoint->String());
  } else if (absl::Status valid = repo::ValidateServiceId(id); !valid.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("could not unregister service {}: {}", id_or_endpoint, valid.message()));
  }
  absl::StatusOr<int64_t> revision = repo_.DeleteService(ns, id);
  if (absl::IsNotFound(revision.status())) {
    return absl::NotFoundError(
        fmt::format("could not unregister service {} in namespace {}: {}/{}: not found",
                    id_or_endpoint, ns, ns, id));
  }
  if (!revision.ok()) {
    return StoreError(revision.status(), fmt::format("could not unregister service {} in "
                                                     "namespace {}",
                                                     id_or_endpoint, ns));
  }
  LogDebug("unregister service", {{"id", std::string{id}}, {"namespace", std::string{ns}}});
  AwaitView(*revision);
  return absl::OkStatus();
}

absl::StatusOr<KeepAliveResult> Registry::KeepAlive(
    const std::vector<std::string>& ids_or_endpoints, std::string_view namespace_name) {
  const std::string ns{NamespaceOrDefault(namespace_name)};
  if (absl::Status valid = ValidateNamespaceName(ns); !valid.ok()) {
    return ValidationError(valid);
  }
  if (ids_or_endpoints.size() > kMaxKeepAliveIds) {
    return absl::InvalidArgumentError(fmt::format("keepalive of {} services: at most {} per call",
                                                  ids_or_endpoints.size(), kMaxKeepAliveIds));
  }
  std::vector<std::string> ids;
  ids.reserve(ids_or_endpoints.size());
  for (const std::string& id_or_endpoint : ids_or_endpoints) {
    if (id_or_endpoint.find(':') != std::string::npos) {
      absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(id_or_endpoint);
      if (!endpoint.ok()) {
        return absl::InvalidArgumentError(fmt::format("could not keep service {} alive: {}",
                                                      id_or_endpoint, endpoint.status().message()));
      }
      ids.push_back(ServiceId(endpoint->String()));
    } else if (absl::Status valid = repo::ValidateServiceId(id_or_endpoint); !valid.ok()) {
      return absl::InvalidArgumentError(
          fmt::format("could not keep service {} alive: {}", id_or_endpoint, valid.message()));
    } else {
      ids.push_back(id_or_endpoint);
    }
  }
  for (int attempt = 1;; ++attempt) {
    DISCOVERY_ASSIGN_OR_RETURN(std::shared_ptr<const readmodel::Placed> placed, Loaded());
    const repo::Snapshot& snapshot = placed->snapshot();
    if (!snapshot.namespaces.contains(ns)) {
      return absl::NotFoundError(
          fmt::format("could not keep services alive: namespace {} not found", ns));
    }
    const absl::Time now = options_.clock();
    // The services with a TTL of this call, one renewal per TTL: the store renews a set of
    // keys again without growing (etcd: the set's lease is kept alive; embedded: in place).
    // Each key is renewed only over the record the view saw: a service unregistered meanwhile
    // must not come back (nor one registered again be overwritten with the old record). A
    // namespace deleted meanwhile deleted its services, so this guards that too.
    struct Renewing {
      store::Renewal renewal;
      std::vector<size_t> answer_index;  // per key: its entry of `renewed`
    };
    std::map<absl::Duration, Renewing> renewals;
    std::vector<Service> renewed;
    std::vector<size_t> renewed_ask;  // per entry of `renewed`: its index in ids_or_endpoints
    std::vector<std::string> not_found;
    std::set<std::string_view> seen;
    int64_t unwritten = 0;  // renewals that needed no write
    for (size_t i = 0; i < ids.size(); ++i) {
      const Service* found = snapshot.FindService(ns, ids[i]);
      const repo::TtlService* ttl = snapshot.FindTtlService(ns, ids[i]);
      // Past its deadline a service is gone, even where the view has not removed it yet or the
      // store still holds its record: expired means gone, and only a registration brings it back.
      // A record renewed in place has a stale deadline: the store tells whether it is gone.
      if (found == nullptr ||
          (found->HasTtl() && (ttl == nullptr || !ttl->renews_in_place) && found->expires <= now)) {
        not_found.push_back(ids_or_endpoints[i]);
        continue;
      }
      Service service = *found;
      if (service.HasTtl() && seen.insert(found->id).second) {
        if (ttl == nullptr) {
          return absl::InternalError(fmt::format(
              "could not keep service {} alive: the view lost its record's revision", found->id));
        }
        service.expires = now + service.ttl;
        // A record that carries its deadline, renewed within the same second of deadline: the
        // store's expiry would not move, so there is nothing to write.
        if (!ttl->renews_in_place &&
            absl::Ceil(service.expires - absl::UnixEpoch(), store::kExpiryGranularity) ==
                absl::Ceil(found->expires - absl::UnixEpoch(), store::kExpiryGranularity)) {
          service.expires = found->expires;
          ++unwritten;
          renewed.push_back(std::move(service));
          renewed_ask.push_back(i);
          continue;
        }
        DISCOVERY_ASSIGN_OR_RETURN(store::Op op, repo_.PutServiceOp(service));
        Renewing& renewing = renewals[service.ttl];
        renewing.renewal.ttl = service.ttl;
        renewing.renewal.expires = service.expires;
        renewing.renewal.keys.push_back({.key = std::move(op.key),
                                         .mod_revision = ttl->mod_revision,
                                         .lease = ttl->lease,
                                         .value = std::move(op.value)});
        renewing.answer_index.push_back(renewed.size());
      }
      renewed.push_back(std::move(service));
      renewed_ask.push_back(i);
    }
    int64_t revision = 0;
    bool changed = false;
    std::vector<bool> gone(renewed.size(), false);
    int64_t renewals_done = unwritten;
    for (auto& [ttl, renewing] : renewals) {
      absl::StatusOr<store::RenewResult> result = store_.Renew(renewing.renewal);
      if (!result.ok()) {
        return StoreError(result.status(), "could not keep services alive in store");
      }
      if (!result->succeeded) {
        changed = true;
        break;
      }
      revision = std::max(revision, result->revision);
      const std::set<std::string> gone_keys(result->gone.begin(), result->gone.end());
      for (size_t k = 0; k < renewing.renewal.keys.size(); ++k) {
        if (gone_keys.contains(renewing.renewal.keys[k].key)) {
          gone[renewing.answer_index[k]] = true;
        } else {
          ++renewals_done;
        }
      }
    }
    if (changed) {
      if (attempt == kCasAttempts) {
        return absl::AbortedError(fmt::format(
            "could not keep services alive: services of namespace {} kept changing", ns));
      }
      // A record changed after the view saw it: wait for the view to catch up.
      absl::StatusOr<int64_t> current = store_.CurrentRevision();
      if (current.ok()) {
        AwaitView(*current);
      }
      continue;
    }
    KeepAliveResult answer;
    for (size_t r = 0; r < renewed.size(); ++r) {
      if (gone[r]) {
        not_found.push_back(ids_or_endpoints[renewed_ask[r]]);
      } else {
        answer.renewed.push_back(std::move(renewed[r]));
      }
    }
    answer.not_found = std::move(not_found);
    if (options_.on_renewals && renewals_done > 0) {
      options_.on_renewals(renewals_done);
    }
    if (revision > 0) {
      AwaitView(revision);
    }
    return answer;
  }
}

Service ServiceRef::Copy() const {
  Service copy = *service;
  copy.servers = *servers;
  if (expires.has_value()) {
    copy.expires = *expires;
  }
  return copy;
}

namespace {
// The servers of a record that cannot be served.
const std::vector<std::string> kNoServers;
}  // namespace

absl::StatusOr<ServiceRefs> Registry::ListServiceRefs(std::string_view namespace_name,
                                                      Listed listed) const {
  if (!namespace_name.empty()) {
    if (absl::Status valid = ValidateNamespaceName(namespace_name); !valid.ok()) {
      return ValidationError(valid);
    }
  }
  DISCOVERY_ASSIGN_OR_RETURN(std::shared_ptr<const readmodel::Placed> placed, Loaded());
  ServiceRefs result{.placed = std::move(placed)};
  std::vector<ServiceRef>& refs = result.refs;
  const repo::Snapshot& snapshot = result.placed->snapshot();
  if (listed != Listed::kInvalid) {
    for (const auto& [ns, map] : snapshot.services) {
      if (!namespace_name.empty() && ns != namespace_name) {
        continue;
      }
      const readmodel::NamespacePlacement* placement = result.placed->In(ns);
      if (placement == nullptr) {
        continue;
      }
      refs.reserve(refs.size() + placement->All().size());
      placement->All().ForEach([&refs](std::string_view, const readmodel::PlacedPtr& entry) {
        refs.push_back({.service = entry->service.get(), .servers = entry->servers.get()});
      });
    }
    SetCurrentDeadlines(result);
  }
  if (listed != Listed::kServed) {
    const size_t first_invalid = refs.size();
    for (const auto& [key, record] : snapshot.invalid) {
      if (record.service != nullptr &&
          (namespace_name.empty() || record.service->namespace_name == namespace_name)) {
        refs.push_back({.service = record.service.get(),
                        .servers = &kNoServers,
                        .invalid_reason = &record.reason});
      }
    }
    // Keys sort by namespace, then id, except where one namespace name is a prefix of another.
    std::sort(refs.begin() + static_cast<std::ptrdiff_t>(first_invalid), refs.end(),
              [](const ServiceRef& a, const ServiceRef& b) {
                return std::tie(a.service->namespace_name, a.service->id) <
                       std::tie(b.service->namespace_name, b.service->id);
              });
  }
  return result;
}

absl::StatusOr<std::vector<Service>> Registry::ListServices(std::string_view namespace_name) const {
  DISCOVERY_ASSIGN_OR_RETURN(const ServiceRefs listed,
                             ListServiceRefs(namespace_name, Listed::kServed));
  std::vector<Service> services;
  services.reserve(listed.refs.size());
  for (const ServiceRef& ref : listed.refs) {
    services.push_back(ref.Copy());
  }
  return services;
}

void Registry::SetCurrentDeadlines(ServiceRefs& listed) const {
  // A record renewed in place keeps the deadline of its last write: the store knows the one in
  // force (etcd: its renewal set's lease, one question per lease; embedded: the expiry column).
  const repo::Snapshot& snapshot = listed.placed->snapshot();
  std::vector<ServiceRef>& refs = listed.refs;
  std::vector<size_t> stale;
  std::vector<store::LeasedKey> keys;
  for (size_t i = 0; i < refs.size(); ++i) {
    const Service& service = *refs[i].service;
    if (!service.HasTtl()) {
      continue;
    }
    const repo::TtlService* ttl = snapshot.FindTtlService(service.namespace_name, service.id);
    if (ttl != nullptr && ttl->renews_in_place) {
      stale.push_back(i);
      keys.push_back(
          {.key = repo_.keys().Service(service.namespace_name, service.id), .lease = ttl->lease});
    }
  }
  if (keys.empty()) {
    return;
  }
  absl::StatusOr<std::vector<std::optional<absl::Time>>> deadlines = store_.Deadlines(keys);
  if (!deadlines.ok() || deadlines->size() != keys.size()) {
    // The list is still right about which services there are; their expiry is the one their
    // record carries (that of the set's first renewal).
    LogWarn("service list: could not read the current expiry of renewed services",
            {{"error", std::string{deadlines.status().message()}}});
    return;
  }
  const absl::Time now = options_.clock();
  std::vector<bool> drop(refs.size(), false);
  for (size_t k = 0; k < stale.size(); ++k) {
    if ((*deadlines)[k].has_value() && *(*deadlines)[k] > now) {
      refs[stale[k]].expires = *(*deadlines)[k];
    } else {
      drop[stale[k]] = true;  // expired: the store is about to delete it
    }
  }
  size_t kept = 0;
  for (size_t i = 0; i < refs.size(); ++i) {
    if (!drop[i]) {
      refs[kept++] = refs[i];
    }
  }
  refs.resize(kept);
}

absl::StatusOr<std::vector<InvalidService>> Registry::ListInvalidServices(
    std::string_view namespace_name) const {
  DISCOVERY_ASSIGN_OR_RETURN(const ServiceRefs listed,
                             ListServiceRefs(namespace_name, Listed::kInvalid));
  std::vector<InvalidService> invalid;
  invalid.reserve(listed.refs.size());
  for (const ServiceRef& ref : listed.refs) {
    invalid.push_back({.service = ref.Copy(), .reason = *ref.invalid_reason});
  }
  return invalid;
}

absl::StatusOr<Registry::Selection> Registry::Select(std::string_view server,
                                                     std::string_view namespace_name,
                                                     std::string_view config) const {
  std::optional<ExportConfig> requested;
  if (!config.empty()) {
    if (config != "standard" && config != "blackbox") {
      return absl::InvalidArgumentError(fmt::format("invalid exporter config: '{}'", config));
    }
    requested = config == "blackbox" ? ExportConfig::kBlackbox : ExportConfig::kStandard;
  }
  const absl::Status valid_server = ValidateServerName(server);
  const bool host_port = valid_server.ok() || IsHostPortName(server);
  if (!host_port && !ValidateExistingServerName(server).ok()) {
    return ValidationError(valid_server);
  }
  if (absl::Status valid = ValidateNamespaceName(namespace_name); !valid.ok()) {
    return ValidationError(valid);
  }
  DISCOVERY_ASSIGN_OR_RETURN(std::shared_ptr<const readmodel::Placed> placed, Loaded());
  const repo::Snapshot& snapshot = placed->snapshot();
  // Another name RegisterServer refuses is answered only for a server the Go original stored
  // under it; anything else, such as the original's regular expressions (".*", docs/decisions.md
  // D15), stays an error rather than an empty answer.
  if (!host_port && !snapshot.servers.contains(server)) {
    return ValidationError(valid_server);
  }
  auto ns = snapshot.namespaces.find(namespace_name);
  Selection selection;
  // An unknown server or namespace has no targets, like an empty one: an error would make
  // Prometheus keep the last targets of an unregistered server forever.
  if (ns == snapshot.namespaces.end() || !snapshot.servers.contains(server)) {
    selection.placed = std::move(placed);
    return selection;
  }
  selection.config = requested.value_or(ns->second.export_config);
  selection.placement = placed->In(namespace_name);
  selection.placed = std::move(placed);
  return selection;
}

absl::StatusOr<std::vector<targetgroup::TargetGroup>> Registry::TargetGroups(
    std::string_view server, std::string_view namespace_name, std::string_view config) const {
  DISCOVERY_ASSIGN_OR_RETURN(Selection selection, Select(server, namespace_name, config));
  if (selection.placement == nullptr || selection.config == ExportConfig::kDisabled) {
    return std::vector<targetgroup::TargetGroup>{};
  }
  std::vector<Service> services;
  selection.placement->On(server).ForEach(
      [&services](std::string_view, const readmodel::PlacedPtr& entry) {
        services.push_back(*entry->service);
      });
  return targetgroup::FromServices(services, selection.config);
}

namespace {

const std::shared_ptr<const readmodel::HttpSdBody>& EmptyHttpSdBody() {
  static const auto* const empty_body = new std::shared_ptr<const readmodel::HttpSdBody>(
      std::make_shared<const readmodel::HttpSdBody>("[]", "\"empty\""));
  return *empty_body;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> Registry::HttpSd(
    std::string_view server, std::string_view namespace_name, std::string_view config) const {
  DISCOVERY_ASSIGN_OR_RETURN(Selection selection, Select(server, namespace_name, config));
  if (selection.placement == nullptr) {
    return EmptyHttpSdBody();
  }
  return selection.placed->HttpSd(server, namespace_name, selection.config);
}

absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> Registry::CachedHttpSd(
    std::string_view server, std::string_view namespace_name, std::string_view config) const {
  DISCOVERY_ASSIGN_OR_RETURN(Selection selection, Select(server, namespace_name, config));
  if (selection.placement == nullptr) {
    return EmptyHttpSdBody();
  }
  return selection.placed->CachedHttpSd(server, namespace_name, selection.config);
}

}  // namespace discovery::registry
