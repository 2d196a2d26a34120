#include "readmodel/buffer_pool.h"

#include <iterator>
#include <utility>
#include <vector>

namespace discovery::readmodel {

BufferPool::BufferPool(size_t min_capacity, size_t max_bytes)
    : min_capacity_(min_capacity), max_bytes_(max_bytes) {}

std::string BufferPool::Take(size_t size) {
  if (size >= min_capacity_) {
    absl::MutexLock lock(&mu_);
    // A buffer far larger than the answer would be held, wasted, for as long as the answer
    // lives: small answers taking the buffers of large ones would leave every large rendering
    // a new buffer, and the memory of many large answers in small ones.
    if (auto fits = kept_.lower_bound(size);
        fits != kept_.end() && fits->first <= size + size / 2) {
      std::string buffer = std::move(fits->second);
      kept_bytes_ -= fits->first;
      kept_.erase(fits);
      return buffer;
    }
  }
  std::string buffer;
  // An answer changes size by a few services at a time.
  buffer.reserve(size >= min_capacity_ ? size + size / 32 : size);
  return buffer;
}

std::shared_ptr<const std::string> BufferPool::Share(std::string buffer) {
  if (buffer.capacity() < min_capacity_) {
    return std::make_shared<const std::string>(std::move(buffer));
  }
  return std::shared_ptr<std::string>(new std::string(std::move(buffer)),
                                      [pool = weak_from_this()](std::string* shared) {
                                        const std::unique_ptr<std::string> owned(shared);
                                        if (std::shared_ptr<BufferPool> alive = pool.lock()) {
                                          alive->Keep(std::move(*owned));
                                        }
                                      });
}

size_t BufferPool::KeptBytes() const {
  absl::MutexLock lock(&mu_);
  return kept_bytes_;
}

void BufferPool::Keep(std::string buffer) {
  buffer.clear();
  const size_t capacity = buffer.capacity();
  // Freed after the lock is let go.
  std::vector<std::string> evicted;
  absl::MutexLock lock(&mu_);
  // Smaller buffers make room for a larger one, but only when letting them go makes enough.
  size_t smaller_bytes = 0;
  for (auto it = kept_.begin(); it != kept_.end() && it->first < capacity; ++it) {
    smaller_bytes += it->first;
  }
  if (kept_bytes_ - smaller_bytes + capacity > max_bytes_) {
    evicted.push_back(std::move(buffer));
    return;
  }
  while (kept_bytes_ + capacity > max_bytes_) {
    kept_bytes_ -= kept_.begin()->first;
    evicted.push_back(std::move(kept_.begin()->second));
    kept_.erase(kept_.begin());
  }
  kept_bytes_ += capacity;
  kept_.emplace(capacity, std::move(buffer));
}

}  // namespace discovery::readmodel
