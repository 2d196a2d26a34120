#include "cli/bulk.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cli/retry.h"

namespace discovery::cli {
namespace {

// How often the calling thread wakes without answers, to redraw the progress bar.
constexpr absl::Duration kTick = absl::Milliseconds(100);

// What the answers' threads and the calling thread share. Held by a shared_ptr in every pending
// answer's callback, so that it outlives a callback that runs late.
struct Answers {
  absl::Mutex mu;
  std::vector<std::pair<size_t, absl::Status>> received ABSL_GUARDED_BY(mu);
  size_t in_flight ABSL_GUARDED_BY(mu) = 0;
  size_t max_in_flight = 0;
  bool can_start ABSL_GUARDED_BY(mu) = false;  // calls that were never started are left

  bool Ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return !received.empty() || (can_start && in_flight < max_in_flight);
  }
};

struct Retry {
  size_t index;
  absl::Time due;
};

}  // namespace

size_t RunBulk(
    size_t count, const BulkOptions& options,
    const std::function<void(size_t index, std::function<void(absl::Status)> done)>& start,
    const std::function<void(size_t index, const absl::Status& status)>& finished,
    const std::function<void(size_t index, const absl::Status& failure, absl::Duration delay)>&
        retrying) {
  auto answers = std::make_shared<Answers>();
  answers->max_in_flight = std::max<size_t>(1, options.max_in_flight);
  std::vector<uint8_t> attempts(count, 0);
  std::vector<Retry> retries;
  absl::BitGen random;  // seeded from the OS: retries of many clients spread out
  size_t next = 0;      // the first call never started
  size_t done = 0;
  size_t failed = 0;
  while (done < count) {
    std::vector<std::pair<size_t, absl::Status>> received;
    std::vector<size_t> to_start;
    {
      absl::MutexLock lock(&answers->mu);
      answers->can_start = next < count;
      absl::Time wake = absl::Now() + kTick;
      for (const Retry& retry : retries) {
        wake = std::min(wake, retry.due);
      }
      answers->mu.AwaitWithDeadline(absl::Condition(answers.get(), &Answers::Ready), wake);
      received.swap(answers->received);
      const absl::Time now = absl::Now();
      // Retries first: their calls are the oldest.
      for (auto retry = retries.begin();
           retry != retries.end() && answers->in_flight < answers->max_in_flight;) {
        if (retry->due <= now) {
          to_start.push_back(retry->index);
          ++answers->in_flight;
          retry = retries.erase(retry);
        } else {
          ++retry;
        }
      }
      while (next < count && answers->in_flight < answers->max_in_flight) {
        to_start.push_back(next++);
        ++answers->in_flight;
      }
    }
    for (auto& [index, status] : received) {
      if (!status.ok() && IsTransient(status) && attempts[index] < options.retry_delays.size()) {
        const absl::Duration delay = Jittered(options.retry_delays[attempts[index]], random);
        ++attempts[index];
        retries.push_back({.index = index, .due = absl::Now() + delay});
        retrying(index, status, delay);
        continue;
      }
      ++done;
      if (!status.ok()) {
        ++failed;
      }
      finished(index, status);
    }
    for (const size_t index : to_start) {
      start(index, [answers, index](absl::Status status) {
        absl::MutexLock lock(&answers->mu);
        answers->received.emplace_back(index, std::move(status));
        --answers->in_flight;
      });
    }
    if (options.progress != nullptr) {
      options.progress->Update(done, failed, absl::Now(), /*force=*/done == count);
    }
  }
  return failed;
}

}  // namespace discovery::cli
