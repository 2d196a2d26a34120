#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "store/embedded/embedded_store.h"
#include "store/embedded/embedded_store_test_util.h"
#include "testing/status_matchers.h"
#include "testing/store_contract.h"

// The embedded store against other processes: acknowledged writes survive kill -9 of the writer,
// and watches see commits made through another process or store object on the same file.
namespace discovery::store {
namespace {

// Writes exactly `size` bytes or fails.
bool WriteAll(int fd, const void* data, size_t size) {
  const char* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t written = write(fd, bytes, size);
    if (written < 0 && errno == EINTR) {
      continue;
    }
    if (written <= 0) {
      return false;
    }
    bytes += written;
    size -= static_cast<size_t>(written);
  }
  return true;
}

// The child of the crash test: writes keys from `first` on forever, reporting each index on
// `fd` only after Commit acknowledged it. Never returns.
[[noreturn]] void WriteAcknowledgedKeys(const std::string& path, int64_t first, int fd) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenEmbeddedStore({.path = path});
  if (!store.ok()) {
    _exit(2);
  }
  for (int64_t i = first;; ++i) {
    if (!Put(**store, absl::StrCat("/crash/", i), absl::StrCat("value-", i)).ok()) {
      _exit(3);
    }
    if (!WriteAll(fd, &i, sizeof(i))) {
      _exit(4);
    }
  }
}

// Forks a child that runs `write_acks(fd)`: it writes an Ack to `fd` after each acknowledged
// commit and never returns. Reads the acks until EOF, handing each to `on_ack`, and kills the
// child with SIGKILL once `kill_after` have arrived. Fails the test unless the child died of that
// SIGKILL.
template <typename Ack>
void KillWriterAfter(int64_t kill_after, const std::function<void(int fd)>& write_acks,
                     const std::function<void(const Ack&)>& on_ack) {
  std::array<int, 2> fds{};
  ASSERT_EQ(pipe(fds.data()), 0);
  // Forked while this process has no store open and no threads of ours: SQLite must not be
  // carried across fork.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    write_acks(fds[1]);
    _exit(6);  // not reached: the writers never return
  }
  close(fds[1]);
  int64_t acks = 0;
  while (true) {
    Ack ack{};
    const ssize_t got = read(fds[0], &ack, sizeof(ack));
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got != static_cast<ssize_t>(sizeof(ack))) {
      break;  // EOF: the child is dead and every ack it sent has been read.
    }
    on_ack(ack);
    if (++acks == kill_after) {
      // Killed in the middle of its stream; acks already in the pipe are still read.
      ASSERT_EQ(kill(child, SIGKILL), 0);
    }
  }
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "child ended on its own, status " << status;
}

TEST_F(EmbeddedStoreTest, AcknowledgedWritesSurviveKillNine) {
  constexpr int kRounds = 3;
  constexpr int64_t kAcksBeforeKill = 40;
  std::filesystem::create_directories(TestDir());
  std::set<int64_t> acknowledged;
  int64_t next = 0;
  for (int round = 0; round < kRounds; ++round) {
    ASSERT_NO_FATAL_FAILURE(KillWriterAfter<int64_t>(
        kAcksBeforeKill, [&](int fd) { WriteAcknowledgedKeys(path_, next, fd); },
        [&](const int64_t& index) {
          acknowledged.insert(index);
          next = index + 1;
        }));

    EXPECT_EQ(IntegrityCheck(path_), "ok") << "round " << round;
    absl::StatusOr<std::unique_ptr<Store>> store = Open();
    ASSERT_THAT(store, IsOk()) << "round " << round;
    for (const int64_t i : acknowledged) {
      absl::StatusOr<KeyValue> kv = (*store)->Get(absl::StrCat("/crash/", i));
      ASSERT_THAT(kv, IsOk()) << "acknowledged key " << i << " lost in round " << round;
      EXPECT_EQ(kv->value, absl::StrCat("value-", i));
    }
  }
  EXPECT_GE(acknowledged.size(), static_cast<size_t>(kRounds * kAcksBeforeKill));
}

// A child process forked at construction, before the test opens the database or starts a
// thread: it waits for Go(), runs `body` (0 on success, another exit code naming what failed),
// acknowledges and exits with that code.
class ChildOnSignal {
 public:
  explicit ChildOnSignal(const std::function<int()>& body) {
    std::filesystem::create_directories(TestDir());
    if (pipe(go_.data()) != 0 || pipe(done_.data()) != 0) {
      return;
    }
    pid_ = fork();
    if (pid_ == 0) {
      close(go_[1]);
      close(done_[0]);
      char byte = 0;
      if (read(go_[0], &byte, 1) != 1) {
        _exit(2);
      }
      const int code = body();
      _exit(code != 0 ? code : (WriteAll(done_[1], &byte, 1) ? 0 : 4));
    }
    close(go_[0]);
    close(done_[1]);
  }
  ChildOnSignal(const ChildOnSignal&) = delete;
  ChildOnSignal& operator=(const ChildOnSignal&) = delete;
  ChildOnSignal(ChildOnSignal&&) = delete;
  ChildOnSignal& operator=(ChildOnSignal&&) = delete;
  ~ChildOnSignal() {
    if (pid_ > 0 && !finished_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  bool started() const { return pid_ > 0; }
  // Lets the child run its body.
  bool Go() {
    const char byte = 1;
    const bool sent = WriteAll(go_[1], &byte, 1);
    close(go_[1]);
    return sent;
  }
  // Whether the child acknowledged; then `*status` is its wait status.
  bool Finish(int* status) {
    char ack = 0;
    const bool acknowledged = read(done_[0], &ack, 1) == 1;
    close(done_[0]);
    finished_ = waitpid(pid_, status, 0) == pid_;
    return acknowledged && finished_;
  }

 private:
  std::array<int, 2> go_{};
  std::array<int, 2> done_{};
  pid_t pid_ = -1;
  bool finished_ = false;
};

TEST_F(EmbeddedStoreTest, WatchSeesCommitsOfAnotherProcess) {
  // The child waits for "go" so the watch is in place before it writes.
  ChildOnSignal child([this] {
    absl::StatusOr<std::unique_ptr<Store>> store = OpenEmbeddedStore({.path = path_});
    if (!store.ok() || !Put(**store, "/other/a", "1").ok() ||
        !(*store)->Commit({.ops = {Op::Put("/other/b", "2"), Op::Put("/other/c", "3")}}).ok()) {
      return 3;
    }
    return 0;
  });
  ASSERT_TRUE(child.started());

  absl::StatusOr<std::unique_ptr<Store>> store = Open();
  ASSERT_THAT(store, IsOk());
  WatchRecorder recorder;
  absl::StatusOr<std::unique_ptr<WatchHandle>> handle =
      (*store)->Watch("/other/", 0, recorder.Callback());
  ASSERT_THAT(handle, IsOk());
  ASSERT_TRUE(child.Go());

  // Picked up by polling; the wait's deadline only bounds a failing run.
  ASSERT_TRUE(recorder.WaitForEvents(3));
  const std::vector<WatchResponse> responses = recorder.Responses();
  std::vector<std::string> keys;
  for (const WatchEvent& event : recorder.Events()) {
    keys.push_back(event.kv.key);
  }
  EXPECT_THAT(keys, ElementsAre("/other/a", "/other/b", "/other/c"));
  // The child's two-key transaction arrives in one response.
  for (const WatchResponse& response : responses) {
    for (const WatchEvent& event : response.events) {
      if (event.kv.key == "/other/b") {
        EXPECT_EQ(response.events.back().kv.key, "/other/c");
      }
    }
  }

  int status = 0;
  EXPECT_TRUE(child.Finish(&status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
}

// SQLite's locks are POSIX locks, which a process loses on all of a file when it closes any
// descriptor of it. Opening the database again in this process (a second store object, and each
// store's own checkpoint connection) must leave them, or another process closing the database
// takes itself for its last user and deletes the write-ahead log this process still writes to.
TEST_F(EmbeddedStoreTest, AnotherProcessClosingTheDatabaseLeavesThisProcesssLog) {
  ChildOnSignal child([this] {
    absl::StatusOr<std::unique_ptr<Store>> store = OpenEmbeddedStore({.path = path_});
    return store.ok() && (*store)->Get("/kept/a").ok() ? 0 : 3;
  });  // closes the database on return
  ASSERT_TRUE(child.started());

  absl::StatusOr<std::unique_ptr<Store>> first = Open();
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(Put(**first, "/kept/a", "1"), IsOk());
  absl::StatusOr<std::unique_ptr<Store>> second = Open();
  ASSERT_THAT(second, IsOk());
  ASSERT_TRUE(std::filesystem::exists(path_ + "-wal"));

  ASSERT_TRUE(child.Go());
  int status = 0;
  EXPECT_TRUE(child.Finish(&status));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;

  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"))
      << "the other process deleted the log this one has open";
  ASSERT_THAT(Put(**first, "/kept/b", "2"), IsOk());
  first->reset();
  second->reset();
  EXPECT_EQ(IntegrityCheck(path_), "ok");
  absl::StatusOr<std::unique_ptr<Store>> reopened = Open();
  ASSERT_THAT(reopened, IsOk());
  EXPECT_THAT((*reopened)->Get("/kept/b"), IsOk());
}

TEST_F(EmbeddedStoreTest, TwoStoreObjectsOnOneFileWatchEachOther) {
  absl::StatusOr<std::unique_ptr<Store>> first = Open();
  absl::StatusOr<std::unique_ptr<Store>> second = Open();
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(second, IsOk());
  WatchRecorder on_first;
  WatchRecorder on_second;
  absl::StatusOr<std::unique_ptr<WatchHandle>> first_handle =
      (*first)->Watch("/", 0, on_first.Callback());
  absl::StatusOr<std::unique_ptr<WatchHandle>> second_handle =
      (*second)->Watch("/", 0, on_second.Callback());
  ASSERT_THAT(first_handle, IsOk());
  ASSERT_THAT(second_handle, IsOk());

  ASSERT_THAT(Put(**first, "/from-first", "1"), IsOk());
  ASSERT_THAT(Put(**second, "/from-second", "2"), IsOk());
  ASSERT_TRUE(on_first.WaitForEvents(2));
  ASSERT_TRUE(on_second.WaitForEvents(2));
  for (const WatchRecorder* recorder : {&on_first, &on_second}) {
    const std::vector<WatchEvent> events = recorder->Events();
    ASSERT_EQ(events.size(), 2U);
    EXPECT_EQ(events[0].kv.key, "/from-first");
    EXPECT_EQ(events[1].kv.key, "/from-second");
  }
}

// What a writer of the concurrent crash test reports: (thread, index) of an acknowledged key.
using ThreadAck = std::array<int64_t, 2>;

// The child of the concurrent crash test: kThreads threads write keys forever, each reporting
// (thread, index) on `fd` only after Commit acknowledged it. Never returns.
[[noreturn]] void WriteAcknowledgedKeysConcurrently(const std::string& path, int threads, int fd) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenEmbeddedStore({.path = path});
  if (!store.ok()) {
    _exit(2);
  }
  std::vector<std::jthread> writers;
  writers.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    writers.emplace_back([&store, t, fd] {
      for (int64_t i = 0;; ++i) {
        if (!Put(**store, absl::StrCat("/crash/", t, "/", i), absl::StrCat("value-", i)).ok()) {
          _exit(3);
        }
        // 16 bytes: one atomic pipe write, so the threads' reports never interleave.
        const ThreadAck ack = {t, i};
        if (!WriteAll(fd, ack.data(), sizeof(ack))) {
          _exit(4);
        }
      }
    });
  }
  writers.clear();
  _exit(5);
}

TEST_F(EmbeddedStoreTest, AcknowledgedGroupCommitsSurviveKillNine) {
  constexpr int kThreads = 8;
  constexpr int64_t kAcksBeforeKill = 200;
  std::filesystem::create_directories(TestDir());
  std::set<std::pair<int64_t, int64_t>> acknowledged;
  ASSERT_NO_FATAL_FAILURE(KillWriterAfter<ThreadAck>(
      kAcksBeforeKill, [&](int fd) { WriteAcknowledgedKeysConcurrently(path_, kThreads, fd); },
      [&](const ThreadAck& ack) { acknowledged.emplace(ack[0], ack[1]); }));

  EXPECT_EQ(IntegrityCheck(path_), "ok");
  absl::StatusOr<std::unique_ptr<Store>> store = Open();
  ASSERT_THAT(store, IsOk());
  for (const auto& [t, i] : acknowledged) {
    absl::StatusOr<KeyValue> kv = (*store)->Get(absl::StrCat("/crash/", t, "/", i));
    ASSERT_THAT(kv, IsOk()) << "acknowledged key " << t << "/" << i << " lost";
    EXPECT_EQ(kv->value, absl::StrCat("value-", i));
  }
  EXPECT_GE(acknowledged.size(), static_cast<size_t>(kAcksBeforeKill));
}

}  // namespace
}  // namespace discovery::store
