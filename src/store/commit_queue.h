// The leader/follower protocol of a group commit, shared by the store backends: concurrent
// Commit() calls queue up, one of them (the leader) takes a batch off the front and applies it
// while the others wait, and when it is done the oldest caller still queued leads the next
// batch. Which calls go into a batch and how a batch is applied is the backend's.
#pragma once

#include <cstddef>
#include <deque>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace discovery::store {

// `Pending` is a caller's entry, living on its stack while it waits; the queue reads and writes
// its `done` and `lead` flags (bool) under its own lock only. Thread-safe.
template <typename Pending>
class CommitQueue {
 public:
  // Queues `self` and returns once it has been applied, by this caller or another one. A caller
  // that leads calls `take(queue)` under the queue's lock (it must take the front entry, may take
  // more from the front, and returns them in order), then `apply(batch)` without it; `apply`
  // answers every entry of the batch before it returns.
  template <typename Take, typename Apply>
  void Commit(Pending& self, Take take, Apply apply) {
    std::vector<Pending*> batch;
    {
      absl::MutexLock lock(&mu_);
      queue_.push_back(&self);
      if (leader_active_) {
        // Another caller is applying a batch: ours is in a later one, or this caller leads it.
        mu_.Await(absl::Condition(
            +[](Pending* pending) { return pending->done || pending->lead; }, &self));
        if (self.done) {
          return;
        }
      } else {
        leader_active_ = true;
      }
      batch = take(queue_);
    }
    apply(batch);
    absl::MutexLock lock(&mu_);
    // The followers return (and their entries go) once this lock is released.
    for (Pending* pending : batch) {
      pending->done = true;
    }
    if (queue_.empty()) {
      leader_active_ = false;
    } else {
      queue_.front()->lead = true;
    }
  }

  // Calls queued right now and not yet taken into a batch.
  size_t queued() const {
    absl::MutexLock lock(&mu_);
    return queue_.size();
  }

 private:
  mutable absl::Mutex mu_;
  // Oldest first. While it is not empty a leader is active (applying a batch, or promoted and
  // about to take the next).
  std::deque<Pending*> queue_ ABSL_GUARDED_BY(mu_);
  bool leader_active_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace discovery::store
