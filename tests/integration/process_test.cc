// The child-process harness itself, on /bin/sh: exit codes, signals, logs, environment and
// captured output, so harness bugs do not masquerade as failures of the servers under test.
#include "testing/process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "testing/scoped_env.h"
#include "testing/status_matchers.h"

namespace discovery::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ChildProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dir = MakeTempDir("process-test");
    ASSERT_THAT(dir, IsOk());
    dir_ = *dir;
    log_ = dir_ + "/child.log";
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // /bin/sh -c `script`, logging to log_.
  absl::StatusOr<std::unique_ptr<ChildProcess>> Shell(std::string script,
                                                      std::vector<std::string> env = {}) {
    return ChildProcess::Start(
        {.argv = {"/bin/sh", "-c", std::move(script)}, .env = std::move(env)}, log_);
  }

  std::string dir_;
  std::string log_;
};

TEST_F(ChildProcessTest, ReportsExitCodeAndLogsBothStreams) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChildProcess> child,
                       Shell("echo to-stdout; echo to-stderr >&2; exit 3"));
  ASSERT_OK_AND_ASSIGN(ExitStatus status, child->WaitExit(absl::Seconds(10)));
  EXPECT_EQ(status, (ExitStatus{.code = 3, .signal = 0}));
  EXPECT_FALSE(status.success());
  EXPECT_EQ(status.ToString(), "exit code 3");
  EXPECT_FALSE(child->IsRunning());
  EXPECT_EQ(child->LogTail(), "to-stdout\nto-stderr");
  EXPECT_EQ(child->LogTail(1), "to-stderr");
  // The pid may be reused once reaped: signalling it is refused.
  EXPECT_THAT(child->Signal(SIGTERM), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(ChildProcessTest, SignalEndsTheChild) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChildProcess> child, Shell("exec sleep 60"));
  EXPECT_TRUE(child->IsRunning());
  EXPECT_THAT(child->WaitExit(absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_TRUE(child->IsRunning());
  ASSERT_THAT(child->Signal(SIGTERM), IsOk());
  ASSERT_OK_AND_ASSIGN(ExitStatus status, child->WaitExit(absl::Seconds(10)));
  EXPECT_EQ(status.signal, SIGTERM);
  EXPECT_EQ(status.ToString(), "signal 15 (Terminated)");
}

TEST_F(ChildProcessTest, TerminateEscalatesToSigkill) {
  // The shell ignores SIGTERM; the touch marks that the trap is in place.
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ChildProcess> child,
      Shell("trap '' TERM; touch " + dir_ + "/trapped; while :; do sleep 1; done"));
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!std::filesystem::exists(dir_ + "/trapped") && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_OK_AND_ASSIGN(ExitStatus status, child->Terminate(absl::Milliseconds(200)));
  EXPECT_EQ(status.signal, SIGKILL);
  EXPECT_THAT(child->Kill(), IsOk());  // already gone: nothing to do
}

TEST_F(ChildProcessTest, DestructorKillsAndReaps) {
  pid_t pid = 0;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChildProcess> child, Shell("exec sleep 60"));
    pid = child->pid();
  }
  // Reaped: no such process (not even a zombie) is left.
  EXPECT_EQ(kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST_F(ChildProcessTest, EnvironmentChangesAndWorkingDir) {
  ScopedEnv env;
  env.Set("PROCESS_TEST_INHERITED", "kept");
  env.Set("PROCESS_TEST_REMOVED", "present");
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ChildProcess> child,
      ChildProcess::Start({.argv = {"/bin/sh", "-c",
                                    "echo \"$PROCESS_TEST_INHERITED,$PROCESS_TEST_SET,"
                                    "${PROCESS_TEST_REMOVED-unset},$(pwd)\""},
                           .env = {"PROCESS_TEST_SET=new", "PROCESS_TEST_REMOVED"},
                           .working_dir = dir_},
                          log_));
  ASSERT_OK_AND_ASSIGN(ExitStatus status, child->WaitExit(absl::Seconds(10)));
  EXPECT_TRUE(status.success());
  EXPECT_EQ(child->LogTail(), "kept,new,unset," + dir_);
}

TEST_F(ChildProcessTest, MissingBinaryExits127AndSaysSo) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChildProcess> child,
                       ChildProcess::Start({.argv = {dir_ + "/no-such-binary"}}, log_));
  ASSERT_OK_AND_ASSIGN(ExitStatus status, child->WaitExit(absl::Seconds(10)));
  EXPECT_EQ(status.code, 127);
  EXPECT_THAT(child->LogTail(), HasSubstr("cannot execute " + dir_ + "/no-such-binary"));
}

TEST_F(ChildProcessTest, LogIsAppendedAcrossRuns) {
  for (const char* word : {"first", "second"}) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChildProcess> child, Shell(std::string("echo ") + word));
    ASSERT_THAT(child->WaitExit(absl::Seconds(10)), IsOk());
  }
  EXPECT_EQ(TailFile(log_, 10), "first\nsecond");
}

TEST(RunCommandTest, CapturesStdoutAndStderrApart) {
  ASSERT_OK_AND_ASSIGN(
      CommandResult result,
      RunCommand({.argv = {"/bin/sh", "-c", "echo out; echo err >&2; exit 2"}}, absl::Seconds(10)));
  EXPECT_EQ(result.status.code, 2);
  EXPECT_EQ(result.out, "out\n");
  EXPECT_EQ(result.err, "err\n");
}

TEST(RunCommandTest, MergesStderrOnRequest) {
  ASSERT_OK_AND_ASSIGN(CommandResult result,
                       RunCommand({.argv = {"/bin/sh", "-c", "echo out; echo err >&2"}},
                                  absl::Seconds(10), /*merge_stderr=*/true));
  EXPECT_TRUE(result.status.success());
  EXPECT_EQ(result.out, "out\nerr\n");
  EXPECT_EQ(result.err, "");
}

TEST(RunCommandTest, LargeOutputOnBothStreamsDoesNotDeadlock) {
  // More than a pipe buffer (64 KiB) on each stream: both must be drained at once.
  ASSERT_OK_AND_ASSIGN(
      CommandResult result,
      RunCommand({.argv = {"/bin/sh", "-c",
                           "head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2; "
                           "head -c 300000 /dev/zero"}},
                 absl::Seconds(20)));
  EXPECT_TRUE(result.status.success());
  EXPECT_EQ(result.out.size(), 600000U);
  EXPECT_EQ(result.err.size(), 300000U);
}

TEST(RunCommandTest, KillsACommandThatOverrunsItsTimeout) {
  const absl::Time start = absl::Now();
  EXPECT_THAT(RunCommand({.argv = {"/bin/sh", "-c", "echo started; exec sleep 60"}},
                         absl::Milliseconds(300)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("started")));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(FreePortsTest, DistinctAndBindable) {
  ASSERT_OK_AND_ASSIGN(std::vector<int> ports, FreePorts(5));
  EXPECT_EQ(std::set<int>(ports.begin(), ports.end()).size(), 5U);
  for (int port : ports) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << port;
    close(fd);
  }
}

TEST(TailFileTest, MissingFileIsEmpty) { EXPECT_EQ(TailFile("/nonexistent/log", 5), ""); }

TEST(ExitStatusTest, Strings) {
  EXPECT_EQ((ExitStatus{.code = 0, .signal = 0}).ToString(), "exit code 0");
  EXPECT_EQ((ExitStatus{.code = -1, .signal = SIGKILL}).ToString(), "signal 9 (Killed)");
  EXPECT_THAT(ExitStatus{}.ToString(), Not(HasSubstr("exit code")));
}

}  // namespace
}  // namespace discovery::testing
