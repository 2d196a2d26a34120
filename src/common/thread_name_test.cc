#include "common/thread_name.h"

#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace discovery {
namespace {

// What ps and top read.
std::string KernelName(pid_t tid) {
  std::ifstream comm("/proc/self/task/" + std::to_string(tid) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

TEST(ThreadNameTest, NamesTheCallingThreadOnly) {
  const std::string before = ThisThreadName();
  std::string named;
  std::string seen_by_kernel;
  std::thread([&] {
    NameThisThread("store-commit");
    named = ThisThreadName();
    seen_by_kernel = KernelName(gettid());
  }).join();
  EXPECT_EQ(named, "store-commit");
  EXPECT_EQ(seen_by_kernel, "store-commit");
  EXPECT_EQ(ThisThreadName(), before);
}

TEST(ThreadNameTest, CutsALongNameAtTheKernelsLimit) {
  std::string named;
  std::thread([&] {
    NameThisThread("a-name-longer-than-fifteen-bytes");
    named = ThisThreadName();
  }).join();
  EXPECT_EQ(named, "a-name-longer-t");
}

}  // namespace
}  // namespace discovery
