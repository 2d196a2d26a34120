// Fault tests of the scale-out deployment (tests/testing/discovery_cluster.h): a 3-member etcd
// cluster, two discoveryd replicas and an exporter, all real processes on loopback. Each test
// breaks one part while registrations stream in and then checks that nothing acknowledged was
// lost and that every component catches up. A last test crashes discoveryd on its embedded
// store in the middle of writes.
//
// No timing assertions: deadlines below are generous bounds on "eventually"; observed latencies
// are printed. Propagation latency is measured by bench/cluster_bench.cc.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "testing/discovery_cluster.h"
#include "testing/discoveryd_process.h"
#include "testing/eventually.h"
#include "testing/http_client.h"
#include "testing/process.h"
#include "testing/status_matchers.h"

#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif

namespace discovery::testing {
namespace {

using Json = ::nlohmann::json;

constexpr const char* kServer = "prometheus1.example.com";

std::set<std::string> AsSet(const std::vector<std::string>& targets) {
  return {targets.begin(), targets.end()};
}

// The targets of `wanted` missing from `have`.
std::vector<std::string> Missing(const std::set<std::string>& wanted,
                                 const std::set<std::string>& have) {
  std::vector<std::string> missing;
  std::set_difference(wanted.begin(), wanted.end(), have.begin(), have.end(),
                      std::back_inserter(missing));
  return missing;
}

std::string Endpoint(const std::string& target) { return "http://" + target + "/metrics"; }

// Registers distinct services ("<prefix>.<i / 250>.<i % 250 + 1>:9100") one after another
// through `post` on its own thread until destroyed, recording what was acknowledged and every
// answer that was not.
class RegistrationStream {
 public:
  // `post` registers one endpoint and returns the HTTP status (0 for a transport error) and body.
  using Post = std::function<std::pair<int, std::string>(const std::string& endpoint)>;

  RegistrationStream(std::string prefix, Post post)
      : prefix_(std::move(prefix)),
        post_(std::move(post)),
        thread_([this](const std::stop_token& stop) { Run(stop); }) {}
  ~RegistrationStream() { Stop(); }
  RegistrationStream(const RegistrationStream&) = delete;
  RegistrationStream& operator=(const RegistrationStream&) = delete;
  RegistrationStream(RegistrationStream&&) = delete;
  RegistrationStream& operator=(RegistrationStream&&) = delete;

  void Stop() {
    thread_.request_stop();
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  // Waits until `count` more registrations were acknowledged; false after `timeout`.
  bool WaitForMoreAcks(int count, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    const size_t target = acked_.size() + static_cast<size_t>(count);
    auto reached = [this, target]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return acked_.size() >= target; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
  }
  std::set<std::string> acked() const {
    absl::MutexLock lock(&mu_);
    return {acked_.begin(), acked_.end()};
  }
  // Every answer other than 200, "<status> <body>" (status 0: no answer).
  std::vector<std::string> failures() const {
    absl::MutexLock lock(&mu_);
    return failures_;
  }
  // Failures that are not 503 (Unavailable) or 504 (DeadlineExceeded), the errors a client
  // retries.
  std::vector<std::string> NonRetryableFailures() const {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const std::string& failure : failures_) {
      if (!failure.starts_with("503 ") && !failure.starts_with("504 ")) {
        out.push_back(failure);
      }
    }
    return out;
  }

 private:
  void Run(const std::stop_token& stop) {
    for (int i = 0; !stop.stop_requested(); ++i) {
      const std::string target = fmt::format("{}.{}.{}:9100", prefix_, i / 250, i % 250 + 1);
      const auto [status, body] = post_(Endpoint(target));
      absl::MutexLock lock(&mu_);
      if (status == 200) {
        acked_.push_back(target);
      } else {
        failures_.push_back(fmt::format("{} {}", status, body));
      }
    }
  }

  const std::string prefix_;
  const Post post_;
  mutable absl::Mutex mu_;
  std::vector<std::string> acked_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> failures_ ABSL_GUARDED_BY(mu_);
  std::jthread thread_;  // last: starts after the members above exist
};

class ClusterFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(cluster_, DiscoveryCluster::Start({.discoveryd_binary = DISCOVERYD_BINARY,
                                                            .exporter_server = kServer}));
  }

  // A registration stream through replica `index`.
  std::unique_ptr<RegistrationStream> StreamThrough(int index, std::string prefix) {
    const DiscoveryCluster* cluster = cluster_.get();
    return std::make_unique<RegistrationStream>(
        std::move(prefix), [cluster, index](const std::string& endpoint) {
          absl::StatusOr<HttpResult> result =
              cluster->Rest(index, "POST", "/v1/services",
                            Json{{"name", "stream"}, {"endpoint", endpoint}}, absl::Seconds(20));
          if (!result.ok()) {
            return std::pair<int, std::string>(0, std::string{result.status().message()});
          }
          return std::pair<int, std::string>(result->status, result->body);
        });
  }

  std::set<std::string> HttpSd(int replica) {
    absl::StatusOr<std::vector<std::string>> targets =
        cluster_->HttpSdTargets(replica, kServer, "default");
    return targets.ok() ? AsSet(*targets) : std::set<std::string>{};
  }

  // Waits until replica `replica`'s http_sd answer holds every target of `wanted`.
  void ExpectHttpSdHolds(int replica, const std::set<std::string>& wanted) {
    const bool held =
        Eventually([&] { return Missing(wanted, HttpSd(replica)).empty(); }, absl::Seconds(30));
    EXPECT_TRUE(held) << "replica " << replica << " misses "
                      << absl::StrJoin(Missing(wanted, HttpSd(replica)), " ") << "\n"
                      << cluster_->LogTails();
  }
  void ExpectExporterHolds(const std::set<std::string>& wanted) {
    auto exported = [&] { return AsSet(cluster_->ExporterTargets("default")); };
    const bool held =
        Eventually([&] { return Missing(wanted, exported()).empty(); }, absl::Seconds(30));
    EXPECT_TRUE(held) << "the exporter's files miss "
                      << absl::StrJoin(Missing(wanted, exported()), " ") << "\n"
                      << cluster_->LogTails();
  }
  void ExpectEverywhere(const std::set<std::string>& wanted) {
    for (int i = 0; i < cluster_->replica_count(); ++i) {
      ExpectHttpSdHolds(i, wanted);
    }
    ExpectExporterHolds(wanted);
  }

  int Readyz(int replica) {
    absl::StatusOr<HttpResult> result =
        HttpGet(cluster_->replica(replica).http_url() + "/readyz", absl::Seconds(2));
    return result.ok() ? result->status : 0;
  }

  // The value of discovery_store_errors_total{op="<op>"} on /metrics; 0 when absent.
  double StoreErrors(int replica, std::string_view op) {
    absl::StatusOr<HttpResult> result =
        HttpGet(cluster_->replica(replica).http_url() + "/metrics", absl::Seconds(5));
    if (!result.ok()) {
      return 0;
    }
    const std::string series = fmt::format("discovery_store_errors_total{{op=\"{}\"}} ", op);
    for (absl::string_view line : absl::StrSplit(result->body, '\n')) {
      double value = 0;
      if (absl::ConsumePrefix(&line, series) && absl::SimpleAtod(line, &value)) {
        return value;
      }
    }
    return 0;
  }

  std::unique_ptr<DiscoveryCluster> cluster_;
};

// A registration acknowledged by one replica shows up in the other's http_sd answer and in the
// exporter's files.
TEST_F(ClusterFaultTest, ARegistrationOnOneReplicaReachesTheOtherAndTheExporter) {
  for (int from = 0; from < 2; ++from) {
    const std::string target = fmt::format("10.9.0.{}:9100", from + 1);
    ASSERT_OK_AND_ASSIGN(HttpResult result,
                         cluster_->Rest(from, "POST", "/v1/services",
                                        Json{{"name", "node"}, {"endpoint", Endpoint(target)}}));
    ASSERT_EQ(result.status, 200) << result.body;
    const absl::Time acked = absl::Now();
    const int other = 1 - from;
    ASSERT_TRUE(Eventually([&] { return HttpSd(other).contains(target); }, absl::Seconds(10)))
        << cluster_->LogTails();
    const absl::Duration to_replica = absl::Now() - acked;
    ASSERT_TRUE(
        Eventually([&] { return AsSet(cluster_->ExporterTargets("default")).contains(target); },
                   absl::Seconds(10)))
        << cluster_->LogTails();
    std::cerr << "registered on replica " << from << ": on replica " << other << " after "
              << absl::FormatDuration(to_replica) << ", in the exporter's files after "
              << absl::FormatDuration(absl::Now() - acked) << "\n";
  }
}

// The etcd leader dies in the middle of registrations through both replicas: clients see only
// retryable errors while the cluster elects a new leader, and every acknowledged registration is
// present afterwards on both replicas and in the exporter's files.
TEST_F(ClusterFaultTest, KillingTheEtcdLeaderLosesNoAcknowledgedRegistration) {
  auto stream0 = StreamThrough(0, "10.1");
  auto stream1 = StreamThrough(1, "10.2");
  ASSERT_TRUE(stream0->WaitForMoreAcks(20, absl::Seconds(30))) << cluster_->LogTails();
  ASSERT_TRUE(stream1->WaitForMoreAcks(20, absl::Seconds(30))) << cluster_->LogTails();

  ASSERT_OK_AND_ASSIGN(const int leader, cluster_->etcd().WaitForLeader(absl::Seconds(10)));
  const absl::Time killed = absl::Now();
  ASSERT_THAT(cluster_->etcd().Kill(leader), IsOk());
  ASSERT_OK_AND_ASSIGN(const int new_leader, cluster_->etcd().WaitForLeader(absl::Seconds(30)));
  std::cerr << "killed etcd leader " << leader << "; member " << new_leader << " leads after "
            << absl::FormatDuration(absl::Now() - killed) << "\n";
  // Both streams go on through the new leader.
  EXPECT_TRUE(stream0->WaitForMoreAcks(20, absl::Seconds(30))) << cluster_->LogTails();
  EXPECT_TRUE(stream1->WaitForMoreAcks(20, absl::Seconds(30))) << cluster_->LogTails();
  stream0->Stop();
  stream1->Stop();

  std::set<std::string> acked = stream0->acked();
  acked.merge(stream1->acked());
  const std::vector<std::string> failures0 = stream0->failures();
  const std::vector<std::string> failures1 = stream1->failures();
  std::cerr << acked.size() << " registrations acknowledged, "
            << failures0.size() + failures1.size() << " refused while etcd elected\n";
  EXPECT_THAT(stream0->NonRetryableFailures(), ::testing::IsEmpty());
  EXPECT_THAT(stream1->NonRetryableFailures(), ::testing::IsEmpty());
  ExpectEverywhere(acked);

  // The killed member rejoins and the cluster serves through it again.
  ASSERT_THAT(cluster_->etcd().Restart(leader), IsOk());
  ASSERT_THAT(cluster_->etcd().Etcdctl({"endpoint", "health", "--cluster"}), IsOk());
  EXPECT_TRUE(cluster_->exporter()->IsRunning()) << cluster_->exporter()->LogTail();
}

// A replica crashes (SIGKILL) and comes back: the other replica serves on, and the restarted one
// catches up with what was registered while it was down.
TEST_F(ClusterFaultTest, AReplicaKilledAndRestartedCatchesUp) {
  auto stream = StreamThrough(0, "10.3");
  ASSERT_TRUE(stream->WaitForMoreAcks(10, absl::Seconds(30))) << cluster_->LogTails();
  ASSERT_THAT(cluster_->replica(1).Kill(), IsOk());
  ASSERT_TRUE(stream->WaitForMoreAcks(20, absl::Seconds(30))) << cluster_->LogTails();

  const absl::Time restarting = absl::Now();
  ASSERT_THAT(cluster_->replica(1).Restart(), IsOk());  // waits for /readyz
  std::cerr << "replica 1 ready again after " << absl::FormatDuration(absl::Now() - restarting)
            << "\n";
  ASSERT_TRUE(stream->WaitForMoreAcks(10, absl::Seconds(30))) << cluster_->LogTails();
  stream->Stop();
  EXPECT_THAT(stream->failures(), ::testing::IsEmpty());
  ExpectEverywhere(stream->acked());

  // The restarted replica takes writes again, and they reach the other one.
  ASSERT_OK_AND_ASSIGN(
      HttpResult result,
      cluster_->Rest(1, "POST", "/v1/services",
                     Json{{"name", "node"}, {"endpoint", Endpoint("10.3.9.9:9100")}}));
  ASSERT_EQ(result.status, 200) << result.body;
  ExpectHttpSdHolds(0, {"10.3.9.9:9100"});
}

// Every etcd member freezes for 10 s, as in a network partition (connections hang instead of
// failing). The replicas keep answering http_sd from their last view, report not-ready, refuse
// writes with a retryable error, and catch up once etcd is back; the exporter keeps its files.
TEST_F(ClusterFaultTest, AnOutageOfAllEtcdMembersKeepsHttpSdAnsweringAndCatchesUp) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(
        HttpResult result,
        cluster_->Rest(
            i % 2, "POST", "/v1/services",
            Json{{"name", "node"}, {"endpoint", Endpoint(fmt::format("10.4.0.{}:9100", i + 1))}}));
    ASSERT_EQ(result.status, 200) << result.body;
  }
  const std::set<std::string> before = {"10.4.0.1:9100", "10.4.0.2:9100", "10.4.0.3:9100"};
  ExpectEverywhere(before);
  ASSERT_EQ(Readyz(0), 200);
  ASSERT_EQ(Readyz(1), 200);
  const double commit_errors_before = StoreErrors(0, "commit");

  for (int member = 0; member < 3; ++member) {
    ASSERT_THAT(cluster_->etcd().Pause(member), IsOk());
  }
  const absl::Time frozen = absl::Now();
  std::vector<std::optional<absl::Duration>> not_ready(2);
  int http_sd_answers = 0;
  bool write_refused = false;
  std::string write_answer;
  while (absl::Now() - frozen < absl::Seconds(10)) {
    for (int replica = 0; replica < 2; ++replica) {
      EXPECT_EQ(HttpSd(replica), before) << "replica " << replica << " during the outage";
      ++http_sd_answers;
      if (!not_ready[replica] && Readyz(replica) == 503) {
        not_ready[replica] = absl::Now() - frozen;
      }
    }
    if (!write_refused && not_ready[0]) {
      // A write cannot commit; the client gets a retryable error, not a hang.
      absl::StatusOr<HttpResult> write = cluster_->Rest(
          0, "POST", "/v1/services",
          Json{{"name", "node"}, {"endpoint", Endpoint("10.4.1.1:9100")}}, absl::Seconds(20));
      write_refused = true;
      write_answer = write.ok() ? fmt::format("{} {}", write->status, write->body)
                                : std::string{write.status().message()};
      EXPECT_TRUE(write.ok() && (write->status == 503 || write->status == 504)) << write_answer;
    }
    EXPECT_EQ(AsSet(cluster_->ExporterTargets("default")), before);
    absl::SleepFor(absl::Milliseconds(100));
  }
  for (int replica = 0; replica < 2; ++replica) {
    EXPECT_TRUE(not_ready[replica].has_value()) << "replica " << replica << " stayed ready";
    if (not_ready[replica]) {
      std::cerr << "replica " << replica << " reported not-ready after "
                << absl::FormatDuration(*not_ready[replica]) << "\n";
    }
  }
  std::cerr << http_sd_answers
            << " http_sd answers during the outage; refused write: " << write_answer << "\n";

  for (int member = 0; member < 3; ++member) {
    ASSERT_THAT(cluster_->etcd().Resume(member), IsOk());
  }
  const absl::Time resumed = absl::Now();
  EXPECT_TRUE(Eventually([&] { return Readyz(0) == 200 && Readyz(1) == 200; }, absl::Seconds(30)))
      << cluster_->LogTails();
  std::cerr << "both replicas ready " << absl::FormatDuration(absl::Now() - resumed)
            << " after etcd resumed\n";
  // What the DiscoveryStoreErrors alert watches: the refused write and the probes of the quiet
  // store failed, and both were counted.
  EXPECT_GT(StoreErrors(0, "commit"), commit_errors_before);
  EXPECT_GT(StoreErrors(0, "revision") + StoreErrors(1, "revision"), 0);
  ASSERT_OK_AND_ASSIGN(
      HttpResult result,
      cluster_->Rest(1, "POST", "/v1/services",
                     Json{{"name", "node"}, {"endpoint", Endpoint("10.4.2.1:9100")}}));
  ASSERT_EQ(result.status, 200) << result.body;
  std::set<std::string> after = before;
  after.insert("10.4.2.1:9100");
  ExpectEverywhere(after);
  EXPECT_TRUE(cluster_->exporter()->IsRunning()) << cluster_->exporter()->LogTail();
}

// discoveryd on its embedded store is SIGKILLed in the middle of a stream of registrations: the
// database opens cleanly afterwards (SQLite integrity check and a restart) and holds every
// acknowledged registration.
TEST(EmbeddedStoreCrashTest, KillDuringWritesLosesNoAcknowledgedRegistration) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DiscoverydProcess> discoveryd,
                       DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY}));
  ASSERT_OK_AND_ASSIGN(const std::string token, discoveryd->AdminToken());
  const std::string url = discoveryd->http_url();
  auto post = [&](const std::string& path, const Json& body) {
    absl::StatusOr<HttpResult> result =
        HttpRequest("POST", url + path, body.dump(), {{"Authorization", "Bearer " + token}});
    return result.ok() ? std::pair<int, std::string>(result->status, result->body)
                       : std::pair<int, std::string>(0, std::string{result.status().message()});
  };
  ASSERT_EQ(post("/v1/servers", {{"name", kServer}}).first, 200);

  RegistrationStream stream("10.5", [&](const std::string& endpoint) {
    return post("/v1/services", {{"name", "stream"}, {"endpoint", endpoint}});
  });
  ASSERT_TRUE(stream.WaitForMoreAcks(50, absl::Seconds(30))) << discoveryd->LogTail();
  ASSERT_THAT(discoveryd->Kill(), IsOk());
  stream.Stop();
  const std::set<std::string> acked = stream.acked();

  const std::string db = discoveryd->data_dir() + "/discovery.db";
  ASSERT_OK_AND_ASSIGN(CommandResult check,
                       RunCommand({.argv = {"/usr/bin/sqlite3", db, "PRAGMA integrity_check;"}},
                                  absl::Seconds(30), /*merge_stderr=*/true));
  EXPECT_TRUE(check.status.success()) << check.out;
  EXPECT_EQ(check.out, "ok\n");

  ASSERT_THAT(discoveryd->Restart(), IsOk());
  absl::StatusOr<HttpResult> answer =
      HttpRequest("GET", fmt::format("{}/v1/sd/{}/default", url, kServer), "",
                  {{"Authorization", "Bearer " + token}});
  ASSERT_THAT(answer, IsOk());
  ASSERT_EQ(answer->status, 200) << answer->body;
  std::set<std::string> served;
  const Json groups = Json::parse(answer->body);
  for (const Json& group : groups) {
    for (const Json& target : group["targets"]) {
      served.insert(target.get<std::string>());
    }
  }
  EXPECT_THAT(Missing(acked, served), ::testing::IsEmpty());
  std::cerr << acked.size() << " registrations acknowledged before the crash, " << served.size()
            << " served after the restart\n";
}

}  // namespace
}  // namespace discovery::testing
