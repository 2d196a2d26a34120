#include "store/commit_queue.h"

#include <atomic>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace discovery::store {
namespace {

struct Entry {
  int id = 0;
  int applied = 0;  // written by the leader that applies it
  bool done = false;
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

// Runs `callers` threads committing one entry each through `queue`; every entry must come back
// applied exactly once. Returns the most batches seen being applied at once.
int CommitAll(
    CommitQueue<Entry>& queue, int callers, size_t batch_limit,
    const std::function<void()>& inside_apply = [] {}) {
  std::atomic<int> applying{0};
  std::atomic<int> most{0};
  std::vector<Entry> entries(static_cast<size_t>(callers));
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < callers; ++i) {
      entries[static_cast<size_t>(i)].id = i;
      threads.emplace_back([&, i] {
        queue.Commit(entries[static_cast<size_t>(i)], TakeUpTo(batch_limit),
                     [&](const std::vector<Entry*>& batch) {
                       const int now = ++applying;
                       int seen = most.load();
                       while (now > seen && !most.compare_exchange_weak(seen, now)) {
                       }
                       inside_apply();
                       for (Entry* entry : batch) {
                         ++entry->applied;
                       }
                       --applying;
                     });
        // Commit returns only once the entry is applied.
        EXPECT_EQ(entries[static_cast<size_t>(i)].applied, 1) << "entry " << i;
      });
    }
  }
  for (const Entry& entry : entries) {
    EXPECT_EQ(entry.applied, 1) << "entry " << entry.id;
    EXPECT_TRUE(entry.done) << "entry " << entry.id;
  }
  return most.load();
}

TEST(CommitQueueTest, OneLeaderAppliesOneBatchAtATime) {
  CommitQueue<Entry> queue;
  EXPECT_EQ(CommitAll(queue, 64, 8), 1);
  EXPECT_EQ(queue.queued(), 0u);
}

TEST(CommitQueueTest, SeveralLeadersApplyBatchesConcurrentlyUpToTheirNumber) {
  CommitQueue<Entry> queue(3);
  // The first applies wait until three are inside at once (a queue that never runs three
  // batches together makes them give up): a queue that serialised its batches would report 1,
  // one that ignored the bound more than 3.
  std::atomic<int> inside{0};
  std::atomic<bool> gave_up{false};
  absl::Notification three_inside;
  const int most = CommitAll(queue, 60, 1, [&] {
    if (++inside == 3) {
      three_inside.Notify();
    }
    if (!gave_up && !three_inside.WaitForNotificationWithTimeout(absl::Seconds(30))) {
      gave_up = true;
    }
  });
  EXPECT_FALSE(gave_up);
  EXPECT_EQ(most, 3);
  EXPECT_EQ(queue.queued(), 0u);
}

TEST(CommitQueueTest, CallersQueuedBehindABusyLeaderShareTheNextBatch) {
  CommitQueue<Entry> queue;
  std::atomic<int> batches{0};
  std::vector<size_t> batch_sizes;
  absl::Mutex sizes_mu;
  absl::Notification first_inside;
  absl::Notification release_first;
  auto apply = [&](const std::vector<Entry*>& batch) {
    if (batches++ == 0) {
      first_inside.Notify();
      release_first.WaitForNotification();
    }
    absl::MutexLock lock(&sizes_mu);
    batch_sizes.push_back(batch.size());
    for (Entry* entry : batch) {
      ++entry->applied;
    }
  };
  std::vector<Entry> entries(6);
  {
    std::vector<std::jthread> threads;
    threads.emplace_back([&] { queue.Commit(entries[0], TakeUpTo(10), apply); });
    first_inside.WaitForNotification();
    for (size_t i = 1; i < entries.size(); ++i) {
      threads.emplace_back([&, i] { queue.Commit(entries[i], TakeUpTo(10), apply); });
    }
    while (queue.queued() < entries.size() - 1) {
      std::this_thread::yield();
    }
    release_first.Notify();
  }
  EXPECT_EQ(batches.load(), 2);
  EXPECT_THAT(batch_sizes, ::testing::ElementsAre(1, 5));
  for (const Entry& entry : entries) {
    EXPECT_EQ(entry.applied, 1);
  }
}

}  // namespace
}  // namespace discovery::store
