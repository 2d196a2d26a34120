#include "repo/view.h"

#include <atomic>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "store/embedded/embedded_store.h"
#include "testing/status_matchers.h"

namespace discovery::repo {
namespace {

using ::discovery::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Key;

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
  EXPECT_EQ(snapshot->ServicesIn("default")->at(service.id), service);
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
  EXPECT_EQ(before->ServicesIn("ns-a"), after->ServicesIn("ns-a"));
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
  EXPECT_THAT(snapshot->undecodable,
              ElementsAre(::testing::Pair("/discovery/server/v1/p1", HasSubstr("state"))));

  snapshot = At(view, repo_->PutServer({.name = "p1"}));
  EXPECT_THAT(snapshot->servers, ElementsAre(Key("p1")));
  EXPECT_TRUE(snapshot->undecodable.empty());
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
  EXPECT_EQ(snapshot->undecodable.size(), 1U);
}

TEST_F(ViewTest, IgnoresKeysOutsideItsPrefix) {
  View view(*store_, Keys());
  ASSERT_THAT(store::Put(*store_, "/other/server/v1/p1", "{}"), IsOk());
  std::shared_ptr<const Snapshot> snapshot = At(view, repo_->PutNamespace({.name = "n"}));
  EXPECT_TRUE(snapshot->servers.empty());
  EXPECT_TRUE(snapshot->undecodable.empty());
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

}  // namespace
}  // namespace discovery::repo
