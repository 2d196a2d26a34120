// The etcd backend against a real etcd 3.4: the shared store contract suite, plus what only a
// networked store has (reconnects, compaction, dialing, auth, option validation).
#include "store/etcd/etcd_store.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "store/store.h"
#include "testing/etcd_harness.h"
#include "testing/process.h"
#include "testing/status_matchers.h"
#include "testing/store_contract.h"

namespace discovery::testing {
namespace {

using ::discovery::store::ConnectEtcdStore;
using ::discovery::store::EtcdOptions;
using ::discovery::store::KeyValue;
using ::discovery::store::Store;
using ::discovery::store::WatchEvent;
using ::discovery::store::WatchHandle;
using ::discovery::store::WatchResponse;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<std::unique_ptr<Store>> OpenShared() {
  absl::StatusOr<EtcdCluster*> cluster = SharedEtcdCluster();
  if (!cluster.ok()) {
    return cluster.status();
  }
  return ConnectEtcdStore({.endpoints = (*cluster)->endpoints()});
}

// Compacts through etcdctl, which works for the harness's etcd and an external one alike.
void CompactShared(Store& /*store*/, int64_t revision) {
  ASSERT_OK_AND_ASSIGN(EtcdCluster * cluster, SharedEtcdCluster());
  absl::StatusOr<std::string> out = cluster->Etcdctl({"compact", absl::StrCat(revision)});
  // On a shared etcd someone may already have compacted further, which is just as good.
  if (!out.ok() && absl::StrContains(out.status().message(), "has been compacted")) {
    return;
  }
  ASSERT_THAT(out, IsOk());
}

// The same store with the member list synced every 10 ms, so the endpoint list is replaced
// under every call and watch of the suite (--etcd-auto-sync-interval).
absl::StatusOr<std::unique_ptr<Store>> OpenSharedSyncing() {
  absl::StatusOr<EtcdCluster*> cluster = SharedEtcdCluster();
  if (!cluster.ok()) {
    return cluster.status();
  }
  return ConnectEtcdStore(
      {.endpoints = (*cluster)->endpoints(), .auto_sync_interval = absl::Milliseconds(10)});
}

INSTANTIATE_TEST_SUITE_P(
    Etcd, StoreContractTest,
    ::testing::Values(
        StoreFactory{.name = "Etcd", .open = OpenShared, .compact = CompactShared},
        StoreFactory{.name = "EtcdAutoSync", .open = OpenSharedSyncing, .compact = CompactShared}),
    [](const auto& param_info) { return param_info.param.name; });

std::string UniquePrefix(std::string_view test) {
  return absl::StrCat("/etcd-test/", std::string{test}, "/", absl::ToUnixNanos(absl::Now()), "/");
}

// Retries `write` until it succeeds or the deadline passes: after an etcd restart the client's
// channel needs a moment to reconnect, and a write may report Unavailable meanwhile.
template <typename Write>
absl::StatusOr<store::TxnResult> EventuallyCommit(Write write,
                                                  absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    absl::StatusOr<store::TxnResult> result = write();
    if (result.ok() || absl::Now() >= deadline ||
        (result.status().code() != absl::StatusCode::kUnavailable &&
         result.status().code() != absl::StatusCode::kDeadlineExceeded)) {
      return result;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

std::vector<std::string> Keys(const std::vector<WatchEvent>& events) {
  std::vector<std::string> keys;
  keys.reserve(events.size());
  for (const WatchEvent& event : events) {
    keys.push_back(event.kv.key);
  }
  return keys;
}

// ---------------------------------------------------------------------------------------------
// Group commit

// Many writers at once: guarded puts (some with a stale guard), deletes of present and missing
// keys and prefix deletes. Each must answer as it would alone, and concurrent ones must have
// shared etcd transactions.
TEST(EtcdGroupCommitTest, ConcurrentCommitsShareTransactionsAndAnswerAsAlone) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenShared());
  const std::string prefix = UniquePrefix("group-commit");
  const std::string guard = prefix + "guard";
  ASSERT_OK_AND_ASSIGN(store::TxnResult put, store->Commit({.ops = {store::Op::Put(guard, "g")}}));
  const int64_t guard_revision = put.revision;
  constexpr int kThreads = 48;
  constexpr int kRounds = 20;
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_THAT(store->Commit({.ops = {store::Op::Put(absl::StrCat(prefix, "old/", t), "x")}}),
                IsOk());
  }
  ASSERT_OK_AND_ASSIGN(const store::EtcdStoreStats before, store::GetEtcdStoreStats(*store));
  std::atomic<int> wrong{0};
  {
    std::vector<std::jthread> writers;
    writers.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      writers.emplace_back([&, t] {
        for (int r = 0; r < kRounds; ++r) {
          const std::string key = absl::StrCat(prefix, "new/", t, "/", r);
          switch ((t + r) % 6) {
            case 0: {  // a stale guard: nothing written
              absl::StatusOr<store::TxnResult> result = store->Commit(
                  {.compares = {{.key = guard, .mod_revision = guard_revision + 1000}},
                   .ops = {store::Op::Put(key, "stale")}});
              wrong += !result.ok() || result->succeeded ? 1 : 0;
              break;
            }
            case 1: {  // a delete of a missing key
              absl::StatusOr<store::TxnResult> result =
                  store->Commit({.ops = {store::Op::Delete(key + "/missing")}});
              wrong += !result.ok() || !result->succeeded || result->deleted != 0 ? 1 : 0;
              break;
            }
            case 2: {  // a prefix delete (never merged) of nothing
              absl::StatusOr<store::TxnResult> result =
                  store->Commit({.ops = {store::Op::DeletePrefix(key + "/none/")}});
              wrong += !result.ok() || !result->succeeded || result->deleted != 0 ? 1 : 0;
              break;
            }
            default: {  // a guarded put of two keys
              absl::StatusOr<store::TxnResult> result = store->Commit(
                  {.compares = {{.key = guard, .mod_revision = guard_revision}},
                   .ops = {store::Op::Put(key, "a"), store::Op::Put(key + "b", "b")}});
              wrong +=
                  !result.ok() || !result->succeeded || result->revision <= guard_revision ? 1 : 0;
              break;
            }
          }
        }
        // This thread's old key, deleted once: exactly one key removed.
        absl::StatusOr<store::TxnResult> result =
            store->Commit({.ops = {store::Op::Delete(absl::StrCat(prefix, "old/", t))}});
        wrong += !result.ok() || !result->succeeded || result->deleted != 1 ? 1 : 0;
      });
    }
  }
  EXPECT_EQ(wrong, 0);
  ASSERT_OK_AND_ASSIGN(store::RangeResult all, store->Range(prefix));
  int guarded = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int r = 0; r < kRounds; ++r) {
      guarded += (t + r) % 6 >= 3 ? 2 : 0;
    }
  }
  EXPECT_EQ(all.kvs.size(), static_cast<size_t>(guarded) + 1);  // + the guard
  for (const KeyValue& kv : all.kvs) {
    EXPECT_NE(kv.value, "stale") << kv.key;
    EXPECT_FALSE(absl::StrContains(kv.key, "/old/")) << kv.key;
  }
  ASSERT_OK_AND_ASSIGN(const store::EtcdStoreStats after, store::GetEtcdStoreStats(*store));
  const int64_t commits = after.commits - before.commits;
  EXPECT_EQ(commits, kThreads * (kRounds + 1));
  EXPECT_LT(after.transactions - before.transactions, commits);
}

// The watch tells a set's expiry from a deletion by the number of keys a revision deletes, so a
// set larger than one transaction could move onto its lease is refused.
TEST(EtcdExpiryTest, ARenewalSetOfMoreKeysThanATransactionHoldsIsRefused) {
  ASSERT_OK_AND_ASSIGN(EtcdCluster * cluster, SharedEtcdCluster());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store,
                       ConnectEtcdStore({.endpoints = cluster->endpoints()}));
  store::Renewal renewal{.ttl = absl::Seconds(30), .expires = absl::Now() + absl::Seconds(30)};
  for (int i = 0; i < 129; ++i) {
    renewal.keys.push_back({.key = absl::StrCat("/renew-limit-test/", i), .value = "v"});
  }
  EXPECT_THAT(store->Renew(renewal),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("a renewal set holds at most 128 keys, not 129")));
  renewal.keys.pop_back();
  for (const store::RenewKey& key : renewal.keys) {
    // Ten minutes out: a deadline second of its own, not the one the test above counts leases of.
    ASSERT_THAT(store->Commit({.ops = {store::Op::PutExpiring(key.key, "v",
                                                              absl::Now() + absl::Minutes(10))}}),
                IsOk());
  }
  for (store::RenewKey& key : renewal.keys) {
    ASSERT_OK_AND_ASSIGN(const store::KeyValue kv, store->Get(key.key));
    key.mod_revision = kv.mod_revision;
    key.lease = kv.lease;
  }
  ASSERT_OK_AND_ASSIGN(const store::RenewResult renewed, store->Renew(renewal));
  EXPECT_TRUE(renewed.succeeded);
  ASSERT_THAT(store->Commit({.ops = {store::Op::DeletePrefix("/renew-limit-test/")}}), IsOk());
}

// ---------------------------------------------------------------------------------------------
// Dialing and options

// Expiring keys share a lease per deadline second: many keys, two processes (stores), one
// deadline - one lease; etcd counts it too.
TEST(EtcdExpiryTest, KeysOfOneDeadlineSecondShareOneLeaseAcrossStores) {
  ASSERT_OK_AND_ASSIGN(EtcdCluster * cluster, SharedEtcdCluster());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> first,
                       ConnectEtcdStore({.endpoints = cluster->endpoints()}));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> second,
                       ConnectEtcdStore({.endpoints = cluster->endpoints()}));
  const absl::Time deadline =
      absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) + 30) - absl::Milliseconds(500);
  for (int i = 0; i < 50; ++i) {
    Store& store = i % 2 == 0 ? *first : *second;
    ASSERT_THAT(store.Commit({.ops = {store::Op::PutExpiring(absl::StrCat("/expiry-test/", i), "v",
                                                             deadline)}}),
                IsOk());
  }
  ASSERT_OK_AND_ASSIGN(const store::EtcdStoreStats a, store::GetEtcdStoreStats(*first));
  ASSERT_OK_AND_ASSIGN(const store::EtcdStoreStats b, store::GetEtcdStoreStats(*second));
  EXPECT_EQ(a.leases_granted + b.leases_granted, 1);
  ASSERT_OK_AND_ASSIGN(const std::string leases, cluster->Etcdctl({"lease", "list"}));
  EXPECT_THAT(leases,
              ::testing::HasSubstr(absl::StrCat(absl::Hex(
                  (int64_t{0x4454} << 48) | absl::ToUnixSeconds(deadline + absl::Seconds(1))))));
  ASSERT_THAT(first->Commit({.ops = {store::Op::DeletePrefix("/expiry-test/")}}), IsOk());
}

TEST(EtcdStoreConnectTest, UnavailableWithinDialTimeoutWhenNothingListens) {
  // A loopback port nobody listens on (bound and released, so nothing else had it a moment ago).
  ASSERT_OK_AND_ASSIGN(const std::vector<int> unused, FreePorts(1));
  const std::string endpoint = absl::StrCat("127.0.0.1:", unused.front());
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<Store>> store =
      ConnectEtcdStore({.endpoints = {endpoint}, .dial_timeout = absl::Milliseconds(500)});
  const absl::Duration elapsed = absl::Now() - start;
  EXPECT_THAT(store, StatusIs(absl::StatusCode::kUnavailable,
                              HasSubstr("cannot reach etcd at " + endpoint)));
  EXPECT_LT(elapsed, absl::Seconds(3));
}

TEST(EtcdStoreConnectTest, FailsOverToTheEndpointThatAnswers) {
  ASSERT_OK_AND_ASSIGN(EtcdCluster * cluster, SharedEtcdCluster());
  ASSERT_OK_AND_ASSIGN(const std::vector<int> unused, FreePorts(1));
  std::vector<std::string> endpoints = {absl::StrCat("127.0.0.1:", unused.front())};
  endpoints.insert(endpoints.end(), cluster->endpoints().begin(), cluster->endpoints().end());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, ConnectEtcdStore({.endpoints = endpoints}));
  const std::string key = UniquePrefix("failover") + "k";
  ASSERT_THAT(store::Put(*store, key, "v"), IsOk());
  EXPECT_THAT(store->Get(key), IsOkAndHolds(::testing::Field(&KeyValue::value, "v")));
}

TEST(EtcdStoreConnectTest, AcceptsHostPortAndUrlEndpoints) {
  ASSERT_OK_AND_ASSIGN(EtcdCluster * cluster, SharedEtcdCluster());
  const std::string url = cluster->endpoints().front();  // http://127.0.0.1:PORT
  const std::string host_port = url.substr(std::string_view("http://").size());
  for (const std::string& endpoint : {url, url + "/", host_port}) {
    SCOPED_TRACE(endpoint);
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, ConnectEtcdStore({.endpoints = {endpoint}}));
    EXPECT_THAT(store->CurrentRevision(), IsOk());
  }
}

TEST(EtcdStoreConnectTest, RejectsInconsistentOptions) {
  const std::string missing_file = "/nonexistent/discovery-test/ca.pem";
  struct Case {
    std::string name;
    EtcdOptions options;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"no endpoints", {.endpoints = {}}, "no etcd endpoints"},
      {"unknown scheme", {.endpoints = {"unix:///tmp/etcd.sock"}}, "only http:// and https://"},
      {"no port", {.endpoints = {"localhost"}}, "want host:port"},
      {"path in url", {.endpoints = {"http://localhost:2379/v3"}}, "want host:port"},
      {"duplicate ca", {.ca_pem = "PEM", .ca_file = "/etc/ssl/ca.pem"}, "got duplicate ca"},
      {"duplicate cert",
       {.cert_pem = "PEM", .key_pem = "KEY", .cert_file = "/c.pem"},
       "got duplicate cert"},
      {"duplicate key",
       {.cert_pem = "PEM", .key_pem = "KEY", .key_file = "/k.pem"},
       "got duplicate key"},
      {"cert without key", {.cert_pem = "PEM"}, "without its key"},
      {"key without cert", {.key_pem = "KEY"}, "without its certificate"},
      {"unreadable ca file", {.ca_file = missing_file}, missing_file},
      {"http with tls material", {.endpoints = {"http://localhost:2379"}, .ca_pem = "PEM"}, "mix"},
      {"http and https", {.endpoints = {"http://localhost:2379", "https://localhost:2380"}}, "mix"},
      {"password without user", {.password = "secret"}, "without a username"},
      {"zero dial timeout", {.dial_timeout = absl::ZeroDuration()}, "must be positive"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_THAT(ConnectEtcdStore(c.options),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
  }
}

// ---------------------------------------------------------------------------------------------
// TLS: a private etcd serving clients with a self-signed certificate for 127.0.0.1.

class EtcdTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = absl::StrCat(::testing::TempDir(), "etcd-tls-XXXXXX");
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    cert_file_ = dir_ + "/cert.pem";
    key_file_ = dir_ + "/key.pem";
    ASSERT_THAT(WriteSelfSignedCertificate("discovery-etcd-test", cert_file_, key_file_), IsOk());
    absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster =
        EtcdCluster::Start({.server_cert_file = cert_file_, .server_key_file = key_file_});
    ASSERT_THAT(cluster, IsOk());
    cluster_ = *std::move(cluster);
  }

  void TearDown() override {
    cluster_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string dir_;
  std::string cert_file_;
  std::string key_file_;
  std::unique_ptr<EtcdCluster> cluster_;
};

TEST_F(EtcdTlsTest, VerifiesTheServerAgainstTheGivenCa) {
  ASSERT_THAT(cluster_->endpoints().front(), ::testing::StartsWith("https://"));
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Store> store,
      ConnectEtcdStore({.endpoints = cluster_->endpoints(), .ca_file = cert_file_}));
  ASSERT_THAT(store::Put(*store, "/tls/k", "v"), IsOk());
  EXPECT_THAT(store->Get("/tls/k"), IsOkAndHolds(::testing::Field(&KeyValue::value, "v")));
}

TEST_F(EtcdTlsTest, InlineCaAndHostPortEndpointUseTls) {
  std::ifstream in(cert_file_);
  const std::string ca((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string host_port =
      cluster_->endpoints().front().substr(std::string_view("https://").size());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store,
                       ConnectEtcdStore({.endpoints = {host_port}, .ca_pem = ca}));
  EXPECT_THAT(store->CurrentRevision(), IsOk());
}

// docs/decisions.md D21: the Go original turned verification off when a client certificate came
// without a CA. Here the system roots apply, which do not know the test CA, so the dial must fail.
TEST_F(EtcdTlsTest, ClientCertificateWithoutCaDoesNotDisableVerification) {
  EXPECT_THAT(ConnectEtcdStore({.endpoints = cluster_->endpoints(),
                                .cert_file = cert_file_,
                                .key_file = key_file_,
                                .dial_timeout = absl::Seconds(1)}),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("cannot reach etcd")));
}

TEST_F(EtcdTlsTest, PlaintextClientCannotTalkToTlsEtcd) {
  const std::string host_port =
      cluster_->endpoints().front().substr(std::string_view("https://").size());
  EXPECT_THAT(
      ConnectEtcdStore({.endpoints = {"http://" + host_port}, .dial_timeout = absl::Seconds(1)}),
      StatusIs(absl::StatusCode::kUnavailable));
}

// ---------------------------------------------------------------------------------------------
// Faults: a private etcd per test, so killing it disturbs nobody else.

class EtcdFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster = EtcdCluster::Start();
    ASSERT_THAT(cluster, IsOk());
    cluster_ = *std::move(cluster);
  }

  EtcdOptions Options() const {
    return {.endpoints = cluster_->endpoints(), .request_timeout = absl::Seconds(2)};
  }

  std::unique_ptr<EtcdCluster> cluster_;
};

TEST_F(EtcdFaultTest, WatchResumesAfterEtcdRestartWithoutDuplicates) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, ConnectEtcdStore(Options()));
  const std::string prefix = "/restart/";
  ASSERT_OK_AND_ASSIGN(const store::TxnResult first, store::Put(*store, prefix + "a", "1"));
  WatchRecorder recorder;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                       store->Watch(prefix, first.revision, recorder.Callback()));
  ASSERT_TRUE(recorder.WaitForKey(prefix + "a"));

  ASSERT_THAT(cluster_->Kill(0), IsOk());
  ASSERT_THAT(cluster_->Restart(0), IsOk()) << cluster_->LogTail(0);

  ASSERT_THAT(EventuallyCommit([&] { return store::Put(*store, prefix + "b", "2"); }), IsOk());
  ASSERT_OK_AND_ASSIGN(const store::TxnResult last, store::Put(*store, prefix + "c", "3"));
  ASSERT_TRUE(recorder.WaitForKey(prefix + "c", last.revision));

  EXPECT_THAT(Keys(recorder.Events()), ElementsAre(prefix + "a", prefix + "b", prefix + "c"));
}

TEST_F(EtcdFaultTest, WatchSeesOtherClientsWritesAfterCleanRestart) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, ConnectEtcdStore(Options()));
  const std::string prefix = "/offline/";
  WatchRecorder recorder;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                       store->Watch(prefix, 0, recorder.Callback()));
  ASSERT_THAT(store::Put(*store, prefix + "a", "1"), IsOk());
  ASSERT_TRUE(recorder.WaitForKey(prefix + "a"));

  // A clean stop this time; a second client writes as soon as etcd is back, typically before
  // the watch has re-opened its stream, so the watch must catch up from its revision.
  ASSERT_THAT(cluster_->Stop(0), IsOk());
  ASSERT_THAT(cluster_->Restart(0), IsOk()) << cluster_->LogTail(0);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> writer, ConnectEtcdStore(Options()));
  ASSERT_THAT(store::Put(*writer, prefix + "b", "2"), IsOk());
  ASSERT_THAT(store::Delete(*writer, prefix + "a"), IsOk());
  ASSERT_OK_AND_ASSIGN(const store::TxnResult last, store::Put(*writer, prefix + "c", "3"));

  ASSERT_TRUE(recorder.WaitForKey(prefix + "c", last.revision));
  const std::vector<WatchEvent> events = recorder.Events();
  EXPECT_THAT(Keys(events), ElementsAre(prefix + "a", prefix + "b", prefix + "a", prefix + "c"));
  EXPECT_EQ(events[2].type, WatchEvent::Type::kDelete);
}

TEST_F(EtcdFaultTest, CallsFailUnavailableWhileEtcdIsDown) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, ConnectEtcdStore(Options()));
  ASSERT_THAT(cluster_->Kill(0), IsOk());
  const absl::Time start = absl::Now();
  absl::StatusOr<KeyValue> got = store->Get("/down/k");
  EXPECT_THAT(got.status().code(), ::testing::AnyOf(absl::StatusCode::kUnavailable,
                                                    absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(got.status().message(), HasSubstr("etcd: "));
  // Bounded by request_timeout (2 s), plus scheduling slack.
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(EtcdFaultTest, HandleDestructionWhileEtcdIsDownReturnsPromptly) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, ConnectEtcdStore(Options()));
  WatchRecorder recorder;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                       store->Watch("/gone/", 0, recorder.Callback()));
  ASSERT_THAT(cluster_->Kill(0), IsOk());
  absl::SleepFor(absl::Milliseconds(300));  // let the watch enter its reconnect backoff
  const absl::Time start = absl::Now();
  handle.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

// Compaction while a watch is behind: the consumer learns it must re-list.
TEST(EtcdCompactionTest, WatchFromCompactedRevisionDeliversCompactRevisionAndEnds) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenShared());
  const std::string prefix = UniquePrefix("compaction");
  ASSERT_OK_AND_ASSIGN(const store::TxnResult r1, store::Put(*store, prefix + "k", "1"));
  ASSERT_THAT(store::Put(*store, prefix + "k", "2"), IsOk());
  ASSERT_OK_AND_ASSIGN(const store::TxnResult r3, store::Put(*store, prefix + "k", "3"));
  CompactShared(*store, r3.revision);
  if (HasFatalFailure()) {
    return;
  }

  WatchRecorder recorder;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                       store->Watch(prefix, r1.revision, recorder.Callback()));
  ASSERT_TRUE(recorder.WaitForResponses(1));
  const WatchResponse response = recorder.Responses().front();
  EXPECT_GE(response.compact_revision, r3.revision);
  EXPECT_TRUE(response.events.empty());

  // The watch has ended: a later write produces nothing more on it.
  WatchRecorder live;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> live_handle,
                       store->Watch(prefix, 0, live.Callback()));
  ASSERT_THAT(store::Put(*store, prefix + "k", "4"), IsOk());
  ASSERT_TRUE(live.WaitForKey(prefix + "k"));
  EXPECT_EQ(recorder.ResponseCount(), 1U);
}

// Pages of a RangeInBatches are read at the first page's revision: what another client writes
// or deletes between two pages is not seen, and a compaction past that revision fails the read
// instead of mixing two snapshots.
TEST(EtcdRangeInBatchesTest, PagesAreOneSnapshotWhileOthersWrite) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenShared());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> other, OpenShared());
  const std::string prefix = UniquePrefix("pages");
  for (const char* key : {"a", "b", "c", "d", "e"}) {
    ASSERT_THAT(store::Put(*store, prefix + key, "before"), IsOk());
  }
  std::vector<std::string> keys;
  int batches = 0;
  ASSERT_OK_AND_ASSIGN(const int64_t revision,
                       store->RangeInBatches(prefix, 2, [&](const std::vector<KeyValue>& batch) {
                         if (++batches == 1) {
                           ASSERT_THAT(store::Put(*other, prefix + "c", "after"), IsOk());
                           ASSERT_THAT(store::Delete(*other, prefix + "e"), IsOk());
                           ASSERT_THAT(store::Put(*other, prefix + "f", "after"), IsOk());
                         }
                         for (const KeyValue& kv : batch) {
                           keys.push_back(kv.key);
                           EXPECT_EQ(kv.value, "before") << kv.key;
                         }
                       }));
  EXPECT_EQ(batches, 3);
  EXPECT_THAT(keys,
              ElementsAre(prefix + "a", prefix + "b", prefix + "c", prefix + "d", prefix + "e"));
  ASSERT_OK_AND_ASSIGN(const int64_t now, other->CurrentRevision());
  EXPECT_LT(revision, now);
}

// Pages are asked for in windows of the key space sized from the keys already read (etcd walks
// a request's whole range to count it): with ids that are hashes, as discovery's, and keys
// around the prefix, every key is read once and in order.
TEST(EtcdRangeInBatchesTest, WindowedPagesReadEveryKeyOnce) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenShared());
  const std::string prefix = UniquePrefix("windows");
  std::vector<store::Op> ops;
  for (int i = 0; i < 2000; ++i) {
    // The hexadecimal digits of i * a large odd number: spread out as hashes are.
    ops.push_back(store::Op::Put(
        absl::StrCat(prefix, "service/",
                     absl::Hex(static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15U, absl::kZeroPad16)),
        "v"));
    if (ops.size() == 100) {
      ASSERT_THAT(store->Commit({.ops = std::move(ops)}), IsOk());
      ops.clear();
    }
  }
  ASSERT_THAT(store->Commit({.ops = {store::Op::Put(prefix + "namespace/a", "v"),
                                     store::Op::Put(prefix + "server/p0", "v"),
                                     store::Op::Put(prefix.substr(0, prefix.size() - 1), "out"),
                                     store::Op::Put(prefix + "\xff\xff", "v")}}),
              IsOk());
  ASSERT_OK_AND_ASSIGN(const store::RangeResult all, store->Range(prefix));
  ASSERT_EQ(all.kvs.size(), 2003U);
  std::vector<std::string> read;
  ASSERT_THAT(store->RangeInBatches(prefix, 64,
                                    [&](const std::vector<KeyValue>& batch) {
                                      EXPECT_LE(batch.size(), 64U);
                                      for (const KeyValue& kv : batch) {
                                        read.push_back(kv.key);
                                      }
                                    }),
              IsOk());
  std::vector<std::string> expected;
  for (const KeyValue& kv : all.kvs) {
    expected.push_back(kv.key);
  }
  EXPECT_EQ(read, expected);
}

TEST(EtcdRangeInBatchesTest, ACompactionBetweenPagesFailsTheRead) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, OpenShared());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> other, OpenShared());
  const std::string prefix = UniquePrefix("compacted-pages");
  for (const char* key : {"a", "b", "c"}) {
    ASSERT_THAT(store::Put(*store, prefix + key, "1"), IsOk());
  }
  absl::StatusOr<int64_t> read =
      store->RangeInBatches(prefix, 1, [&](const std::vector<KeyValue>&) {
        absl::StatusOr<store::TxnResult> later = store::Put(*other, prefix + "z", "1");
        ASSERT_THAT(later, IsOk());
        CompactShared(*store, later->revision);
      });
  EXPECT_THAT(read, StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("compacted")));
}

// ---------------------------------------------------------------------------------------------
// Auth: a private etcd with auth enabled.

class EtcdAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster = EtcdCluster::Start();
    ASSERT_THAT(cluster, IsOk());
    cluster_ = *std::move(cluster);
    ASSERT_THAT(cluster_->Etcdctl({"user", "add", "root:rootpw"}), IsOk());
    ASSERT_THAT(cluster_->Etcdctl({"auth", "enable"}), IsOk());
  }

  EtcdOptions Options(std::string username, std::string password) const {
    return {.endpoints = cluster_->endpoints(),
            .username = std::move(username),
            .password = std::move(password)};
  }

  std::unique_ptr<EtcdCluster> cluster_;
};

TEST_F(EtcdAuthTest, WrongPasswordIsUnauthenticated) {
  EXPECT_THAT(ConnectEtcdStore(Options("root", "wrong")),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("etcd: ")));
}

TEST_F(EtcdAuthTest, WithoutCredentialsCallsAreRefused) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, ConnectEtcdStore(Options("", "")));
  EXPECT_THAT(store->Get("/k"), ::testing::Not(IsOk()));
}

TEST_F(EtcdAuthTest, AuthenticatedReadWriteAndWatchSurviveTokenLoss) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store, ConnectEtcdStore(Options("root", "rootpw")));
  const std::string prefix = "/auth/";
  ASSERT_OK_AND_ASSIGN(const store::TxnResult first, store::Put(*store, prefix + "a", "1"));
  EXPECT_THAT(store->Get(prefix + "a"), IsOkAndHolds(::testing::Field(&KeyValue::value, "1")));
  WatchRecorder recorder;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                       store->Watch(prefix, first.revision, recorder.Callback()));
  ASSERT_TRUE(recorder.WaitForKey(prefix + "a"));

  // etcd's simple tokens live in memory only: after a restart the client's token is unknown
  // ("invalid auth token") and it must authenticate again, for calls and for the watch.
  ASSERT_THAT(cluster_->Kill(0), IsOk());
  ASSERT_THAT(cluster_->Restart(0), IsOk()) << cluster_->LogTail(0);
  ASSERT_THAT(EventuallyCommit([&] { return store::Put(*store, prefix + "b", "2"); }), IsOk());
  ASSERT_OK_AND_ASSIGN(const store::TxnResult last, store::Put(*store, prefix + "c", "3"));
  ASSERT_TRUE(recorder.WaitForKey(prefix + "c", last.revision));
  EXPECT_THAT(Keys(recorder.Events()), ElementsAre(prefix + "a", prefix + "b", prefix + "c"));
}

// ---------------------------------------------------------------------------------------------
// A three-member cluster: the multi-node deployment (README, "Running in production").

TEST(EtcdClusterTest, SurvivesLosingTheMemberInUse) {
  absl::StatusOr<std::unique_ptr<EtcdCluster>> started = EtcdCluster::Start({.members = 3});
  ASSERT_THAT(started, IsOk());
  std::unique_ptr<EtcdCluster> cluster = *std::move(started);
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Store> store,
      ConnectEtcdStore({.endpoints = cluster->endpoints(), .request_timeout = absl::Seconds(3)}));
  const std::string prefix = "/cluster/";
  WatchRecorder recorder;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                       store->Watch(prefix, 0, recorder.Callback()));
  ASSERT_THAT(store::Put(*store, prefix + "a", "1"), IsOk());
  ASSERT_TRUE(recorder.WaitForKey(prefix + "a"));

  // The client dialled the first member; killing it forces failover for calls and the watch.
  ASSERT_THAT(cluster->Kill(0), IsOk());
  ASSERT_THAT(EventuallyCommit([&] { return store::Put(*store, prefix + "b", "2"); }), IsOk());
  ASSERT_OK_AND_ASSIGN(const store::TxnResult last, store::Put(*store, prefix + "c", "3"));
  ASSERT_TRUE(recorder.WaitForKey(prefix + "c", last.revision));
  EXPECT_THAT(Keys(recorder.Events()), ElementsAre(prefix + "a", prefix + "b", prefix + "c"));

  ASSERT_THAT(cluster->Restart(0), IsOk()) << cluster->LogTail(0);
}

}  // namespace
}  // namespace discovery::testing
