#include "common/logging.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "spdlog/formatter.h"
#include "spdlog/logger.h"
#include "spdlog/sinks/base_sink.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/sinks/sink.h"
#include "spdlog/spdlog.h"

#include "common/json_string.h"
#include "common/thread_name.h"
#include "common/wait.h"
#include "re2/re2.h"

namespace discovery {
namespace {

using LogCounter = std::function<void(std::string_view level)>;

// spdlog's log_msg carries no structured data, so LogX() publishes the record's fields here for
// the formatter. This relies on the logger being synchronous: the formatter runs on the
// thread that logs, inside the logger call.
thread_local const LogFields* current_fields = nullptr;

class CurrentFieldsScope {
 public:
  explicit CurrentFieldsScope(const LogFields& fields) : previous_(current_fields) {
    current_fields = &fields;
  }
  ~CurrentFieldsScope() { current_fields = previous_; }
  CurrentFieldsScope(const CurrentFieldsScope&) = delete;
  CurrentFieldsScope& operator=(const CurrentFieldsScope&) = delete;
  CurrentFieldsScope(CurrentFieldsScope&&) = delete;
  CurrentFieldsScope& operator=(CurrentFieldsScope&&) = delete;

 private:
  const LogFields* previous_;
};

// The counter is copied out under the lock and called outside it, so a slow counter never
// blocks SetLogCounter and a counter that is being replaced stays alive while it runs.
struct CounterSlot {
  absl::Mutex mutex;
  std::shared_ptr<const LogCounter> counter ABSL_GUARDED_BY(mutex);
};

CounterSlot& GetCounterSlot() {
  // Leaked on purpose: records may still be logged during static destruction.
  static auto* const slot = new CounterSlot;
  return *slot;
}

void CountRecord(std::string_view level) {
  CounterSlot& slot = GetCounterSlot();
  std::shared_ptr<const LogCounter> counter;
  {
    absl::MutexLock lock(&slot.mutex);
    counter = slot.counter;
  }
  if (counter != nullptr) {
    (*counter)(level);
  }
}

// zap's names, which the Go original used in logs and in discovery_log_messages_total.
std::string_view LevelName(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "fatal";
    default:
      return "off";
  }
}

void Append(std::string_view text, spdlog::memory_buf_t& dest) {
  dest.append(text.data(), text.data() + text.size());
}

bool ContainsIgnoringCase(std::string_view text, std::string_view lower_needle) {
  return std::search(text.begin(), text.end(), lower_needle.begin(), lower_needle.end(),
                     [](char c, char needle) {
                       return absl::ascii_tolower(static_cast<unsigned char>(c)) == needle;
                     }) != text.end();
}

// The cheap tests of RedactCredentials, without copying the text: nearly every line holds none
// of these.
bool HasJwtMark(std::string_view text) { return text.find("eyJ") != std::string_view::npos; }
bool HasAuthScheme(std::string_view text) {
  return ContainsIgnoringCase(text, "bearer") || ContainsIgnoringCase(text, "authorization");
}
bool HasTokenPath(std::string_view text) { return text.find("/tokens/") != std::string_view::npos; }
bool MayHoldCredentials(std::string_view text) {
  return HasJwtMark(text) || HasAuthScheme(text) || HasTokenPath(text);
}

// Text values stay bare unless a reader could not tell where they end.
bool NeedsQuoting(std::string_view value) {
  return value.empty() || std::any_of(value.begin(), value.end(), [](char c) {
           const auto byte = static_cast<unsigned char>(c);
           return byte <= ' ' || c == '"' || c == '=' || byte == 0x7f;
         });
}

// "2006-01-02T15:04:05.000Z". The part up to the seconds is formatted once per second and
// thread: absl::FormatTime for every line was a sixth of the cost of an audit line.
void AppendTime(const spdlog::log_clock::time_point& time, spdlog::memory_buf_t& dest) {
  thread_local int64_t cached_second = std::numeric_limits<int64_t>::min();
  thread_local std::string cached_prefix;
  const absl::Time at = absl::FromChrono(time);
  // Both round towards the infinite past.
  const int64_t second = absl::ToUnixSeconds(at);
  const int64_t millis = absl::ToUnixMillis(at);
  if (second != cached_second) {
    cached_prefix =
        absl::FormatTime("%Y-%m-%dT%H:%M:%S", absl::FromUnixSeconds(second), absl::UTCTimeZone());
    cached_second = second;
  }
  Append(cached_prefix, dest);
  fmt::format_to(fmt::appender(dest), ".{:03d}Z", millis - second * 1000);
}

class LineFormatter final : public spdlog::formatter {
 public:
  explicit LineFormatter(bool json) : json_(json) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    // Redacted here, so no caller can forget it: a token may reach a line through a request
    // path, an error message or a field. Only text that may hold one is copied to redact it.
    std::string redacted_payload;
    const std::string_view payload =
        Redacted(std::string_view(msg.payload.data(), msg.payload.size()), redacted_payload);
    if (json_) {
      FormatJson(msg, payload, current_fields, dest);
    } else {
      FormatText(msg, payload, current_fields, dest);
    }
    dest.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<LineFormatter>(json_);
  }

 private:
  // `text`, or its redaction in `storage` when it may hold a credential.
  static std::string_view Redacted(std::string_view text, std::string& storage) {
    if (!MayHoldCredentials(text)) {
      return text;
    }
    storage = RedactCredentials(text);
    return storage;
  }

  static void FormatJson(const spdlog::details::log_msg& msg, std::string_view payload,
                         const LogFields* fields, spdlog::memory_buf_t& dest) {
    Append(R"({"time":")", dest);
    AppendTime(msg.time, dest);
    Append(R"(","level":")", dest);
    Append(LevelName(msg.level), dest);
    Append(R"(","msg":)", dest);
    AppendJsonString(payload, dest);
    if (fields != nullptr) {
      std::string storage;
      for (const auto& [key, value] : *fields) {
        dest.push_back(',');
        AppendJsonString(key, dest);
        dest.push_back(':');
        AppendJsonString(Redacted(value, storage), dest);
      }
    }
    dest.push_back('}');
  }

  static void FormatText(const spdlog::details::log_msg& msg, std::string_view payload,
                         const LogFields* fields, spdlog::memory_buf_t& dest) {
    AppendTime(msg.time, dest);
    dest.push_back(' ');
    for (const char c : LevelName(msg.level)) {
      dest.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    }
    dest.push_back(' ');
    Append(payload, dest);
    if (fields != nullptr) {
      std::string storage;
      for (const auto& [key, value] : *fields) {
        dest.push_back(' ');
        Append(key, dest);
        dest.push_back('=');
        const std::string_view shown = Redacted(value, storage);
        if (NeedsQuoting(shown)) {
          AppendJsonString(shown, dest);
        } else {
          Append(shown, dest);
        }
      }
    }
  }

  bool json_;
};

// Lines gathered before they are written even when no flush is due.
constexpr size_t kLogBufferBytes = size_t{64} * 1024;

// Writes lines to a file descriptor in batches. A write(2) per line, each under one
// process-wide lock, was about a tenth of the CPU of a registration under load (two info lines
// per write: the change and its audit record); gathered, a burst costs one write. Warnings and
// errors still go out at once (the logger flushes on them), and what is gathered is written
// when the sink is destroyed, which happens when the process exits normally.
class BufferedFdSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  BufferedFdSink(int fd, absl::Duration flush_interval)
      : fd_(fd), unbuffered_(flush_interval <= absl::ZeroDuration()) {
    if (unbuffered_) {
      return;
    }
    flusher_ = std::jthread([this, flush_interval](const std::stop_token& stop) {
      NameThisThread("log-flush");
      while (SleepUnlessStopped(stop, flush_interval)) {
        flush();
      }
    });
  }
  ~BufferedFdSink() override {
    if (flusher_.joinable()) {
      flusher_.request_stop();
      flusher_.join();
    }
    flush();
  }
  BufferedFdSink(const BufferedFdSink&) = delete;
  BufferedFdSink& operator=(const BufferedFdSink&) = delete;
  BufferedFdSink(BufferedFdSink&&) = delete;
  BufferedFdSink& operator=(BufferedFdSink&&) = delete;

 protected:
  // Both run under base_sink's mutex.
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    buffer_.append(line.data(), line.data() + line.size());
    if (unbuffered_ || buffer_.size() >= kLogBufferBytes) {
      flush_();
    }
  }
  void flush_() override {
    size_t written = 0;
    while (written < buffer_.size()) {
      const ssize_t n = ::write(fd_, buffer_.data() + written, buffer_.size() - written);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        break;  // Nowhere to write (closed or full disk): the lines are dropped, not retried.
      }
      written += static_cast<size_t>(n);
    }
    buffer_.clear();
  }

 private:
  const int fd_;
  const bool unbuffered_;
  spdlog::memory_buf_t buffer_;
  std::jthread flusher_;  // last: it flushes through the members above
};

// Sits beside the output sink so that every written record is counted, including those
// logged through spdlog directly; records below the logger's level never reach it.
class CountingSink final : public spdlog::sinks::sink {
 public:
  void log(const spdlog::details::log_msg& msg) override { CountRecord(LevelName(msg.level)); }
  void flush() override {}
  void set_pattern(const std::string& /*pattern*/) override {}
  void set_formatter(std::unique_ptr<spdlog::formatter> /*formatter*/) override {}
};

void Log(spdlog::level::level_enum level, std::string_view msg, const LogFields& fields) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) {
    return;
  }
  const CurrentFieldsScope scope(fields);
  logger->log(level, spdlog::string_view_t(msg.data(), msg.size()));
}

std::string ToLower(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower;
}

}  // namespace

void InitLogging(const LogOptions& options) {
  spdlog::sink_ptr output;
  if (options.output != nullptr) {
    output = std::make_shared<spdlog::sinks::ostream_sink_mt>(*options.output,
                                                              /*force_flush=*/true);
  } else {
    output = std::make_shared<BufferedFdSink>(options.output_fd, options.flush_interval);
  }
  bool json = options.format == LogOptions::Format::kJson;
  if (options.format == LogOptions::Format::kAuto) {
    json = options.output != nullptr || isatty(options.output_fd) == 0;
  }
  auto logger = std::make_shared<spdlog::logger>(
      "discovery", spdlog::sinks_init_list{output, std::make_shared<CountingSink>()});
  logger->set_formatter(std::make_unique<LineFormatter>(json));
  logger->set_level(options.debug ? spdlog::level::debug : spdlog::level::info);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

void LogDebug(std::string_view msg, const LogFields& fields) {
  Log(spdlog::level::debug, msg, fields);
}

bool DebugLogEnabled() { return spdlog::default_logger_raw()->should_log(spdlog::level::debug); }

void LogInfo(std::string_view msg, const LogFields& fields) {
  Log(spdlog::level::info, msg, fields);
}

void LogWarn(std::string_view msg, const LogFields& fields) {
  Log(spdlog::level::warn, msg, fields);
}

void LogError(std::string_view msg, const LogFields& fields) {
  Log(spdlog::level::err, msg, fields);
}

void SetLogCounter(std::function<void(std::string_view level)> counter) {
  std::shared_ptr<const LogCounter> replacement;
  if (counter) {
    replacement = std::make_shared<const LogCounter>(std::move(counter));
  }
  CounterSlot& slot = GetCounterSlot();
  absl::MutexLock lock(&slot.mutex);
  slot.counter = std::move(replacement);
}

bool IsSecretFlag(std::string_view flag_name) {
  static constexpr std::array<std::string_view, 3> kSecretWords = {"key", "password", "secret"};
  const std::string name = ToLower(flag_name);
  // "token" only as the last word: --api-token holds one, --token-issuer and --token-path do not.
  return name.ends_with("token") ||
         std::any_of(kSecretWords.begin(), kSecretWords.end(), [&name](std::string_view word) {
           return name.find(word) != std::string::npos;
         });
}

std::string RedactFlagValue(std::string_view flag_name, std::string_view value) {
  if (!value.empty() && IsSecretFlag(flag_name)) {
    return std::string(kRedactedValue);
  }
  return std::string(value);
}

LogFields RedactedFlags(const std::map<std::string, std::string>& flags) {
  static constexpr std::array<std::string_view, 6> kOmitted = {
      "help", "env-help", "version", "show-config", "etcd-ca", "etcd-cert"};
  LogFields redacted;
  for (const auto& [name, value] : flags) {
    if (std::find(kOmitted.begin(), kOmitted.end(), name) != kOmitted.end()) {
      continue;
    }
    redacted.emplace_back(name, RedactFlagValue(name, value));
  }
  return redacted;
}

std::string RedactCredentials(std::string_view text) {
  std::string out(text);
  // Cheap tests first: nearly every line holds none of these.
  const bool jwt = HasJwtMark(text);
  const bool scheme = HasAuthScheme(text);
  const bool token_path = HasTokenPath(text);
  if (!jwt && !scheme && !token_path) {
    return out;
  }
  static const auto* const jwt_pattern =
      new RE2(R"(eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)");
  // A bearer credential is at least 8 token68 characters, so prose such as "bearer token
  // missing" stays readable; Basic credentials only right after an authorization key.
  static const auto* const scheme_pattern = new RE2(
      R"((?i)(\bbearer\s+|authorization["']?\s*[:=]\s*["']?basic\s+)[A-Za-z0-9._~+/=-]{8,})");
  static const auto* const token_path_pattern = new RE2(R"((/tokens/)[^/?#\s"]+)");
  const std::string redacted(kRedactedValue);
  if (jwt) {
    RE2::GlobalReplace(&out, *jwt_pattern, redacted);
  }
  if (scheme) {
    RE2::GlobalReplace(&out, *scheme_pattern, "\\1" + redacted);
  }
  if (token_path) {
    RE2::GlobalReplace(&out, *token_path_pattern, "\\1" + redacted);
  }
  return out;
}

std::string RedactBearer(std::string_view header) {
  const std::size_t space = header.find(' ');
  if (space == std::string_view::npos) {
    return header.empty() ? std::string() : std::string(kRedactedValue);
  }
  std::string scheme(header.substr(0, space));
  if (header.find_first_not_of(' ', space) == std::string_view::npos) {
    return scheme;
  }
  return scheme + " " + std::string(kRedactedValue);
}

}  // namespace discovery
