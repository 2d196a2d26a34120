// A fleet registering at once with the real `discoveryd` (DISCOVERYD_BINARY) on its embedded
// store (docs/decisions.md D41): every registration waits its turn and succeeds, none is refused.
//   * one gRPC client with 10,000 RegisterService calls in flight at once;
//   * the real `discovery` CLI (DISCOVERY_BINARY) started as many processes at once, as the
//     original's systemd recipe (packaging/examples/node_exporter.service) runs it on every host of
//     a fleet that boots together.
// Counts only; how long a fleet takes to register is for bench/.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

#include "postfinance/discovery/v1/namespace_api.grpc.pb.h"
#include "postfinance/discovery/v1/server_api.grpc.pb.h"
#include "postfinance/discovery/v1/service_api.grpc.pb.h"
#include "testing/discoveryd_process.h"
#include "testing/process.h"
#include "testing/status_matchers.h"

#ifndef DISCOVERY_BINARY
#error "DISCOVERY_BINARY must name the discovery executable"
#endif
#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif

namespace discovery::testing {
namespace {

namespace pb = ::postfinance::discovery::v1;
using ::testing::IsEmpty;

// Far more than the server has workers (64 by default) and than the 64 threads of the
// synchronous server that refused the rest.
constexpr int kCallsInFlight = 10000;
// Processes of the CLI started at once: the fleet's burst of 500 hosts in a build without
// sanitizers. Under a sanitizer each is a whole instrumented gRPC client, so the count is what a
// test machine holds in memory, still well above the 64 calls of old.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kCliProcesses = 100;
#else
constexpr int kCliProcesses = 500;
#endif
// A safety net against a hung server, not a performance bound: only its expiry fails a call.
constexpr absl::Duration kPatience = absl::Minutes(10);

std::string Endpoint(int host) {
  return fmt::format("http://host{}.fleet.example.com:9100/metrics", host);
}

class FleetRegistrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(discoveryd_, DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY}));
    ASSERT_OK_AND_ASSIGN(admin_token_, discoveryd_->AdminToken());
    channel_ = grpc::CreateChannel(discoveryd_->grpc_address(), grpc::InsecureChannelCredentials());
    services_ = pb::ServiceAPI::NewStub(channel_);
    // The Prometheus server every service is placed on.
    grpc::ClientContext context;
    Authorize(context);
    pb::RegisterServerRequest request;
    request.set_name("prometheus1.example.com");
    pb::RegisterServerResponse response;
    const grpc::Status status =
        pb::ServerAPI::NewStub(channel_)->RegisterServer(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  void Authorize(grpc::ClientContext& context) const {
    context.AddMetadata("authorization", "Bearer " + admin_token_);
    context.set_deadline(absl::ToChronoTime(absl::Now() + kPatience));
  }

  // The endpoints of the services listed in `namespace_name`, each as often as it is listed.
  std::multiset<std::string> ListedEndpoints(const std::string& namespace_name) {
    grpc::ClientContext context;
    Authorize(context);
    pb::ListServiceRequest request;
    request.set_namespace_(namespace_name);
    pb::ListServiceResponse response;
    const grpc::Status status = services_->ListService(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::multiset<std::string> endpoints;
    for (const pb::Service& service : response.services()) {
      endpoints.insert(service.endpoint());
    }
    return endpoints;
  }

  std::unique_ptr<DiscoverydProcess> discoveryd_;
  std::string admin_token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::ServiceAPI::Stub> services_;
};

TEST_F(FleetRegistrationTest, TenThousandCallsInFlightFromOneClientAllSucceed) {
  struct Call {
    grpc::ClientContext context;
    pb::RegisterServiceRequest request;
    pb::RegisterServiceResponse response;
  };
  absl::Mutex mu;
  int completed = 0;
  std::map<grpc::StatusCode, int> codes;
  std::vector<std::string> failures;  // the first few, to explain a failure

  std::vector<std::unique_ptr<Call>> calls;
  calls.reserve(kCallsInFlight);
  // Every call is started before the first answer is awaited: all of them are in flight at once.
  for (int host = 0; host < kCallsInFlight; ++host) {
    auto call = std::make_unique<Call>();
    Authorize(call->context);
    call->request.set_name("node");
    call->request.set_endpoint(Endpoint(host));
    services_->async()->RegisterService(
        &call->context, &call->request, &call->response, [&, host](const grpc::Status& status) {
          absl::MutexLock lock(&mu);
          ++codes[status.error_code()];
          if (!status.ok() && failures.size() < 5) {
            failures.push_back(fmt::format("{}: code {}: {}", Endpoint(host),
                                           static_cast<int>(status.error_code()),
                                           status.error_message()));
          }
          ++completed;
        });
    calls.push_back(std::move(call));
  }
  {
    absl::MutexLock lock(&mu);
    const auto all_completed = [&completed] { return completed == kCallsInFlight; };
    mu.Await(absl::Condition(&all_completed));
    EXPECT_EQ(codes[grpc::StatusCode::OK], kCallsInFlight)
        << ::testing::PrintToString(failures) << "\n"
        << discoveryd_->LogTail();
    EXPECT_THAT(failures, IsEmpty());
  }
  int answered = 0;  // with the service of the call's own endpoint
  for (const std::unique_ptr<Call>& call : calls) {
    answered += call->response.service().endpoint() == call->request.endpoint() ? 1 : 0;
  }
  EXPECT_EQ(answered, kCallsInFlight);

  const std::multiset<std::string> listed = ListedEndpoints("default");
  EXPECT_EQ(listed.size(), kCallsInFlight);
  int listed_once = 0;
  for (int host = 0; host < kCallsInFlight; ++host) {
    listed_once += listed.count(Endpoint(host)) == 1 ? 1 : 0;
  }
  EXPECT_EQ(listed_once, kCallsInFlight);
}

// The original's systemd recipe on every host of a fleet at once: `discovery service register` with
// the namespace and the host's endpoint from the unit's environment file and a machine token for
// the namespace. Every process exits 0 and every host's service is listed.
TEST_F(FleetRegistrationTest, ManyCliProcessesRegisteringAtOnceAllSucceed) {
  {
    grpc::ClientContext context;
    Authorize(context);
    pb::RegisterNamespaceRequest request;
    request.set_name("fleet");
    pb::RegisterNamespaceResponse response;
    const grpc::Status status =
        pb::NamespaceAPI::NewStub(channel_)->RegisterNamespace(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_OK_AND_ASSIGN(const std::string token, discoveryd_->MachineToken("node", {"fleet"}));
  ASSERT_OK_AND_ASSIGN(const std::string home, MakeTempDir("discovery-fleet-home"));
  ASSERT_THAT(
      RunCommand({.argv = {"/bin/mkdir", "-p", home + "/.config/discovery"}}, absl::Seconds(5)),
      IsOk());
  std::ofstream(home + "/.config/discovery/config.yaml")
      << fmt::format("address: {}\ninsecure: true\n", discoveryd_->grpc_address());
  std::ofstream(home + "/.config/discovery/.token") << "machine_token: " << token << "\n";

  std::vector<std::string> base_env = {"HOME=" + home, "TMPDIR=" + home};
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (entry.starts_with("DISCOVERY_")) {
      base_env.emplace_back(entry.substr(0, entry.find('=')));  // the developer's are removed
    }
  }
  // Every process first waits for one line from a FIFO; once all are started, one write of as
  // many lines releases them together, so their registrations arrive as a fleet's burst.
  const std::string barrier = home + "/barrier";
  ASSERT_EQ(mkfifo(barrier.c_str(), 0600), 0);
  // Read-write, so the processes' opens never block and the FIFO outlives any one of them.
  const int barrier_fd = open(barrier.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(barrier_fd, 0);
  std::vector<std::unique_ptr<ChildProcess>> hosts;
  for (int host = 0; host < kCliProcesses; ++host) {
    std::vector<std::string> env = base_env;
    env.emplace_back("DISCOVERY_NAMESPACE=fleet");
    env.emplace_back("DISCOVERY_ENDPOINTS=" + Endpoint(host));
    ASSERT_OK_AND_ASSIGN(
        std::unique_ptr<ChildProcess> process,
        ChildProcess::Start(
            {.argv = {"/bin/sh", "-c", R"(read -r _ < "$1" && exec "$2" service register node)",
                      "sh", barrier, DISCOVERY_BINARY},
             .env = std::move(env),
             .working_dir = home},
            fmt::format("{}/host{}.log", home, host)));
    hosts.push_back(std::move(process));
  }
  const std::string lines(kCliProcesses, '\n');
  ASSERT_EQ(write(barrier_fd, lines.data(), lines.size()), static_cast<ssize_t>(lines.size()));
  int succeeded = 0;
  int retried = 0;  // reported, not asserted: a slow machine may time a call out and retry it
  for (int host = 0; host < kCliProcesses; ++host) {
    absl::StatusOr<ExitStatus> exit = hosts[host]->WaitExit(kPatience);
    ASSERT_THAT(exit, IsOk());
    const std::string log = hosts[host]->LogTail(1000);
    EXPECT_TRUE(exit->success()) << "host " << host << ": " << exit->ToString() << "\n" << log;
    succeeded += exit->success() ? 1 : 0;
    for (size_t at = log.find("retrying"); at != std::string::npos;
         at = log.find("retrying", at + 1)) {
      ++retried;
    }
  }
  close(barrier_fd);
  EXPECT_EQ(succeeded, kCliProcesses);
  RecordProperty("cli_retries", retried);

  const std::multiset<std::string> listed = ListedEndpoints("fleet");
  EXPECT_EQ(listed.size(), kCliProcesses);
  int listed_once = 0;
  for (int host = 0; host < kCliProcesses; ++host) {
    listed_once += listed.count(Endpoint(host)) == 1 ? 1 : 0;
  }
  EXPECT_EQ(listed_once, kCliProcesses);
  RunCommand({.argv = {"/bin/rm", "-rf", home}}, absl::Seconds(30)).IgnoreError();
}

}  // namespace
}  // namespace discovery::testing
