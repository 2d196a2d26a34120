// Child processes for integration tests: real binaries (etcd, discoveryd, prometheus) started with
// fork+exec on free loopback ports, their output in a log file whose tail goes into every error,
// so a failed test explains itself. Nothing here skips a test: a missing binary is an error.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace discovery::testing {

// Reserves `n` distinct free loopback ports. They are only free at this moment: the child that is
// given one may lose a race for it, so harnesses retry with new ports on "address in use".
absl::StatusOr<std::vector<int>> FreePorts(int n);

// Creates a fresh directory "<$TMPDIR or /tmp>/<prefix>-XXXXXX" and returns its path.
absl::StatusOr<std::string> MakeTempDir(std::string_view prefix);

// The last `lines` lines of the file at `path`, joined by "\n" ("" when it cannot be read).
std::string TailFile(const std::string& path, int lines);

// What to execute. Every string is prepared before fork: the child of a multi-threaded process
// may only make async-signal-safe calls until exec.
struct Command {
  // argv[0] is the executable's path, used as is (no PATH search, so a test names what it runs).
  std::vector<std::string> argv;
  // Changes to the inherited environment, applied in order: "NAME=value" sets NAME, a bare
  // "NAME" removes it (so a developer's DISCOVERY_* variables cannot leak into a test).
  std::vector<std::string> env;
  // The child's working directory; empty keeps the test's.
  std::string working_dir;
};

// How a child ended.
struct ExitStatus {
  int code = -1;   // the exit code, or -1 when a signal ended it
  int signal = 0;  // the terminating signal, or 0 when it exited
  bool success() const { return signal == 0 && code == 0; }
  // "exit code 3" or "signal 9 (Killed)".
  std::string ToString() const;
  friend bool operator==(const ExitStatus&, const ExitStatus&) = default;
};

// One started child process, its stdin on /dev/null and stdout+stderr appended to a log file.
// The child gets SIGKILL when the thread that started it dies, so a crashed test leaves no server
// behind. Destroying a ChildProcess SIGKILLs the child if it still runs and reaps it; stop it
// gracefully with Signal + WaitExit first when the shutdown itself is under test. Not
// thread-safe.
class ChildProcess {
 public:
  // Starts `command`. Fails with Internal when the log, fork or the pipes fail; a binary that
  // cannot be executed is not an error here: the child exits 127 and says so in the log.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const Command& command,
                                                             std::string log_path);

  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  // True until the child has exited (reaping it when it has).
  bool IsRunning() const;
  // The exit status once the child has exited and was reaped, else nullopt.
  std::optional<ExitStatus> exit_status() const;

  // Sends `signal`. FailedPrecondition once the child was reaped: its pid may belong to another
  // process by now.
  absl::Status Signal(int signal);
  // Waits up to `timeout` for the child to exit. DeadlineExceeded (with the log tail) when it
  // still runs; the child is left running.
  absl::StatusOr<ExitStatus> WaitExit(absl::Duration timeout) const;
  // SIGKILLs the child and reaps it (a crash, no clean shutdown). OK when it had already exited.
  absl::Status Kill();
  // SIGTERM, then SIGKILL when the child has not exited within `grace`. Returns how it ended
  // (signal 9 when it had to be killed).
  absl::StatusOr<ExitStatus> Terminate(absl::Duration grace);

  // The last `lines` lines of the log.
  std::string LogTail(int lines = 40) const;

 private:
  ChildProcess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}

  // Reaps the child without blocking; true when it has exited.
  bool Reap() const;

  pid_t pid_;
  std::string log_path_;
  mutable std::optional<ExitStatus> exit_;  // set once reaped
};

// The result of a command run to completion.
struct CommandResult {
  ExitStatus status;
  std::string out;  // stdout (and stderr when merged)
  std::string err;  // stderr unless merged
};

// Runs `command` to completion, stdin on /dev/null, capturing stdout and stderr (into `out` alone
// when `merge_stderr`, interleaved as written). A non-zero exit is not an error here: callers
// judge `status`. Fails with DeadlineExceeded (and what was captured) when the command runs
// longer than `timeout`; it is killed then.
absl::StatusOr<CommandResult> RunCommand(const Command& command, absl::Duration timeout,
                                         bool merge_stderr = false);

// Writes a self-signed certificate for 127.0.0.1 named `common_name`, valid for a day, and its
// EC key, as a test server's TLS identity (by Debian's openssl).
absl::Status WriteSelfSignedCertificate(const std::string& common_name,
                                        const std::string& cert_file, const std::string& key_file);

}  // namespace discovery::testing
