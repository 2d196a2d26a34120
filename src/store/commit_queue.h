// The leader/follower protocol of a group commit, shared by the store backends: concurrent
// Commit() calls queue up, one of them (the leader) takes a batch off the front and applies it
// while the others wait, and when it is done a caller still queued leads the next batch. Up to
// `max_leaders` batches are applied at once (a pipeline): a backend whose batches are independent
// round trips (etcd) keeps several in flight, one that must apply them one after another (SQLite)
// keeps one. Which calls go into a batch and how a batch is applied is the backend's.
#pragma once

#include <cstddef>
#include <deque>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace discovery::store {

// `Pending` is a caller's entry, living on its stack while it waits; the queue reads and writes
// its `done` flag (bool) under its own lock only. Thread-safe.
template <typename Pending>
class CommitQueue {
 public:
  explicit CommitQueue(int max_leaders = 1) : max_leaders_(max_leaders < 1 ? 1 : max_leaders) {}

  // Queues `self` and returns once it has been applied, by this caller or another one. A caller
  // that finds a leader slot free leads: it calls `take(queue)` under the queue's lock (it must
  // take the front entry, may take more from the front, and returns them in order), then
  // `apply(batch)` without it; `apply` answers every entry of the batch before it returns. The
  // batch starts at the front, so a leader's own entry may be in a later batch: it then waits or
  // leads again.
  template <typename Take, typename Apply>
  void Commit(Pending& self, Take take, Apply apply) ABSL_LOCKS_EXCLUDED(mu_) {
    const Waiter waiter{.queue = this, .self = &self};
    mu_.Lock();
    queue_.push_back(&self);
    while (true) {
      mu_.Await(absl::Condition(&waiter, &Waiter::DoneOrCanLead));
      if (self.done) {
        break;
      }
      ++leaders_;
      std::vector<Pending*> batch = take(queue_);
      mu_.Unlock();
      apply(batch);
      mu_.Lock();
      // The callers of the batch return (and their entries go) once the lock is released.
      for (Pending* pending : batch) {
        pending->done = true;
      }
      --leaders_;
    }
    mu_.Unlock();
  }

  // Calls queued right now and not yet taken into a batch.
  size_t queued() const {
    absl::MutexLock lock(&mu_);
    return queue_.size();
  }

 private:
  struct Waiter {
    const CommitQueue* queue;
    const Pending* self;
    // Await evaluates it with the queue's lock held, which the analysis cannot see.
    bool DoneOrCanLead() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return self->done || (!queue->queue_.empty() && queue->leaders_ < queue->max_leaders_);
    }
  };

  mutable absl::Mutex mu_;
  const int max_leaders_;
  // Oldest first: the callers not yet taken into a batch.
  std::deque<Pending*> queue_ ABSL_GUARDED_BY(mu_);
  int leaders_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace discovery::store
