#include "repo/view.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "common/logging.h"
#include "repo/codec.h"
#include "store/embedded/embedded_store.h"
#include "testing/eventually.h"
#include "testing/status_matchers.h"

namespace discovery::repo {
namespace {

using ::discovery::testing::IsOk;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::Key;
using ::testing::Pair;
using ::testing::Pointee;
using ::testing::UnorderedElementsAre;

constexpr absl::Duration kWait = absl::Seconds(10);

Service MakeService(std::string name, std::string ns, std::string endpoint) {
  Service service;
  service.id = ServiceId(endpoint);
  service.name = std::move(name);
  service.namespace_name = std::move(ns);
  service.endpoint = std::move(endpoint);
  return service;
}

class ViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::OpenEmbeddedStore({});
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    repo_ = std::make_unique<Repository>(*store_, Keys());
  }

  // Waits until `view` reflects revision `revision` and returns that snapshot.
  static std::shared_ptr<const Snapshot> At(const View& view, absl::StatusOr<int64_t> revision) {
    EXPECT_THAT(revision, IsOk());
    EXPECT_TRUE(view.WaitForRevision(*revision, kWait)) << "view did not reach " << *revision;
    return view.Current();
  }

  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Repository> repo_;
};

TEST_F(ViewTest, LoadsWhatIsStored) {
  ASSERT_THAT(repo_->PutNamespace({.name = "default"}), IsOk());
  ASSERT_THAT(repo_->PutServer({.name = "p1", .state = ServerState::kActive}), IsOk());
  Service service = MakeService("a", "default", "http://a.example.com/metrics");
  absl::StatusOr<int64_t> revision = repo_->PutService(service);

  View view(*store_, Keys());
  std::shared_ptr<const Snapshot> snapshot = At(view, revision);
  ASSERT_NE(snapshot, nullptr);
  EXPECT_THAT(snapshot->namespaces, ElementsAre(Key("default")));
  EXPECT_THAT(snapshot->servers, ElementsAre(Key("p1")));
  ASSERT_NE(snapshot->ServicesIn("default"), nullptr);
  ASSERT_NE(snapshot->FindService("default", service.id), nullptr);
  EXPECT_EQ(*snapshot->FindService("default", service.id), service);
  EXPECT_EQ(snapshot->ServiceCount(), 1U);
  EXPECT_THAT(view.Health(), IsOk());
}

TEST_F(ViewTest, FollowsPutsAndDeletes) {
  View view(*store_, Keys());
  Service service = MakeService("a", "default", "http://a.example.com/metrics");
  std::shared_ptr<const Snapshot> snapshot = At(view, repo_->PutService(service));
  EXPECT_EQ(snapshot->ServiceCount(), 1U);

  snapshot = At(view, repo_->DeleteService("default", service.id));
  EXPECT_EQ(snapshot->ServicesIn("default"), nullptr);
  EXPECT_EQ(snapshot->ServiceCount(), 0U);

  ASSERT_THAT(repo_->PutServer({.name = "p1"}), IsOk());
  snapshot = At(view, repo_->DeleteServer("p1"));
  EXPECT_TRUE(snapshot->servers.empty());
}

TEST_F(ViewTest, FollowsThePlacementSettings) {
  View view(*store_, Keys());
  ASSERT_THAT(repo_->PutNamespace({.name = "default"}), IsOk());
  std::shared_ptr<const Snapshot> snapshot = At(view, repo_->PutNamespace({.name = "other"}));
  EXPECT_EQ(snapshot->placement, std::nullopt);

  const placement::Settings jump{.algorithm = placement::Algorithm::kJump, .replicas = 2};
  snapshot = At(view, repo_->PutPlacementSettings(jump));
  EXPECT_EQ(snapshot->placement, jump);
  EXPECT_THAT(snapshot->invalid, ::testing::IsEmpty());

  EXPECT_FALSE(repo_->PutPlacementSettings({.replicas = 0}).ok());
  ASSERT_THAT(store_->Commit({.ops = {store::Op::Put(Keys().PlacementSettings(),
                                                     R"({"algorithm":"magic","replicas":1})")}}),
              IsOk());
  snapshot = At(view, repo_->PutNamespace({.name = "third"}));
  // A broken document is set aside; the last good settings are kept.
  EXPECT_EQ(snapshot->placement, jump);
  EXPECT_THAT(snapshot->invalid, ElementsAre(Key(Keys().PlacementSettings())));
}

TEST_F(ViewTest, FollowsTokenRevocations) {
  View view(*store_, Keys());
  const TokenRevocation revocation{.id = "ci-42",
                                   .revoked_at = absl::FromUnixSeconds(1'800'000'000),
                                   .revoked_by = "user:alice"};
  std::shared_ptr<const Snapshot> snapshot = At(view, repo_->PutRevocation(revocation));
  ASSERT_EQ(snapshot->revoked_tokens.size(), 1U);
  EXPECT_EQ(snapshot->revoked_tokens.at("ci-42"), revocation);
  EXPECT_EQ(Keys().Parse(Keys().RevokedToken("ci-42")).kind, Keys::Parsed::Kind::kRevokedToken);
  EXPECT_FALSE(repo_->PutRevocation({.id = "../namespace/v1/default"}).ok());
  EXPECT_FALSE(repo_->PutRevocation({.id = ""}).ok());

  // The key names the token, whatever id the document claims.
  ASSERT_THAT(store_->Commit({.ops = {store::Op::Put(
                                  Keys().RevokedToken("robot"),
                                  R"({"id":"other","revoked_at":"2027-01-15T08:00:00Z"})")}}),
              IsOk());
  snapshot = At(view, repo_->PutNamespace({.name = "third"}));
  EXPECT_TRUE(snapshot->revoked_tokens.contains("robot"));
  EXPECT_FALSE(snapshot->revoked_tokens.contains("other"));

  absl::StatusOr<store::TxnResult> deleted =
      store_->Commit({.ops = {store::Op::Delete(Keys().RevokedToken("ci-42"))}});
  ASSERT_THAT(deleted, IsOk());
  ASSERT_TRUE(view.WaitForRevision(deleted->revision, absl::Seconds(10)));
  EXPECT_FALSE(view.Current()->revoked_tokens.contains("ci-42"));
}

TEST_F(ViewTest, PublishedSnapshotsNeverChange) {
  View view(*store_, Keys());
  Service a = MakeService("a", "ns-a", "http://a.example.com/metrics");
  Service b = MakeService("b", "ns-b", "http://b.example.com/metrics");
  ASSERT_THAT(repo_->PutService(a), IsOk());
  std::shared_ptr<const Snapshot> before = At(view, repo_->PutService(b));

  Service b2 = MakeService("b2", "ns-b", "http://b2.example.com/metrics");
  std::shared_ptr<const Snapshot> after = At(view, repo_->PutService(b2));

  EXPECT_EQ(before->ServicesIn("ns-b")->size(), 1U);
  EXPECT_EQ(after->ServicesIn("ns-b")->size(), 2U);
  // The namespace that did not change is shared, not copied.
  EXPECT_TRUE(before->ServicesIn("ns-a")->SameAs(*after->ServicesIn("ns-a")));
}

TEST_F(ViewTest, ATransactionAppearsAtOnce) {
  View view(*store_, Keys());
  Service a = MakeService("a", "default", "http://a.example.com/metrics");
  Service b = MakeService("b", "default", "http://b.example.com/metrics");
  absl::StatusOr<store::Op> put_a = repo_->PutServiceOp(a);
  absl::StatusOr<store::Op> put_b = repo_->PutServiceOp(b);
  ASSERT_THAT(put_a, IsOk());
  ASSERT_THAT(put_b, IsOk());
  absl::StatusOr<store::TxnResult> result = store_->Commit({.ops = {*put_a, *put_b}});
  ASSERT_THAT(result, IsOk());
  std::shared_ptr<const Snapshot> snapshot = At(view, result->revision);
  EXPECT_EQ(snapshot->revision, result->revision);
  EXPECT_EQ(snapshot->ServiceCount(), 2U);
}

TEST_F(ViewTest, SetsAsideUndecodableRecordsUntilTheyAreFixed) {
  View view(*store_, Keys());
  absl::StatusOr<store::TxnResult> broken =
      store::Put(*store_, "/discovery/server/v1/p1", R"({"name":"p1","state":"active"})");
  ASSERT_THAT(broken, IsOk());
  std::shared_ptr<const Snapshot> snapshot = At(view, broken->revision);
  EXPECT_TRUE(snapshot->servers.empty());
  EXPECT_THAT(snapshot->invalid,
              ElementsAre(::testing::Pair("/discovery/server/v1/p1",
                                          Field(&InvalidRecord::reason, HasSubstr("state")))));
  EXPECT_EQ(snapshot->invalid.begin()->second.service, nullptr);
  EXPECT_EQ(snapshot->invalid.begin()->second.kind, "server");
  EXPECT_THAT(InvalidRecordCounts(*snapshot), ElementsAre(Pair(Pair("server", ""), 1)));

  snapshot = At(view, repo_->PutServer({.name = "p1"}));
  EXPECT_THAT(snapshot->servers, ElementsAre(Key("p1")));
  EXPECT_TRUE(snapshot->invalid.empty());
}

TEST_F(ViewTest, RejectsServiceRecordsFiledUnderAnotherKey) {
  View view(*store_, Keys());
  Service service = MakeService("a", "default", "http://a.example.com/metrics");
  absl::StatusOr<store::TxnResult> misfiled =
      store::Put(*store_, "/discovery/service/v1/other/" + service.id,
                 R"({"id":")" + service.id + R"(","namespace":"default"})");
  ASSERT_THAT(misfiled, IsOk());
  std::shared_ptr<const Snapshot> snapshot = At(view, misfiled->revision);
  EXPECT_EQ(snapshot->ServiceCount(), 0U);
  EXPECT_EQ(snapshot->invalid.size(), 1U);
}

// Records the Go original accepted (docs/decisions.md D36): they are listed as invalid with the
// reason and what an operator needs to find them, and left out of the services every answer is
// built from.
TEST_F(ViewTest, ClassifiesServicesThatCannotBeServedNextToGoodOnes) {
  View view(*store_, Keys());
  const Service good = MakeService("good", "default", "http://good.example.com/metrics");
  ASSERT_THAT(repo_->PutService(good), IsOk());
  const std::string legacy_id = ServiceId("localhost:9100");
  const std::string legacy_key = Keys().Service("default", legacy_id);
  absl::StatusOr<store::TxnResult> legacy = store::Put(
      *store_, legacy_key,
      R"({"id":")" + legacy_id +
          R"(","name":"node","namespace":"default","endpoint":"localhost:9100",)"
          R"("labels":{"team":"sre"},"servers":["p1"],"modified":"2020-01-02T03:04:05Z"})");
  ASSERT_THAT(legacy, IsOk());
  std::shared_ptr<const Snapshot> snapshot = At(view, legacy->revision);

  EXPECT_EQ(snapshot->ServicesIn("default")->size(), 1U);
  EXPECT_NE(snapshot->FindService("default", good.id), nullptr);
  ASSERT_THAT(snapshot->invalid, ElementsAre(Key(legacy_key)));
  const InvalidRecord& record = snapshot->invalid.at(legacy_key);
  EXPECT_THAT(record.reason, HasSubstr("'localhost:9100' is not a valid url"));
  EXPECT_EQ(record.mod_revision, legacy->revision);
  ASSERT_NE(record.service, nullptr);
  EXPECT_EQ(record.service->id, legacy_id);
  EXPECT_EQ(record.service->namespace_name, "default");
  EXPECT_EQ(record.service->name, "node");
  EXPECT_EQ(record.service->endpoint, "localhost:9100");
  EXPECT_EQ(record.service->labels, (Labels{{"team", "sre"}}));
  EXPECT_TRUE(record.service->servers.empty());  // placed nowhere

  // Fixed in place, it is served again; deleted, it is gone from both.
  Service fixed = MakeService("node", "default", "http://localhost:9100");
  fixed.id = legacy_id;  // edited under its key
  ASSERT_THAT(store::Put(*store_, legacy_key, EncodeService(fixed)), IsOk());
  snapshot = At(view, repo_->PutNamespace({.name = "default"}));
  EXPECT_EQ(snapshot->ServicesIn("default")->size(), 2U);
  EXPECT_TRUE(snapshot->invalid.empty());
  ASSERT_THAT(store::Put(*store_, legacy_key, "{not json"), IsOk());
  snapshot = At(view, repo_->PutNamespace({.name = "default"}));
  EXPECT_EQ(snapshot->ServicesIn("default")->size(), 1U);
  ASSERT_THAT(snapshot->invalid, ElementsAre(Key(legacy_key)));
  EXPECT_THAT(
      snapshot->invalid.at(legacy_key).service,
      Pointee(AllOf(Field(&Service::id, legacy_id), Field(&Service::namespace_name, "default"),
                    Field(&Service::name, ""))));
  snapshot = At(view, repo_->DeleteService("default", legacy_id));
  EXPECT_TRUE(snapshot->invalid.empty());
  EXPECT_EQ(snapshot->ServicesIn("default")->size(), 1U);
}

TEST_F(ViewTest, ClassifiesServicesOverARecordLimitAndShowsThemClamped) {
  View view(*store_, Keys());
  Service long_name = MakeService(std::string(300, 'n'), "default", "http://a.example.com");
  Service big_label = MakeService("big", "default", "http://b.example.com");
  big_label.labels = {{"blob", std::string(3 << 20, 'x')}, {"team", "sre"}};
  Service good = MakeService("good", "default", "http://c.example.com");
  for (const Service& service : {long_name, big_label}) {
    ASSERT_THAT(store::Put(*store_, Keys().Service("default", service.id), EncodeService(service)),
                IsOk());
  }
  std::shared_ptr<const Snapshot> snapshot = At(view, repo_->PutService(good));

  EXPECT_EQ(snapshot->ServicesIn("default")->size(), 1U);
  EXPECT_NE(snapshot->FindService("default", good.id), nullptr);
  EXPECT_THAT(snapshot->invalid,
              UnorderedElementsAre(
                  Pair(Keys().Service("default", long_name.id),
                       Field(&InvalidRecord::reason, "name is 300 bytes; the limit is 200")),
                  Pair(Keys().Service("default", big_label.id),
                       Field(&InvalidRecord::reason,
                             "label value of 'blob' is 3145728 bytes; the limit is 4096"))));
  EXPECT_THAT(InvalidRecordCounts(*snapshot), ElementsAre(Pair(Pair("service", "default"), 2)));
  const InvalidRecord& big = snapshot->invalid.at(Keys().Service("default", big_label.id));
  ASSERT_NE(big.service, nullptr);
  EXPECT_EQ(big.service->labels.at("blob").size(), kMaxLabelValueBytes);
  EXPECT_EQ(big.service->labels.at("team"), "sre");
}

TEST_F(ViewTest, BoundsTheReasonOfAHugeEndpoint) {
  View view(*store_, Keys());
  Service service = MakeService("huge", "default", "http://a.example.com");
  service.endpoint = "x:" + std::string(1 << 20, 'y');
  absl::StatusOr<store::TxnResult> put =
      store::Put(*store_, Keys().Service("default", service.id), EncodeService(service));
  ASSERT_THAT(put, IsOk());
  std::shared_ptr<const Snapshot> snapshot = At(view, put->revision);
  ASSERT_EQ(snapshot->invalid.size(), 1U);
  const InvalidRecord& record = snapshot->invalid.begin()->second;
  EXPECT_LT(record.reason.size(), 1100U);
  EXPECT_THAT(record.reason, HasSubstr("bytes)"));
  EXPECT_EQ(record.service->endpoint.size(), kMaxLabelValueBytes);
}

// An invalid record is logged when the view first sees it at a revision, not for every snapshot.
TEST_F(ViewTest, LogsAnInvalidRecordOncePerRevision) {
  std::ostringstream log;
  InitLogging({.format = LogOptions::Format::kJson, .output = &log});
  const std::string key = Keys().Service("default", ServiceId("localhost:9100"));
  const std::string legacy = R"({"id":")" + ServiceId("localhost:9100") +
                             R"(","namespace":"default","endpoint":"localhost:9100"})";
  {
    View view(*store_, Keys());
    ASSERT_THAT(store::Put(*store_, key, legacy), IsOk());
    for (int i = 0; i < 3; ++i) {
      At(view, repo_->PutNamespace({.name = "n" + std::to_string(i)}));
    }
    ASSERT_THAT(store::Put(*store_, key, legacy), IsOk());  // a new revision of the same record
    At(view, repo_->PutNamespace({.name = "last"}));
  }
  InitLogging({});
  const std::string text = log.str();
  size_t count = 0;
  for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 2U) << text;
  EXPECT_THAT(text, HasSubstr("stored record left out"));
}

TEST_F(ViewTest, IgnoresKeysOutsideItsPrefix) {
  View view(*store_, Keys());
  ASSERT_THAT(store::Put(*store_, "/other/server/v1/p1", "{}"), IsOk());
  std::shared_ptr<const Snapshot> snapshot = At(view, repo_->PutNamespace({.name = "n"}));
  EXPECT_TRUE(snapshot->servers.empty());
  EXPECT_TRUE(snapshot->invalid.empty());
}

TEST_F(ViewTest, TellsItsListenerAboutEverySnapshot) {
  std::atomic<int64_t> last_seen{0};
  View view(*store_, Keys(), {}, [&last_seen](const std::shared_ptr<const Snapshot>& snapshot) {
    last_seen = snapshot->revision;
  });
  absl::StatusOr<int64_t> revision = repo_->PutNamespace({.name = "n"});
  ASSERT_THAT(revision, IsOk());
  ASSERT_TRUE(view.WaitForRevision(*revision, kWait));
  // The listener runs right after publishing, on the view's thread.
  const absl::Time deadline = absl::Now() + kWait;
  while (last_seen < *revision && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_GE(last_seen, *revision);
}

// Wraps a real store to inject the two situations a view must recover from: a first watch that
// reports compaction, and range reads that fail for a while.
class FlakyStore : public store::Store {
 public:
  explicit FlakyStore(store::Store& inner) : inner_(inner) {}

  void FailRanges(int count) { failing_ranges_ = count; }
  // The next read in batches hands on `batches` batches, then fails.
  void FailNextReadAfterBatches(int batches) { fail_after_batches_ = batches; }
  int failed_reads() const { return failed_reads_; }
  void CompactFirstWatch() { compact_next_watch_ = true; }
  void FailRevisions(bool fail) { failing_revisions_ = fail; }
  int watches() const { return watches_; }

  absl::StatusOr<store::KeyValue> Get(std::string_view key) override { return inner_.Get(key); }
  absl::StatusOr<store::RangeResult> Range(std::string_view prefix) override {
    if (failing_ranges_.fetch_sub(1) > 0) {
      return absl::UnavailableError("store unreachable (injected)");
    }
    return inner_.Range(prefix);
  }
  absl::StatusOr<int64_t> RangeInBatches(std::string_view prefix, size_t batch_size,
                                         const ConsumeBatch& consume) override {
    const int fail_after = fail_after_batches_.exchange(-1);
    if (fail_after < 0) {
      return Store::RangeInBatches(prefix, batch_size, consume);
    }
    int handed_on = 0;
    absl::Status status =
        Store::RangeInBatches(prefix, batch_size, [&](std::vector<store::KeyValue> batch) {
          if (handed_on++ < fail_after) {
            consume(std::move(batch));
          }
        }).status();
    ++failed_reads_;
    return status.ok() ? absl::UnavailableError("store went away mid-read (injected)") : status;
  }
  absl::StatusOr<store::TxnResult> Commit(const store::Txn& txn) override {
    return inner_.Commit(txn);
  }
  absl::StatusOr<std::unique_ptr<store::WatchHandle>> Watch(
      std::string_view prefix, int64_t start_revision, store::WatchCallback callback) override {
    ++watches_;
    if (compact_next_watch_.exchange(false)) {
      // Delivered before returning, like a backend that learns of compaction at once.
      callback({.revision = start_revision, .compact_revision = start_revision});
      return std::make_unique<store::WatchHandle>();
    }
    return inner_.Watch(prefix, start_revision, std::move(callback));
  }
  absl::StatusOr<int64_t> CurrentRevision() override {
    if (failing_revisions_) {
      return absl::DeadlineExceededError("store does not answer (injected)");
    }
    return inner_.CurrentRevision();
  }

 private:
  store::Store& inner_;
  std::atomic<int> failing_ranges_{0};
  std::atomic<int> fail_after_batches_{-1};
  std::atomic<int> failed_reads_{0};
  std::atomic<bool> compact_next_watch_{false};
  std::atomic<bool> failing_revisions_{false};
  std::atomic<int> watches_{0};
};

TEST_F(ViewTest, LoadsAgainWhenItsWatchStartIsCompacted) {
  FlakyStore flaky(*store_);
  flaky.CompactFirstWatch();
  View view(flaky, Keys());
  const absl::Time deadline = absl::Now() + kWait;
  while (flaky.watches() < 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_GE(flaky.watches(), 2) << "the view did not watch again after compaction";
  // The second watch follows the store.
  std::shared_ptr<const Snapshot> snapshot = At(view, repo_->PutNamespace({.name = "after"}));
  EXPECT_THAT(snapshot->namespaces, ElementsAre(Key("after")));
}

TEST_F(ViewTest, ReportsStoreErrorsAndRecovers) {
  FlakyStore flaky(*store_);
  flaky.FailRanges(3);
  View view(flaky, Keys(), {.retry_backoff = absl::Milliseconds(1)});
  std::shared_ptr<const Snapshot> snapshot = At(view, repo_->PutNamespace({.name = "n"}));
  EXPECT_THAT(snapshot->namespaces, ElementsAre(Key("n")));
  EXPECT_THAT(view.Health(), IsOk());
  EXPECT_EQ(view.FailedReads(), 3);
}

TEST_F(ViewTest, IsUnhealthyAndEmptyWhileTheStoreIsUnreachable) {
  FlakyStore flaky(*store_);
  flaky.FailRanges(1000000);
  View view(flaky, Keys(), {.retry_backoff = absl::Milliseconds(1)});
  EXPECT_FALSE(view.WaitForRevision(1, absl::Milliseconds(50)));
  EXPECT_EQ(view.Current(), nullptr);
  EXPECT_THAT(view.Health(), ::discovery::testing::StatusIs(absl::StatusCode::kUnavailable));
}

// A watch stays silent while its store is unreachable; the probe notices, and the last snapshot
// stays readable meanwhile.
TEST_F(ViewTest, ProbesAQuietStoreAndKeepsItsLastSnapshotWhileItIsUnreachable) {
  FlakyStore flaky(*store_);
  View view(flaky, Keys(), {.store_probe_interval = absl::Milliseconds(5)});
  std::shared_ptr<const Snapshot> before = At(view, repo_->PutNamespace({.name = "n"}));
  flaky.FailRevisions(true);
  auto health_is = [&view](absl::StatusCode code) {
    const absl::Time deadline = absl::Now() + kWait;
    while (view.Health().code() != code && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    return view.Health().code() == code;
  };
  ASSERT_TRUE(health_is(absl::StatusCode::kDeadlineExceeded)) << view.Health();
  EXPECT_EQ(view.Current(), before);
  flaky.FailRevisions(false);
  EXPECT_TRUE(health_is(absl::StatusCode::kOk)) << view.Health();
}

}  // namespace
}  // namespace discovery::repo

namespace discovery::repo {
namespace {

// A load large enough to be classified by several threads keeps every record in its place and
// sets aside exactly the invalid ones with their reasons, whichever thread decoded them.
TEST_F(ViewTest, ALargeLoadKeepsEveryRecordInItsPlace) {
  constexpr int kRecords = 3 * 4096;
  std::map<std::string, Service> valid;        // by key
  std::map<std::string, std::string> invalid;  // key -> what the reason contains
  int64_t revision = 0;
  for (int begin = 0; begin < kRecords; begin += 500) {
    store::Txn txn;
    for (int i = begin; i < std::min(kRecords, begin + 500); ++i) {
      const std::string ns = i % 3 == 0 ? "one" : "two";
      Service service = MakeService(absl::StrCat("s", i), ns,
                                    absl::StrCat("http://host", i, ".example.com/metrics"));
      service.labels = {{"team", absl::StrCat("t", i % 7)}};
      std::string key = Keys().Service(ns, service.id);
      std::string value = EncodeService(service);
      switch (i % 97) {
        case 5:
          value = "{";
          invalid[key] = "not valid JSON";
          break;
        case 11:
          key = Keys().Service("elsewhere", service.id);
          invalid[key] = "does not match its key";
          break;
        case 13:
          service.endpoint = "localhost:9100";
          value = EncodeService(service);
          invalid[key] = std::string{CheckStoredService(service).message()};
          ASSERT_FALSE(invalid[key].empty());
          break;
        default:
          valid[key] = service;
          break;
      }
      txn.ops.push_back(store::Op::Put(std::move(key), std::move(value)));
    }
    absl::StatusOr<store::TxnResult> result = store_->Commit(txn);
    ASSERT_THAT(result, IsOk());
    revision = result->revision;
  }
  View view(*store_, Keys());
  const std::shared_ptr<const Snapshot> loaded = At(view, revision);

  ASSERT_NE(loaded, nullptr);
  EXPECT_EQ(loaded->ServiceCount(), valid.size());
  // Built from priorities hashed while classifying: every later update and diff relies on the
  // maps having the one shape of their keys.
  ASSERT_EQ(loaded->services.size(), 2);
  for (const auto& [ns, services] : loaded->services) {
    EXPECT_TRUE(services.Valid()) << ns;
  }
  for (const auto& [key, service] : valid) {
    const Service* found = loaded->FindService(service.namespace_name, service.id);
    ASSERT_NE(found, nullptr) << key;
    EXPECT_EQ(*found, service) << key;
  }
  ASSERT_EQ(loaded->invalid.size(), invalid.size());
  for (const auto& [key, reason] : invalid) {
    ASSERT_TRUE(loaded->invalid.contains(key)) << key;
    const InvalidRecord& record = loaded->invalid.at(key);
    EXPECT_EQ(record.kind, "service") << key;
    EXPECT_THAT(record.reason, HasSubstr(reason)) << key;
    ASSERT_NE(record.service, nullptr) << key;
    EXPECT_EQ(Keys().Service(record.service->namespace_name, record.service->id), key);
  }
}

// A read that fails after some batches were handed on leaves nothing of them behind: the view
// reports the failure, reads again and serves exactly the store's records.
TEST_F(ViewTest, AReadFailingHalfWayIsReadAgainWhole) {
  constexpr int kRecords = 3 * 4096;  // batches enough to start the classifying threads
  int64_t revision = 0;
  for (int begin = 0; begin < kRecords; begin += 1000) {
    store::Txn txn;
    for (int i = begin; i < std::min(kRecords, begin + 1000); ++i) {
      const Service service = MakeService(absl::StrCat("s", i), "default",
                                          absl::StrCat("http://host", i, ".example.com/metrics"));
      txn.ops.push_back(
          store::Op::Put(Keys().Service("default", service.id), EncodeService(service)));
    }
    absl::StatusOr<store::TxnResult> result = store_->Commit(txn);
    ASSERT_THAT(result, IsOk());
    revision = result->revision;
  }
  FlakyStore flaky(*store_);
  flaky.FailNextReadAfterBatches(2);
  View view(flaky, Keys(), {.retry_backoff = absl::Milliseconds(1)});
  const std::shared_ptr<const Snapshot> loaded = At(view, revision);
  ASSERT_NE(loaded, nullptr);
  EXPECT_EQ(flaky.failed_reads(), 1);
  EXPECT_EQ(view.FailedReads(), 1);
  EXPECT_EQ(loaded->ServiceCount(), static_cast<size_t>(kRecords));
  EXPECT_THAT(view.Health(), IsOk());
}

// Services with a TTL against a clock the test moves; the store never expires them itself.
class ViewExpiryTest : public ViewTest {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<store::Store>> store =
        store::OpenEmbeddedStore({.reap_interval = absl::ZeroDuration(), .renew_in_place = false});
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    repo_ = std::make_unique<Repository>(*store_, Keys());
  }

  ViewOptions Options() {
    return {.store_probe_interval = absl::Milliseconds(5), .clock = [this] {
              absl::MutexLock lock(&mu_);
              return now_;
            }};
  }

  void SetNow(absl::Time now) {
    absl::MutexLock lock(&mu_);
    now_ = now;
  }

  static Service Expiring(std::string endpoint, absl::Time expires) {
    Service service = MakeService("node", "default", std::move(endpoint));
    service.ttl = absl::Seconds(30);
    service.expires = expires;
    return service;
  }

  // Waits until the view no longer shows `service` and returns that snapshot.
  static std::shared_ptr<const Snapshot> Without(const View& view, const Service& service) {
    std::shared_ptr<const Snapshot> snapshot;
    ::discovery::testing::Eventually(
        [&] {
          snapshot = view.Current();
          return snapshot->FindService(service.namespace_name, service.id) == nullptr;
        },
        kWait);
    EXPECT_EQ(snapshot->FindService(service.namespace_name, service.id), nullptr)
        << service.endpoint << " is still shown";
    return snapshot;
  }

  // Far from the real clock: the real time never decides anything here.
  const absl::Time t0_ = absl::Now() + absl::Hours(24);
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = t0_;
};

TEST_F(ViewExpiryTest, RemovesAServiceAtItsDeadlineAndNotAgainWhenTheStoreDeletesIt) {
  View view(*store_, Keys(), Options());
  const Service a = Expiring("http://a:9100", t0_ + absl::Seconds(30));
  const Service b = Expiring("http://b:9100", t0_ + absl::Seconds(60));
  const Service c = MakeService("node", "default", "http://c:9100");
  const absl::StatusOr<int64_t> a_revision = repo_->PutService(a);
  ASSERT_THAT(repo_->PutService(b), IsOk());
  std::shared_ptr<const Snapshot> snapshot = At(view, repo_->PutService(c));
  EXPECT_EQ(snapshot->ServiceCount(), 3U);
  EXPECT_EQ(snapshot->services_with_ttl, 2);
  EXPECT_EQ(snapshot->TtlServiceRevision("default", a.id), *a_revision);
  EXPECT_EQ(snapshot->TtlServiceRevision("default", c.id), std::nullopt);

  SetNow(t0_ + absl::Seconds(30));
  snapshot = Without(view, a);
  EXPECT_EQ(snapshot->ServiceCount(), 2U);
  EXPECT_EQ(snapshot->services_with_ttl, 1);
  EXPECT_EQ(snapshot->expired_services, 1);
  EXPECT_EQ(snapshot->TtlServiceRevision("default", a.id), std::nullopt);

  snapshot = At(view, repo_->DeleteService("default", a.id));
  EXPECT_EQ(snapshot->ServiceCount(), 2U);
  EXPECT_EQ(snapshot->expired_services, 1);
}

TEST_F(ViewExpiryTest, ARenewalBeforeTheDeadlineWinsAndOneAfterItComesBack) {
  View view(*store_, Keys(), Options());
  const Service a = Expiring("http://a:9100", t0_ + absl::Seconds(30));
  const Service b = Expiring("http://b:9100", t0_ + absl::Seconds(30));
  ASSERT_THAT(repo_->PutService(a), IsOk());
  ASSERT_THAT(repo_->PutService(b), IsOk());
  SetNow(t0_ + absl::Seconds(20));
  const Service renewed = Expiring("http://b:9100", t0_ + absl::Seconds(50));
  const absl::StatusOr<int64_t> renewal = repo_->PutService(renewed);
  At(view, renewal);

  // Both deadlines of t0 + 30 s are removed in one pass: once a is gone, b would be too.
  SetNow(t0_ + absl::Seconds(30));
  std::shared_ptr<const Snapshot> snapshot = Without(view, a);
  ASSERT_NE(snapshot->FindService("default", b.id), nullptr);
  EXPECT_EQ(*snapshot->FindService("default", b.id), renewed);
  EXPECT_EQ(snapshot->TtlServiceRevision("default", b.id), *renewal);
  EXPECT_EQ(snapshot->expired_services, 1);

  // Registered again after the view removed it: shown again, until its new deadline.
  const Service again = Expiring("http://a:9100", t0_ + absl::Seconds(60));
  snapshot = At(view, repo_->PutService(again));
  ASSERT_NE(snapshot->FindService("default", a.id), nullptr);
  EXPECT_EQ(snapshot->services_with_ttl, 2);
  SetNow(t0_ + absl::Seconds(60));
  snapshot = Without(view, again);
  snapshot = Without(view, renewed);
  EXPECT_EQ(snapshot->expired_services, 3);
  EXPECT_EQ(snapshot->services_with_ttl, 0);
}

TEST_F(ViewExpiryTest, ALoadLeavesOutWhatIsPastItsDeadline) {
  const Service a = Expiring("http://a:9100", t0_ + absl::Seconds(30));
  const Service b = Expiring("http://b:9100", t0_ + absl::Seconds(60));
  ASSERT_THAT(repo_->PutService(a), IsOk());
  const absl::StatusOr<int64_t> revision = repo_->PutService(b);
  SetNow(t0_ + absl::Seconds(45));
  ViewOptions options = Options();
  options.store_probe_interval = absl::Hours(1);
  View view(*store_, Keys(), options);
  std::shared_ptr<const Snapshot> snapshot = At(view, revision);
  EXPECT_EQ(snapshot->FindService("default", a.id), nullptr);
  EXPECT_NE(snapshot->FindService("default", b.id), nullptr);
  EXPECT_EQ(snapshot->expired_services, 1);
  EXPECT_EQ(snapshot->services_with_ttl, 1);
}

TEST_F(ViewExpiryTest, QuickSuccessiveWritesEndWhereTheStoreDoes) {
  View view(*store_, Keys(), Options());
  // Writes committed without waiting for the view reach it in batches, in which the puts of
  // services without a TTL are applied to their namespace together; here ids recur, gain and
  // lose their TTL and go within a batch.
  struct Expected {
    std::string name;
    bool ttl = false;
  };
  std::map<std::pair<std::string, std::string>, Expected> expected;  // by namespace and id
  std::mt19937 random(15);
  absl::StatusOr<int64_t> revision;
  for (int i = 0; i < 800; ++i) {
    const std::string ns = random() % 2 == 0 ? "ns-a" : "ns-b";
    Service service =
        random() % 3 == 0
            ? Expiring(absl::StrCat("http://host", random() % 12, ":9100"), t0_ + absl::Hours(1))
            : MakeService("node", "default", absl::StrCat("http://host", random() % 12, ":9100"));
    service.namespace_name = ns;
    service.name = absl::StrCat("job", i);
    const std::pair<std::string, std::string> key{ns, service.id};
    if (expected.contains(key) && random() % 4 == 0) {
      revision = repo_->DeleteService(ns, service.id);
      expected.erase(key);
    } else {
      revision = repo_->PutService(service);
      expected[key] = {.name = service.name, .ttl = service.HasTtl()};
    }
    ASSERT_THAT(revision, IsOk());
  }
  std::shared_ptr<const Snapshot> snapshot = At(view, revision);
  EXPECT_EQ(snapshot->ServiceCount(), expected.size());
  int64_t with_ttl = 0;
  for (const auto& [key, want] : expected) {
    const auto& [ns, id] = key;
    const Service* service = snapshot->FindService(ns, id);
    ASSERT_NE(service, nullptr) << ns << " " << id;
    EXPECT_EQ(service->name, want.name);
    EXPECT_EQ(service->HasTtl(), want.ttl);
    EXPECT_EQ(snapshot->TtlServiceRevision(ns, id).has_value(), want.ttl);
    with_ttl += want.ttl ? 1 : 0;
  }
  for (const auto& [ns, services] : snapshot->services) {
    EXPECT_TRUE(services.Valid()) << ns;
  }
  EXPECT_EQ(snapshot->services_with_ttl, with_ttl);

  // Every deadline the view still holds is one of a service it shows with a TTL.
  SetNow(t0_ + absl::Hours(2));
  ::discovery::testing::Eventually([&] { return view.Current()->services_with_ttl == 0; }, kWait);
  snapshot = view.Current();
  EXPECT_EQ(snapshot->expired_services, with_ttl);
  EXPECT_EQ(snapshot->ServiceCount(), expected.size() - static_cast<size_t>(with_ttl));
}

}  // namespace
}  // namespace discovery::repo
