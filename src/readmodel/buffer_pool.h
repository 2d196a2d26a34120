// Storage of large rendered answers, kept when the last holder of an answer lets go and handed to
// the next rendering. An http_sd answer of 100,000 targets is about 16 MB, and glibc returns a
// block that size to the kernel when it is freed: with a new string per answer, every rendering
// paid a page fault per 4 KiB page, and re-rendering ten such answers after a server join took
// 1.5 s instead of 0.9 s (README, Performance).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace discovery::readmodel {

// Thread-safe. Made with std::make_shared: shared buffers find their way back through a weak
// reference, so they may outlive the pool.
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  // Buffers of less than `min_capacity` bytes are not kept, nor more than `max_bytes` of them
  // together (the largest are preferred).
  BufferPool(size_t min_capacity, size_t max_bytes);

  // An empty string with room for `size` bytes: the smallest kept buffer that fits and is at
  // most half as large again, or a new one with some room to spare, so that the next version of
  // an answer, a little larger, fits it.
  std::string Take(size_t size);
  // `buffer` as a shared answer. Once the last copy of the pointer is gone its storage is kept
  // for Take, when it is large enough and there is room.
  std::shared_ptr<const std::string> Share(std::string buffer);

  // The bytes of storage kept right now, for tests.
  size_t KeptBytes() const;

 private:
  void Keep(std::string buffer);

  const size_t min_capacity_;
  const size_t max_bytes_;
  mutable absl::Mutex mu_;
  std::multimap<size_t, std::string> kept_ ABSL_GUARDED_BY(mu_);  // by capacity
  size_t kept_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace discovery::readmodel
