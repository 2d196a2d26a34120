#include <algorithm>
#include <cerrno>
#include <csignal>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/time/clock.h"
#include "cli/api_client.h"
#include "cli/completion.h"
#include "cli/discovery_commands.h"
#include "cli/discovery_flags.h"
#include "fmt/format.h"

#include "common/go_duration.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "config/command_line.h"
#include "model/model.h"

namespace discovery::cli::discovery_internal {

namespace {

ServiceRegistration RegistrationOf(const Flags& flags, const std::string& endpoint) {
  return {.name = flags.name,
          .namespace_name = flags.namespace_name,
          .endpoint = endpoint,
          .labels = flags.labels,
          .selector = flags.selector,
          .description = flags.description,
          .ttl = flags.ttl};
}

// Registers `endpoint` (retrying transient failures until `deadline`); the service or the
// failure, which is logged.
absl::StatusOr<Service> RegisterOne(const Flags& flags, const ApiClient& client,
                                    const std::string& endpoint, absl::Time deadline) {
  const ServiceRegistration registration = RegistrationOf(flags, endpoint);
  absl::StatusOr<Service> service;
  DISCOVERY_RETURN_IF_ERROR(WithRetries(
      [&] {
        service = client.RegisterService(registration);
        return service.status();
      },
      {{"service", flags.name}, {"endpoint", endpoint}}, deadline));
  LogInfo("service registered", {{"id", service->id}, {"endpoint", service->endpoint}});
  return service;
}

// The signals that end `service register --keepalive`: blocked in every thread (set before any
// thread is started) and taken with sigtimedwait, so the loop unregisters before it exits.
sigset_t StopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  return signals;
}

// Waits until `until` or a stop signal; the signal, or 0 at `until`.
int WaitForStopSignal(const sigset_t& signals, absl::Time until) {
  while (true) {
    const absl::Duration left = until - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return 0;
    }
    const timespec timeout = absl::ToTimespec(left);
    const int signal = sigtimedwait(&signals, nullptr, &timeout);
    if (signal > 0) {
      return signal;
    }
    if (errno != EAGAIN && errno != EINTR) {
      return 0;
    }
  }
}

// `service register --keepalive`: renews the registered services at a third of their TTL
// (KeepAlive, all at once), registers again those the server no longer has (they expired while
// it was unreachable, or its store was replaced), and unregisters them on SIGTERM, SIGINT or
// SIGHUP. A renewal that fails is retried every second: a server restart or a lost replica
// costs at most the time it is away, and the TTL leaves two thirds of it to come back.
int KeepAlive(const Flags& flags, const ApiClient& client, const sigset_t& signals,
              std::vector<Service> services, const Failure& fail) {
  absl::Duration ttl = absl::InfiniteDuration();
  for (const Service& service : services) {
    if (!service.HasTtl()) {
      return fail(fmt::format(
          "the server registered {} without a TTL: it does not support TTLs (an older discoveryd "
          "or the Go original); nothing to keep alive",
          service.endpoint));
    }
    ttl = std::min(ttl, service.ttl);
  }
  const absl::Duration interval = ttl / 3;
  LogInfo("keeping services alive", {{"services", std::to_string(services.size())},
                                     {"ttl", FormatGoDuration(ttl)},
                                     {"interval", FormatGoDuration(interval)}});
  absl::Time next = absl::Now() + interval;
  bool failing = false;
  while (true) {
    if (const int signal = WaitForStopSignal(signals, next); signal != 0) {
      LogInfo("stopping: unregistering the services", {{"signal", sigdescr_np(signal)}});
      int failed = 0;
      const absl::Time deadline = absl::Now() + absl::Seconds(30);
      for (const Service& service : services) {
        absl::Status status =
            WithRetries([&] { return client.UnregisterService(flags.namespace_name, service.id); },
                        {{"endpoint", service.endpoint}}, deadline);
        if (status.ok() || absl::IsNotFound(status)) {
          LogInfo("service unregistered", {{"endpoint", service.endpoint}});
        } else {
          ++failed;
          fail(fmt::format("cannot unregister {}: {}", service.endpoint, status.message()));
        }
      }
      return failed == 0 ? 0 : 1;
    }
    std::vector<std::string> ids;
    ids.reserve(services.size());
    for (const Service& service : services) {
      ids.push_back(service.id);
    }
    absl::StatusOr<KeepAliveAnswer> answer = client.KeepAlive(flags.namespace_name, ids);
    if (!answer.ok()) {
      if (!failing) {
        LogWarn("keepalive failed, retrying every second",
                {{"error", std::string{answer.status().message()}}});
      }
      failing = true;
      next = absl::Now() + std::min(absl::Seconds(1), interval);
      continue;
    }
    if (failing) {
      LogInfo("keepalive succeeded again");
      failing = false;
    }
    for (const std::string& gone : answer->not_found) {
      auto it = std::find_if(services.begin(), services.end(),
                             [&gone](const Service& service) { return service.id == gone; });
      if (it == services.end()) {
        continue;
      }
      LogWarn("service is gone from the server, registering it again",
              {{"endpoint", it->endpoint}});
      absl::StatusOr<Service> again =
          RegisterOne(flags, client, it->endpoint, absl::Now() + interval);
      if (again.ok()) {
        *it = *std::move(again);
      } else {
        // Tried again with the next renewal.
        LogWarn("cannot register the service again",
                {{"endpoint", it->endpoint}, {"error", std::string{again.status().message()}}});
      }
    }
    next = absl::Now() + interval;
  }
}

}  // namespace

int ServiceRegister(const Flags& flags, const Failure& fail) {
  if (flags.name.empty()) {
    return fail("name cannot be empty");
  }
  if (flags.ttl < absl::ZeroDuration()) {
    return fail.Usage("--ttl must not be negative");
  }
  if (flags.keepalive && flags.ttl == absl::ZeroDuration()) {
    return fail.Usage("--keepalive needs --ttl (e.g. --ttl 1m)");
  }
  const sigset_t signals = StopSignals();
  if (flags.keepalive) {
    // Before Connect starts gRPC's threads, so that they inherit the mask.
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  }
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  int failed = 0;
  std::vector<Service> registered;
  for (const std::string& endpoint : flags.endpoints) {
    absl::StatusOr<Service> service =
        RegisterOne(flags, *client, endpoint, flags.connection.deadline);
    if (!service.ok()) {
      ++failed;
      fail(fmt::format("cannot register {} in namespace {}: {}", endpoint, flags.namespace_name,
                       service.status().message()));
      continue;
    }
    registered.push_back(*std::move(service));
  }
  if (failed != 0 || !flags.keepalive) {
    return failed == 0 ? 0 : 1;
  }
  return KeepAlive(flags, *client, signals, std::move(registered), fail);
}

void AddServiceRegisterCommand(CLI::App* service, Flags& flags) {
  CLI::App* service_register = service->add_subcommand("register", "Register a service.");
  service_register->footer(ExamplesFooter({
      "discovery service register -e http://example.com/metrics example "
      "--labels=label1=value1,label2=value2 --selector=environment=test",
      "discovery service register -e http://blackbox.example.com -n default-blackbox blackbox "
      "-s environment=test",
      "DISCOVERY_NAME=node discovery service register -e http://$(hostname -f):9100/metrics",
  }));
  service_register->add_option("name", flags.name, "Service name (the Prometheus job)")
      ->envname("DISCOVERY_NAME")
      ->required();
  config::AddListOption(*service_register, "-e,--endpoints", &flags.endpoints,
                        "Endpoint URLs, one service each")
      ->required();
  config::AddMapOption(*service_register, "-l,--labels", &flags.labels, "Target labels (k=v,...)");
  service_register->add_option("-n,--namespace", flags.namespace_name, "Namespace")
      ->default_str("default");
  service_register->add_option("-s,--selector", flags.selector,
                               "Label selector choosing the servers that scrape it");
  service_register->add_option("--description", flags.description, "Free text");
  config::AddDurationOption(*service_register, "--ttl", &flags.ttl,
                            "Expire the services unless renewed within this time (e.g. 1m; the "
                            "server bounds it); without it they stay until unregistered");
  service_register->add_flag(
      "--keepalive", flags.keepalive,
      "Stay in the foreground renewing the services at a third of --ttl, registering them again "
      "when the server lost them, and unregister them on SIGTERM/SIGINT");
}

}  // namespace discovery::cli::discovery_internal
