// The group commit shared by the store backends: commits queue up, and the queue's own thread
// (the committer) takes a batch off the front, applies it and answers every entry of it; the
// commits that arrive meanwhile form the next batch. One batch is applied at a time: several in
// flight made each smaller and measured slower on etcd (D41), and SQLite applies them one after
// another anyway. A caller either waits for its entry (Commit) or hands over a continuation that
// the committer runs once the entry is answered (Submit), so a server need not hold a thread
// per write in flight. Which entries form a batch and how a batch is applied is the backend's.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

#include "common/thread_name.h"
#include "store/store.h"

namespace discovery::store {

// `Pending` is an entry: its owner keeps it alive until it is answered. The queue reads and
// writes its `done` flag (bool) under its own lock only, and takes its `then` continuation
// (absl::AnyInvocable<void() &&>, empty for Commit) before it runs it. Thread-safe.
template <typename Pending>
class CommitQueue {
 public:
  using Batch = std::vector<Pending*>;

  // `take(queue)` runs on the committer under the queue's lock: it must take the front entry,
  // may take more from the front, and returns them in order. `apply(batch)` runs on the
  // committer without the lock and answers every entry of the batch.
  CommitQueue(std::function<Batch(std::deque<Pending*>&)> take,
              std::function<void(const Batch&)> apply)
      : take_(std::move(take)),
        apply_(std::move(apply)),
        committer_([this](const std::stop_token&) {
          NameThisThread("store-commit");
          Run();
        }) {}

  // Applies what is queued, then stops the committer.
  ~CommitQueue() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    committer_.join();
  }

  CommitQueue(const CommitQueue&) = delete;
  CommitQueue& operator=(const CommitQueue&) = delete;
  CommitQueue(CommitQueue&&) = delete;
  CommitQueue& operator=(CommitQueue&&) = delete;

  // Queues `self` and returns once it has been answered.
  void Commit(Pending& self) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(&self);
    mu_.Await(absl::Condition(&IsDone, &self));
  }

  // Queues `entry` and returns at once. Once the entry is answered, the committer runs `then`,
  // which may destroy the entry; the next batch waits for it, so it must not block for long.
  void Submit(Pending& entry, absl::AnyInvocable<void() &&> then) ABSL_LOCKS_EXCLUDED(mu_) {
    entry.then = std::move(then);
    absl::MutexLock lock(&mu_);
    queue_.push_back(&entry);
  }

  // Entries queued right now and not yet taken into a batch.
  size_t queued() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return queue_.size();
  }

 private:
  // Await evaluates it with the queue's lock held, which the analysis cannot see.
  static bool IsDone(Pending* pending) ABSL_NO_THREAD_SAFETY_ANALYSIS { return pending->done; }

  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || stopping_;
  }

  void Run() ABSL_LOCKS_EXCLUDED(mu_) {
    while (true) {
      Batch batch;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &CommitQueue::HasWorkOrStopping));
        if (queue_.empty()) {
          return;  // stopping, and nothing is left to apply
        }
        batch = take_(queue_);
      }
      apply_(batch);
      // Continuations are taken out first: a submitted entry may be gone once its own has run.
      std::vector<absl::AnyInvocable<void() &&>> thens;
      {
        absl::MutexLock lock(&mu_);
        for (Pending* pending : batch) {
          if (pending->then) {
            thens.push_back(std::move(pending->then));
          } else {
            pending->done = true;  // its caller returns once the lock is released
          }
        }
      }
      for (absl::AnyInvocable<void() &&>& then : thens) {
        std::move(then)();
      }
    }
  }

  const std::function<Batch(std::deque<Pending*>&)> take_;
  const std::function<void(const Batch&)> apply_;
  mutable absl::Mutex mu_;
  // Oldest first: the entries not yet taken into a batch.
  std::deque<Pending*> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::jthread committer_;  // last: it uses the members above
};

// A Store::CommitAsync() call of a backend whose `Pending` entry points at its txn (`txn`):
// owns the txn and the caller's callback until the continuation answers it.
template <typename Pending>
struct AsyncCommit {
  AsyncCommit(Txn txn_in, Store::CommitCallback done_in)
      : txn(std::move(txn_in)), done(std::move(done_in)) {
    pending.txn = &txn;
  }
  ~AsyncCommit() = default;
  // `pending` points into this object.
  AsyncCommit(const AsyncCommit&) = delete;
  AsyncCommit& operator=(const AsyncCommit&) = delete;
  AsyncCommit(AsyncCommit&&) = delete;
  AsyncCommit& operator=(AsyncCommit&&) = delete;

  Txn txn;
  Store::CommitCallback done;
  Pending pending;
};

}  // namespace discovery::store
