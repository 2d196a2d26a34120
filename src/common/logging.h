// Process-wide structured logging on spdlog: one line per record on stderr, as JSON when stderr
// is not a terminal (for log shippers) and as text otherwise, plus the redaction helpers that
// keep secrets out of logs and metrics.
#pragma once

#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace discovery {

// Structured fields of one record, printed in order after the message.
using LogFields = std::vector<std::pair<std::string, std::string>>;

struct LogOptions {
  enum class Format { kAuto, kJson, kText };

  // Enables debug records; otherwise info and above are written.
  bool debug = false;
  // kAuto picks JSON unless the output is a terminal.
  Format format = Format::kAuto;
  // Where lines go, written at once; nullptr means `output_fd`. Lets tests capture the
  // output. Not owned: it must outlive the logger, i.e. until the next InitLogging call.
  std::ostream* output = nullptr;
  // The file descriptor lines go to without `output` (stderr; tests pass a pipe). Debug and
  // info lines are gathered and written together, at the latest `flush_interval` after they
  // were logged, when 64 KiB have gathered, when the logger is replaced and when the process
  // exits; a warning or error is written at once, after the lines logged before it. Zero
  // writes every line at once (a command-line tool, whose lines mix with its other output).
  int output_fd = 2;
  absl::Duration flush_interval = absl::Milliseconds(100);
};

// Replaces spdlog's default logger, so plain spdlog::info(...) calls elsewhere use the same
// format. JSON lines look like
//   {"time":"2026-11-28T03:00:00.123Z","level":"info","msg":"...","key":"value"}
// and text lines like
//   2026-11-28T03:00:00.123Z INFO msg key=value
// Level names are debug, info, warn, error and fatal (spdlog's critical), as zap printed them.
// Not thread-safe: call it at start-up before other threads log.
void InitLogging(const LogOptions& options);

// Write one record at the given level when that level is enabled. Thread-safe.
void LogDebug(std::string_view msg, const LogFields& fields = {});
void LogInfo(std::string_view msg, const LogFields& fields = {});
void LogWarn(std::string_view msg, const LogFields& fields = {});
void LogError(std::string_view msg, const LogFields& fields = {});

// Returns true when debug records are written, so that a hot path (one record per request)
// builds its fields only then. Thread-safe.
bool DebugLogEnabled();

// Installs `counter`, called with the level name once for every record written (also records
// logged through spdlog directly), which feeds discovery_log_messages_total{level}. An empty
// function removes it. `counter` may be called from any thread and must not log. Thread-safe.
void SetLogCounter(std::function<void(std::string_view level)> counter);

// What a secret value is replaced with. The fixed width does not reveal the secret's length.
inline constexpr std::string_view kRedactedValue = "*****";

// Returns true when `flag_name` contains "key", "password" or "secret", or ends with "token", in
// any case, so
// its value must not be logged or exported. Thread-safe.
bool IsSecretFlag(std::string_view flag_name);

// Returns `value`, or kRedactedValue when `flag_name` is a secret flag and `value` is non-empty
// (an empty value shows that nothing was configured and reveals nothing). Thread-safe.
std::string RedactFlagValue(std::string_view flag_name, std::string_view value);

// Returns the flags to report at start-up (log and kong_flag metric), ordered by name: the
// redacted values of all flags except help, env-help, version, show-config, etcd-ca and
// etcd-cert (which carry no configuration or are PEM blobs). Thread-safe.
LogFields RedactedFlags(const std::map<std::string, std::string>& flags);

// Returns an Authorization header value fit for logs: the scheme followed by kRedactedValue
// ("Bearer *****"), the scheme alone when no credentials follow it, and kRedactedValue for a
// value without a scheme. Thread-safe.
std::string RedactBearer(std::string_view header);

// Returns `text` with credentials replaced by kRedactedValue: JSON Web Tokens (machine tokens,
// OIDC ID and access tokens: three base64url segments, the first starting "eyJ"), a credential
// of 8 or more characters after "Bearer", Basic credentials after an authorization key, and the
// path segment after "/tokens/" (the REST path of TokenAPI/Info carries a token). Every log line
// passes through it. Thread-safe.
std::string RedactCredentials(std::string_view text);

}  // namespace discovery
