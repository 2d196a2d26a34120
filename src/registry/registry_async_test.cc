#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "registry/registry.h"
#include "registry/registry_test_fixture.h"
#include "store/store.h"
#include "testing/status_matchers.h"

// RegisterServiceAsync: who answers, when, and what a writer may read once answered.
namespace discovery::registry {
namespace {

// Collects the one answer of a RegisterServiceAsync call.
class Answer {
 public:
  Registry::RegisterCallback Callback() {
    return [this](absl::StatusOr<Service> result) {
      absl::MutexLock lock(&mu_);
      ++answers_;
      thread_ = std::this_thread::get_id();
      result_ = std::move(result);
      if (answers_ == 1) {
        answered_.Notify();
      }
    };
  }
  bool answered() const { return answered_.HasBeenNotified(); }
  absl::StatusOr<Service> Wait() {
    EXPECT_TRUE(answered_.WaitForNotificationWithTimeout(kWait));
    absl::MutexLock lock(&mu_);
    EXPECT_EQ(answers_, 1);
    return result_;
  }
  std::thread::id thread() {
    absl::MutexLock lock(&mu_);
    return thread_;
  }

 private:
  absl::Notification answered_;
  absl::Mutex mu_;
  int answers_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread::id thread_ ABSL_GUARDED_BY(mu_);
  absl::StatusOr<Service> result_ ABSL_GUARDED_BY(mu_) = absl::UnknownError("no answer");
};

TEST_F(RegistryTest, AnInvalidAsyncRegistrationIsAnsweredAtOnceOnTheCallersThread) {
  auto registry = Start();
  Answer answer;
  registry->RegisterServiceAsync(Target("localhost:9100"), answer.Callback());
  ASSERT_TRUE(answer.answered());
  EXPECT_EQ(answer.thread(), std::this_thread::get_id());
  EXPECT_THAT(answer.Wait(), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(RegistryTest, AnAsyncRegistrationIsAnsweredOnceTheViewShowsIt) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  Answer answer;
  absl::Notification checked;
  std::vector<Service> seen_when_answered;
  registry->RegisterServiceAsync(
      Target("http://host1:9100/metrics"),
      [&, done = answer.Callback()](absl::StatusOr<Service> result) mutable {
        // What the writer reads right after its answer includes its write.
        absl::StatusOr<std::vector<Service>> listed = registry->ListServices("");
        if (listed.ok()) {
          seen_when_answered = *listed;
        }
        std::move(done)(std::move(result));
        checked.Notify();
      });
  ASSERT_OK_AND_ASSIGN(const Service service, answer.Wait());
  checked.WaitForNotification();
  EXPECT_EQ(service.servers, std::vector<std::string>{"p1"});
  ASSERT_THAT(seen_when_answered, SizeIs(1));
  EXPECT_EQ(seen_when_answered[0].endpoint, "http://host1:9100/metrics");
  EXPECT_NE(answer.thread(), std::this_thread::get_id());
}

// Passes the store's watch responses through, except while paused: then the watch thread waits,
// as a store whose watch stopped delivering would leave the view behind.
class PausableWatchStore final : public store::Store {
 public:
  explicit PausableWatchStore(std::unique_ptr<store::Store> inner) : inner_(std::move(inner)) {}
  ~PausableWatchStore() override { Resume(); }
  PausableWatchStore(const PausableWatchStore&) = delete;
  PausableWatchStore& operator=(const PausableWatchStore&) = delete;
  PausableWatchStore(PausableWatchStore&&) = delete;
  PausableWatchStore& operator=(PausableWatchStore&&) = delete;

  absl::StatusOr<store::KeyValue> Get(std::string_view key) override { return inner_->Get(key); }
  absl::StatusOr<store::RangeResult> Range(std::string_view prefix) override {
    return inner_->Range(prefix);
  }
  absl::StatusOr<store::TxnResult> Commit(const store::Txn& txn) override {
    return inner_->Commit(txn);
  }
  void CommitAsync(store::Txn txn, CommitCallback done) override {
    inner_->CommitAsync(std::move(txn), std::move(done));
  }
  absl::StatusOr<std::unique_ptr<store::WatchHandle>> Watch(
      std::string_view prefix, int64_t start_revision, store::WatchCallback callback) override {
    return inner_->Watch(prefix, start_revision,
                         [this, callback = std::move(callback)](const store::WatchResponse& r) {
                           {
                             absl::MutexLock lock(&mu_);
                             mu_.Await(absl::Condition(this, &PausableWatchStore::Running));
                           }
                           callback(r);
                         });
  }
  absl::StatusOr<int64_t> CurrentRevision() override { return inner_->CurrentRevision(); }

  void Pause() {
    absl::MutexLock lock(&mu_);
    paused_ = true;
  }
  void Resume() {
    absl::MutexLock lock(&mu_);
    paused_ = false;
  }

 private:
  bool Running() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !paused_; }

  const std::unique_ptr<store::Store> inner_;
  absl::Mutex mu_;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
};

TEST_F(RegistryTest, AnAsyncRegistrationTheViewDoesNotReachIsAnsweredAfterTheViewWait) {
  auto paused = std::make_unique<PausableWatchStore>(std::move(store_));
  PausableWatchStore& store = *paused;
  store_ = std::move(paused);
  auto registry = Start({.view_wait = absl::Milliseconds(50)});
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());

  store.Pause();
  // Before the registry goes, even when an assertion failed: its view waits for the watch.
  absl::Cleanup resume = [&store] { store.Resume(); };
  Answer answer;
  registry->RegisterServiceAsync(Target("http://host1:9100/metrics"), answer.Callback());
  // The write is committed, so the writer hears of its success even though the view is stuck.
  ASSERT_OK_AND_ASSIGN(const Service service, answer.Wait());
  EXPECT_EQ(service.endpoint, "http://host1:9100/metrics");
  EXPECT_THAT(registry->ListServices(""), IsOkAndHolds(IsEmpty()));
}

}  // namespace
}  // namespace discovery::registry
