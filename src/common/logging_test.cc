#include "common/logging.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace discovery {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::Pair;
using ::testing::SizeIs;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) {
    lines.push_back(line);
  }
  return lines;
}

class LoggingTest : public ::testing::Test {
 protected:
  void TearDown() override {
    SetLogCounter({});
    // The logger must not keep writing to output_, which dies with the fixture.
    InitLogging({});
  }

  void Init(LogOptions::Format format, bool debug = false) {
    InitLogging({.debug = debug, .format = format, .output = &output_});
  }

  // Parses each written line as a JSON object, keeping the key order.
  std::vector<nlohmann::ordered_json> JsonLines() const {
    std::vector<nlohmann::ordered_json> records;
    for (const std::string& line : Lines(output_.str())) {
      records.push_back(nlohmann::ordered_json::parse(line));
    }
    return records;
  }

  std::ostringstream output_;
};

TEST_F(LoggingTest, JsonLineHasTimeLevelMessageThenFieldsInOrder) {
  Init(LogOptions::Format::kJson);

  LogInfo("service registered", {{"namespace", "default"}, {"id", "abc"}});

  const std::vector<nlohmann::ordered_json> records = JsonLines();
  ASSERT_THAT(records, SizeIs(1));
  std::vector<std::string> keys;
  for (const auto& item : records[0].items()) {
    keys.push_back(item.key());
  }
  EXPECT_THAT(keys, ElementsAre("time", "level", "msg", "namespace", "id"));
  EXPECT_THAT(records[0]["time"].get<std::string>(),
              MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}Z"));
  EXPECT_EQ(records[0]["level"], "info");
  EXPECT_EQ(records[0]["msg"], "service registered");
  EXPECT_EQ(records[0]["namespace"], "default");
  EXPECT_EQ(records[0]["id"], "abc");
}

TEST_F(LoggingTest, JsonEscapesQuotesBackslashesAndControlCharacters) {
  Init(LogOptions::Format::kJson);
  const std::string tricky = "say \"hi\"\\\nnext line\t\x01 end";

  LogWarn(tricky, {{"key \"q\"", tricky}});

  const std::vector<nlohmann::ordered_json> records = JsonLines();
  ASSERT_THAT(records, SizeIs(1));  // The embedded newline did not split the line.
  EXPECT_EQ(records[0]["level"], "warn");
  EXPECT_EQ(records[0]["msg"], tricky);
  EXPECT_EQ(records[0]["key \"q\""], tricky);
}

TEST_F(LoggingTest, JsonReplacesInvalidUtf8InsteadOfDroppingTheRecord) {
  Init(LogOptions::Format::kJson);

  LogError("bad \xff byte", {{"name", "caf\xc3"}});

  const std::vector<nlohmann::ordered_json> records = JsonLines();
  ASSERT_THAT(records, SizeIs(1));
  EXPECT_EQ(records[0]["level"], "error");
  EXPECT_EQ(records[0]["msg"], "bad \xef\xbf\xbd byte");
}

TEST_F(LoggingTest, PlainSpdlogCallsUseTheSameFormat) {
  Init(LogOptions::Format::kJson);

  spdlog::info("registered {} services", 3);
  spdlog::critical("cannot continue");

  const std::vector<nlohmann::ordered_json> records = JsonLines();
  ASSERT_THAT(records, SizeIs(2));
  EXPECT_EQ(records[0]["msg"], "registered 3 services");
  EXPECT_EQ(records[1]["level"], "fatal");
}

TEST_F(LoggingTest, TextLineHasMessageThenKeyValuePairs) {
  Init(LogOptions::Format::kText);

  LogInfo("starting grpc server", {{"grpc-listen", ":3001"}, {"labels", "a b"}, {"empty", ""}});

  EXPECT_THAT(Lines(output_.str()),
              ElementsAre(MatchesRegex(R"([0-9T:.-]+Z INFO starting grpc server )"
                                       R"(grpc-listen=:3001 labels="a b" empty="")")));
}

TEST_F(LoggingTest, AutoFormatWritesJsonToANonTerminal) {
  Init(LogOptions::Format::kAuto);

  LogInfo("hello");

  EXPECT_THAT(JsonLines(), SizeIs(1));
}

TEST_F(LoggingTest, DebugRecordsAreWrittenOnlyWithDebugOption) {
  Init(LogOptions::Format::kJson, /*debug=*/false);
  LogDebug("hidden");
  spdlog::debug("hidden too");
  EXPECT_THAT(output_.str(), IsEmpty());

  Init(LogOptions::Format::kJson, /*debug=*/true);
  LogDebug("shown");

  const std::vector<nlohmann::ordered_json> records = JsonLines();
  ASSERT_THAT(records, SizeIs(1));
  EXPECT_EQ(records[0]["level"], "debug");
  EXPECT_EQ(records[0]["msg"], "shown");
}

TEST_F(LoggingTest, CounterSeesEveryWrittenRecordByLevel) {
  Init(LogOptions::Format::kJson);
  absl::Mutex mutex;
  std::vector<std::string> levels;
  SetLogCounter([&](std::string_view level) {
    absl::MutexLock lock(&mutex);
    levels.emplace_back(level);
  });

  LogInfo("a");
  LogDebug("filtered out, so not counted");
  LogError("b");
  spdlog::warn("c");
  SetLogCounter({});
  LogInfo("after removal");

  absl::MutexLock lock(&mutex);
  EXPECT_THAT(levels, ElementsAre("info", "error", "warn"));
}

TEST(LoggingRedactionTest, MatchesSecretWordsInAnyCase) {
  for (const char* name : {"token-secret", "etcd-password", "etcd-key", "etcd-key-file",
                           "ETCD-PASSWORD", "Oidc-Client-Secret", "api-token"}) {
    EXPECT_TRUE(IsSecretFlag(name)) << name;
  }
  for (const char* name :
       {"oidc-client-id", "grpc-listen", "replicas", "etcd-user", "token-issuer", ""}) {
    EXPECT_FALSE(IsSecretFlag(name)) << name;
  }
}

TEST(LoggingRedactionTest, RedactsOnlyNonEmptySecretValues) {
  EXPECT_EQ(RedactFlagValue("token-secret", "s3cr3t"), "*****");
  EXPECT_EQ(RedactFlagValue("token-secret", ""), "");
  EXPECT_EQ(RedactFlagValue("grpc-listen", "localhost:3001"), "localhost:3001");
}

TEST(LoggingRedactionTest, RedactedFlagsDropsNoiseAndMasksSecrets) {
  const std::map<std::string, std::string> flags = {
      {"help", "false"},
      {"env-help", "false"},
      {"version", "false"},
      {"show-config", "false"},
      {"etcd-ca", "-----BEGIN"},
      {"etcd-cert", "-----BEGIN"},
      {"etcd-password", "hunter2"},
      {"etcd-key", ""},
      {"grpc-listen", ":3001"},
  };

  EXPECT_THAT(RedactedFlags(flags),
              ElementsAre(Pair("etcd-key", ""), Pair("etcd-password", "*****"),
                          Pair("grpc-listen", ":3001")));
}

TEST(LoggingRedactionTest, RedactBearerKeepsOnlyTheScheme) {
  EXPECT_EQ(RedactBearer("Bearer eyJhbGciOi.x.y"), "Bearer *****");
  EXPECT_EQ(RedactBearer("bearer  two spaces"), "bearer *****");
  EXPECT_EQ(RedactBearer("Bearer "), "Bearer");
  EXPECT_EQ(RedactBearer("eyJhbGciOi.x.y"), "*****");
  EXPECT_EQ(RedactBearer(""), "");
}

constexpr std::string_view kJwt =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJkaXNjb3ZlcnkifQ.c2lnbmF0dXJlX2J5dGVz";

TEST(LoggingRedactionTest, RedactCredentialsRemovesTokensWherever) {
  const std::string jwt(kJwt);
  EXPECT_EQ(RedactCredentials("GET /v1/tokens/" + jwt + " status=200"),
            "GET /v1/tokens/***** status=200");
  EXPECT_EQ(RedactCredentials("/v1/tokens/opaque-token-value?x=1"), "/v1/tokens/*****?x=1");
  EXPECT_EQ(RedactCredentials("token " + jwt + " expired"), "token ***** expired");
  EXPECT_EQ(RedactCredentials("authorization: Bearer abcdefgh12345678"),
            "authorization: Bearer *****");
  EXPECT_EQ(RedactCredentials(R"({"Authorization":"Basic dXNlcjpwYXNzd29yZA=="})"),
            R"({"Authorization":"Basic *****"})");
  // Prose stays readable and nothing else changes.
  EXPECT_EQ(RedactCredentials("bearer token missing"), "bearer token missing");
  EXPECT_EQ(RedactCredentials("register service http://a/metrics in namespace default"),
            "register service http://a/metrics in namespace default");
  EXPECT_EQ(RedactCredentials("Bearer *****"), "Bearer *****");
}

TEST_F(LoggingTest, EveryLineIsRedactedMessagesAndFieldsAlike) {
  Init(LogOptions::Format::kJson, /*debug=*/true);
  const std::string jwt(kJwt);

  spdlog::debug("http request method=GET path=/v1/tokens/{} status=200", jwt);
  LogWarn("login failed", {{"authorization", "Bearer " + jwt}, {"path", "/v1/tokens/" + jwt}});

  EXPECT_THAT(output_.str(), Not(HasSubstr("eyJ")));
  const std::vector<nlohmann::ordered_json> records = JsonLines();
  ASSERT_THAT(records, SizeIs(2));
  EXPECT_EQ(records[0]["msg"], "http request method=GET path=/v1/tokens/***** status=200");
  EXPECT_EQ(records[1]["authorization"], "Bearer *****");
  EXPECT_EQ(records[1]["path"], "/v1/tokens/*****");
}

TEST_F(LoggingTest, TextLinesAreRedactedMessagesAndFieldsAlike) {
  Init(LogOptions::Format::kText);
  const std::string jwt(kJwt);

  LogWarn("token " + jwt + " refused", {{"authorization", "Bearer " + jwt}, {"id", "abc"}});

  EXPECT_THAT(Lines(output_.str()),
              ElementsAre(MatchesRegex(R"([0-9T:.-]+Z WARN token \*\*\*\*\* refused )"
                                       R"(authorization="Bearer \*\*\*\*\*" id=abc)")));
}

// The time is the record's own, to the millisecond, also after the second it is in has passed.
TEST_F(LoggingTest, EachLineHasTheTimeItWasLoggedAt) {
  Init(LogOptions::Format::kJson);
  std::vector<std::pair<absl::Time, absl::Time>> around;
  for (int i = 0; i < 3; ++i) {
    const absl::Time before = absl::Now();
    LogInfo("tick");
    around.emplace_back(before, absl::Now());
    absl::SleepFor(absl::Milliseconds(600));
  }

  const std::vector<nlohmann::ordered_json> records = JsonLines();
  ASSERT_THAT(records, SizeIs(3));
  for (size_t i = 0; i < records.size(); ++i) {
    absl::Time logged;
    std::string error;
    ASSERT_TRUE(absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ", records[i]["time"].get<std::string>(),
                                &logged, &error))
        << error;
    EXPECT_GE(logged, absl::Floor(around[i].first - absl::UnixEpoch(), absl::Milliseconds(1)) +
                          absl::UnixEpoch());
    EXPECT_LE(logged, around[i].second);
  }
}

TEST_F(LoggingTest, StartupFlagsLogWithoutSecrets) {
  Init(LogOptions::Format::kJson);

  LogInfo("starting grpc server", RedactedFlags({{"token-secret", "s3cr3t"}, {"replicas", "2"}}));

  EXPECT_THAT(output_.str(), Not(HasSubstr("s3cr3t")));
  const std::vector<nlohmann::ordered_json> records = JsonLines();
  ASSERT_THAT(records, SizeIs(1));
  EXPECT_EQ(records[0]["token-secret"], "*****");
  EXPECT_EQ(records[0]["replicas"], "2");
}

// Lines written to a pipe, as a daemon's stderr is; reads only what is there now.
class BufferedLoggingTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(pipe2(fds_.data(), O_NONBLOCK), 0); }
  void TearDown() override {
    InitLogging({});
    close(fds_[0]);
    close(fds_[1]);
  }

  void Init(absl::Duration flush_interval) {
    InitLogging({.format = LogOptions::Format::kText,
                 .output_fd = fds_[1],
                 .flush_interval = flush_interval});
  }

  // Appends what the pipe holds now to written_ and returns all lines read so far.
  std::vector<std::string> Written() {
    std::array<char, 4096> chunk{};
    for (ssize_t n = 0; (n = read(fds_[0], chunk.data(), chunk.size())) > 0;) {
      written_.append(chunk.data(), static_cast<size_t>(n));
    }
    return Lines(written_);
  }

  std::array<int, 2> fds_ = {-1, -1};
  std::string written_;
};

TEST_F(BufferedLoggingTest, InfoLinesWaitForTheFlushAndKeepTheirOrder) {
  Init(absl::Hours(1));

  LogInfo("first");
  LogInfo("second");
  EXPECT_THAT(Written(), IsEmpty());

  InitLogging({});  // replacing the logger writes what it gathered
  EXPECT_THAT(Written(), ElementsAre(HasSubstr("INFO first"), HasSubstr("INFO second")));
}

TEST_F(BufferedLoggingTest, AWarningIsWrittenAtOnceAfterTheLinesBeforeIt) {
  Init(absl::Hours(1));

  LogInfo("before");
  LogWarn("trouble");

  EXPECT_THAT(Written(), ElementsAre(HasSubstr("INFO before"), HasSubstr("WARN trouble")));
}

TEST_F(BufferedLoggingTest, GatheredLinesAreWrittenWithinTheFlushInterval) {
  Init(absl::Milliseconds(20));

  LogInfo("soon");

  // Polls for the flusher's write; the deadline only bounds a failing run.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (Written().empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_THAT(Written(), ElementsAre(HasSubstr("INFO soon")));
}

TEST_F(BufferedLoggingTest, ABurstLargerThanTheBufferIsWrittenWithoutWaiting) {
  Init(absl::Hours(1));
  const std::string field(1000, 'x');

  for (int i = 0; i < 100; ++i) {
    LogInfo("burst", {{"field", field}});
  }

  // 100 lines of about 1 KB: at least the first 64 KiB are out without a flush.
  EXPECT_GE(Written().size(), 60U);
}

TEST_F(BufferedLoggingTest, ZeroIntervalWritesEveryLineAtOnce) {
  Init(absl::ZeroDuration());

  LogInfo("now");

  EXPECT_THAT(Written(), ElementsAre(HasSubstr("INFO now")));
}

}  // namespace
}  // namespace discovery
