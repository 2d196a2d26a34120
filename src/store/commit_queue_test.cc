#include "store/commit_queue.h"

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace discovery::store {
namespace {

using ::testing::ElementsAre;

struct Entry {
  int id = 0;
  int applied = 0;  // written by the committer that applies it
  bool done = false;
  absl::AnyInvocable<void() &&> then;
};

// Takes up to `limit` entries off the front.
auto TakeUpTo(size_t limit) {
  return [limit](std::deque<Entry*>& queue) {
    std::vector<Entry*> batch;
    while (!queue.empty() && batch.size() < limit) {
      batch.push_back(queue.front());
      queue.pop_front();
    }
    return batch;
  };
}

// Records the batches it applies; the first one waits for `release_first` when given.
class Applier {
 public:
  explicit Applier(absl::Notification* release_first = nullptr) : release_first_(release_first) {}

  void operator()(const std::vector<Entry*>& batch) {
    const int now = ++applying_;
    int seen = most_.load();
    while (now > seen && !most_.compare_exchange_weak(seen, now)) {
    }
    bool first = false;
    {
      absl::MutexLock lock(&mu_);
      first = sizes_.empty();
      sizes_.push_back(batch.size());
    }
    if (first && release_first_ != nullptr) {
      first_inside_.Notify();
      release_first_->WaitForNotification();
    }
    for (Entry* entry : batch) {
      ++entry->applied;
    }
    --applying_;
  }

  void WaitForFirstInside() { first_inside_.WaitForNotification(); }
  int most_at_once() const { return most_.load(); }
  std::vector<size_t> sizes() const {
    absl::MutexLock lock(&mu_);
    return sizes_;
  }

 private:
  absl::Notification* release_first_;
  absl::Notification first_inside_;
  std::atomic<int> applying_{0};
  std::atomic<int> most_{0};
  mutable absl::Mutex mu_;
  std::vector<size_t> sizes_ ABSL_GUARDED_BY(mu_);
};

TEST(CommitQueueTest, EveryCommitIsAppliedOnceOneBatchAtATime) {
  Applier applier;
  std::vector<Entry> entries(64);
  {
    CommitQueue<Entry> queue(TakeUpTo(8), std::ref(applier));
    std::vector<std::jthread> threads;
    for (size_t i = 0; i < entries.size(); ++i) {
      entries[i].id = static_cast<int>(i);
      threads.emplace_back([&, i] {
        queue.Commit(entries[i]);
        // Commit returns only once the entry is applied.
        EXPECT_EQ(entries[i].applied, 1) << "entry " << i;
      });
    }
    threads.clear();
    EXPECT_EQ(queue.queued(), 0U);
  }
  for (const Entry& entry : entries) {
    EXPECT_EQ(entry.applied, 1) << "entry " << entry.id;
    EXPECT_TRUE(entry.done) << "entry " << entry.id;
  }
  EXPECT_EQ(applier.most_at_once(), 1);
}

TEST(CommitQueueTest, CommitsQueuedBehindABusyBatchShareTheNextOne) {
  absl::Notification release_first;
  Applier applier(&release_first);
  std::vector<Entry> entries(6);
  {
    CommitQueue<Entry> queue(TakeUpTo(10), std::ref(applier));
    std::vector<std::jthread> threads;
    threads.emplace_back([&] { queue.Commit(entries[0]); });
    applier.WaitForFirstInside();
    for (size_t i = 1; i < entries.size(); ++i) {
      threads.emplace_back([&, i] { queue.Commit(entries[i]); });
    }
    while (queue.queued() < entries.size() - 1) {
      std::this_thread::yield();
    }
    release_first.Notify();
  }
  EXPECT_THAT(applier.sizes(), ElementsAre(1, 5));
  for (const Entry& entry : entries) {
    EXPECT_EQ(entry.applied, 1);
  }
}

TEST(CommitQueueTest, ASubmittedEntryContinuesOnTheCommitterOnceApplied) {
  Applier applier;
  CommitQueue<Entry> queue(TakeUpTo(10), std::ref(applier));
  constexpr int kEntries = 100;
  absl::Mutex mu;
  int continued = 0;
  std::vector<int> applied_when_continued;
  absl::Notification all_continued;
  for (int i = 0; i < kEntries; ++i) {
    // Owned by its continuation, which frees it: the queue must not touch it afterwards.
    auto* entry = new Entry{.id = i};
    queue.Submit(*entry, [&, entry, caller = std::this_thread::get_id()] {
      std::unique_ptr<Entry> owned(entry);
      EXPECT_NE(std::this_thread::get_id(), caller);
      EXPECT_FALSE(owned->done);
      absl::MutexLock lock(&mu);
      applied_when_continued.push_back(owned->applied);
      if (++continued == kEntries) {
        all_continued.Notify();
      }
    });
  }
  all_continued.WaitForNotification();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(applied_when_continued, std::vector<int>(kEntries, 1));
}

TEST(CommitQueueTest, DestroyingTheQueueAppliesWhatIsQueuedFirst) {
  absl::Notification release_first;
  Applier applier(&release_first);
  std::vector<Entry> entries(5);
  std::atomic<int> continued{0};
  std::optional<CommitQueue<Entry>> queue;
  queue.emplace(TakeUpTo(2), std::ref(applier));
  queue->Submit(entries[0], [&] { ++continued; });
  applier.WaitForFirstInside();
  for (size_t i = 1; i < entries.size(); ++i) {
    queue->Submit(entries[i], [&] { ++continued; });
  }
  std::jthread destroyer([&] { queue.reset(); });
  release_first.Notify();
  destroyer.join();
  EXPECT_EQ(continued.load(), 5);
  EXPECT_THAT(applier.sizes(), ElementsAre(1, 2, 2));
  for (const Entry& entry : entries) {
    EXPECT_EQ(entry.applied, 1);
  }
}

}  // namespace
}  // namespace discovery::store
