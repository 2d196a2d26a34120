#include "common/thread_name.h"

#include <pthread.h>

#include <array>
#include <string>
#include <string_view>

namespace discovery {
namespace {

// The kernel's limit for a thread's name (TASK_COMM_LEN), with its terminating NUL.
constexpr size_t kNameCapacity = 16;

}  // namespace

void NameThisThread(std::string_view name) {
  std::array<char, kNameCapacity> buffer{};
  name.copy(buffer.data(), buffer.size() - 1);
  // Fails only for a name over the limit, which the copy above rules out.
  pthread_setname_np(pthread_self(), buffer.data());
}

std::string ThisThreadName() {
  std::array<char, kNameCapacity> buffer{};
  if (pthread_getname_np(pthread_self(), buffer.data(), buffer.size()) != 0) {
    return "";
  }
  return buffer.data();
}

}  // namespace discovery
