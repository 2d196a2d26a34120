#include "repo/codec.h"

#include <array>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/civil_time.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "testing/status_matchers.h"

namespace discovery::repo {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadFixture(const std::string& name) {
  std::ifstream file(std::string{DISCOVERY_REPO_TESTDATA} + "/" + name);
  std::stringstream content;
  content << file.rdbuf();
  EXPECT_FALSE(content.str().empty()) << "missing fixture " << name;
  return content.str();
}

absl::Time Utc(int y, int mo, int d, int h, int mi, int s, int64_t nanos = 0) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone()) +
         absl::Nanoseconds(nanos);
}

TEST(TimeTest, FormatsLikeGoRfc3339Nano) {
  EXPECT_EQ(FormatTimestamp(Utc(2021, 2, 4, 14, 12, 50)), "2021-02-04T14:12:50Z");
  EXPECT_EQ(FormatTimestamp(Utc(2021, 2, 4, 14, 12, 50, 85000000)), "2021-02-04T14:12:50.085Z");
  EXPECT_EQ(FormatTimestamp(Utc(2021, 2, 4, 14, 12, 50, 85123456)),
            "2021-02-04T14:12:50.085123456Z");
}

TEST(TimeTest, ParsesOffsetsAndFractions) {
  EXPECT_EQ(*ParseTimestamp("2021-02-04T15:12:50.085+01:00"),
            Utc(2021, 2, 4, 14, 12, 50, 85000000));
  EXPECT_EQ(*ParseTimestamp("2021-02-04T14:12:50Z"), Utc(2021, 2, 4, 14, 12, 50));
  EXPECT_EQ(*ParseTimestamp("0001-01-01T00:00:00Z"), Utc(1, 1, 1, 0, 0, 0));
  EXPECT_THAT(ParseTimestamp("yesterday"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                    HasSubstr("'yesterday' is not an RFC 3339")));
}

TEST(CodecTest, DecodesNamespacesWrittenByTheGoOriginal) {
  absl::StatusOr<Namespace> ns = DecodeNamespace(ReadFixture("go_namespace_default.json"));
  ASSERT_THAT(ns, IsOk());
  EXPECT_EQ(ns->name, "default");
  EXPECT_EQ(ns->export_config, ExportConfig::kStandard);
  EXPECT_EQ(ns->modified, Utc(2021, 2, 4, 14, 7, 3, 123456789));

  ns = DecodeNamespace(ReadFixture("go_namespace_blackbox.json"));
  ASSERT_THAT(ns, IsOk());
  EXPECT_EQ(ns->name, "default-blackbox");
  EXPECT_EQ(ns->export_config, ExportConfig::kBlackbox);
}

TEST(CodecTest, DecodesServersWrittenByTheGoOriginal) {
  absl::StatusOr<Server> server = DecodeServer(ReadFixture("go_server_active.json"));
  ASSERT_THAT(server, IsOk());
  EXPECT_EQ(server->name, "prometheus1.example.com");
  EXPECT_EQ(server->labels, (Labels{{"environment", "test"}}));
  EXPECT_EQ(server->state, ServerState::kActive);
  EXPECT_EQ(server->modified, Utc(2021, 2, 4, 14, 12, 50, 85000000));

  server = DecodeServer(ReadFixture("go_server_nolabels.json"));
  ASSERT_THAT(server, IsOk());
  EXPECT_TRUE(server->labels.empty());
  EXPECT_EQ(server->state, ServerState::kJoining);
}

TEST(CodecTest, DecodesServicesWrittenByTheGoOriginal) {
  absl::StatusOr<Service> service = DecodeService(ReadFixture("go_service_full.json"));
  ASSERT_THAT(service, IsOk());
  EXPECT_EQ(service->id, "93c156b1-f218-5d79-88a5-219307e59d29");
  EXPECT_EQ(service->name, "example");
  EXPECT_EQ(service->namespace_name, "default");
  EXPECT_EQ(service->endpoint, "http://example.com/metrics");
  EXPECT_EQ(service->labels, (Labels{{"label1", "value1"}, {"label2", "value2"}}));
  EXPECT_THAT(service->servers, ElementsAre("prometheus1.example.com"));
  EXPECT_EQ(service->selector, "environment=test");
  EXPECT_EQ(service->description, "a <b>description</b> & more");
  EXPECT_EQ(service->modified, Utc(2021, 2, 4, 14, 13, 50, 85123456));

  service = DecodeService(ReadFixture("go_service_minimal.json"));
  ASSERT_THAT(service, IsOk());
  EXPECT_EQ(service->namespace_name, "default-blackbox");
  EXPECT_TRUE(service->labels.empty());
  EXPECT_TRUE(service->description.empty());
}

TEST(CodecTest, EncodesTheGoFieldOrderAndOmissions) {
  Namespace ns{.name = "default",
               .export_config = ExportConfig::kStandard,
               .modified = Utc(2021, 2, 4, 14, 7, 3)};
  EXPECT_EQ(EncodeNamespace(ns),
            R"({"name":"default","export":1,"modified":"2021-02-04T14:07:03Z"})");

  Server server{
      .name = "p1", .state = ServerState::kActive, .modified = Utc(2021, 2, 4, 14, 12, 50)};
  EXPECT_EQ(EncodeServer(server),
            R"({"name":"p1","labels":null,"state":2,"modified":"2021-02-04T14:12:50Z"})");
  server.labels = {{"env", "test"}};
  EXPECT_EQ(EncodeServer(server), R"({"name":"p1","labels":{"env":"test"},"state":2,)"
                                  R"("modified":"2021-02-04T14:12:50Z"})");

  Service service{.id = "e988791c-2c4e-5eeb-b3b8-db3c0cf82719",
                  .name = "blackbox",
                  .namespace_name = "default-blackbox",
                  .endpoint = "http://blackbox.example.com",
                  .modified = Utc(2021, 2, 5, 8, 5, 44)};
  EXPECT_EQ(EncodeService(service),
            R"({"id":"e988791c-2c4e-5eeb-b3b8-db3c0cf82719","name":"blackbox",)"
            R"("namespace":"default-blackbox","endpoint":"http://blackbox.example.com",)"
            R"("modified":"2021-02-05T08:05:44Z"})");
}

TEST(CodecTest, RoundTripsEveryField) {
  Service service{.id = "93c156b1-f218-5d79-88a5-219307e59d29",
                  .name = "example",
                  .namespace_name = "default",
                  .endpoint = "http://example.com/metrics",
                  .selector = "environment=test",
                  .servers = {"a", "b"},
                  .labels = {{"label1", "välue"}},
                  .description = "d",
                  .modified = Utc(2021, 2, 4, 14, 13, 50, 1)};
  EXPECT_THAT(DecodeService(EncodeService(service)), ::discovery::testing::IsOkAndHolds(service));
  Server server{.name = "s",
                .labels = {{"k", "v"}},
                .state = ServerState::kLeaving,
                .modified = Utc(2030, 1, 1, 0, 0, 0)};
  EXPECT_THAT(DecodeServer(EncodeServer(server)), ::discovery::testing::IsOkAndHolds(server));
}

TEST(CodecTest, TtlAndExpiryOnlyForServicesWithATtl) {
  Service service{.id = "93c156b1-f218-5d79-88a5-219307e59d29",
                  .name = "example",
                  .namespace_name = "default",
                  .endpoint = "http://example.com/metrics",
                  .modified = Utc(2021, 2, 4, 14, 13, 50)};
  EXPECT_EQ(EncodeService(service).find("ttl"), std::string::npos);
  EXPECT_EQ(EncodeService(service).find("expires"), std::string::npos);
  service.ttl = absl::Seconds(90);
  service.expires = Utc(2021, 2, 4, 14, 15, 20, 5);
  EXPECT_EQ(EncodeService(service),
            R"({"id":"93c156b1-f218-5d79-88a5-219307e59d29","name":"example",)"
            R"("namespace":"default","endpoint":"http://example.com/metrics",)"
            R"("modified":"2021-02-04T14:13:50Z","ttl":"1m30s",)"
            R"("expires":"2021-02-04T14:15:20.000000005Z"})");
  EXPECT_THAT(DecodeService(EncodeService(service)), ::discovery::testing::IsOkAndHolds(service));
  EXPECT_THAT(DecodeService(R"({"ttl":"soon"})"),
              ::discovery::testing::StatusIs(absl::StatusCode::kDataLoss));
}

TEST(CodecTest, IgnoresUnknownFieldsAndNulls) {
  absl::StatusOr<Service> service =
      DecodeService(R"({"id":"x","future":{"a":1},"labels":null,"servers":null})");
  ASSERT_THAT(service, IsOk());
  EXPECT_EQ(service->id, "x");
  EXPECT_EQ(service->modified, absl::UnixEpoch());
}

TEST(CodecTest, RejectsMalformedDocumentsWithAReason) {
  EXPECT_THAT(DecodeService("{"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("not valid JSON")));
  EXPECT_THAT(DecodeServer("[]"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("not a JSON object")));
  EXPECT_THAT(
      DecodeServer(R"({"state":"2"})"),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("field \"state\" is not an integer")));
  EXPECT_THAT(DecodeService(R"({"labels":{"a":1}})"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("field \"labels\"")));
  EXPECT_THAT(DecodeNamespace(R"({"modified":"soon"})"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("field \"modified\"")));
}

}  // namespace
}  // namespace discovery::repo

namespace discovery::repo {
namespace {

TEST(CodecTest, RoundTripsPlacementSettings) {
  const placement::Settings settings{.algorithm = placement::Algorithm::kJump, .replicas = 3};
  EXPECT_EQ(EncodePlacementSettings(settings), R"({"algorithm":"jump","replicas":3})");
  absl::StatusOr<placement::Settings> decoded =
      DecodePlacementSettings(EncodePlacementSettings(settings));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, settings);
  EXPECT_EQ(DecodePlacementSettings(R"({"algorithm":"magic","replicas":1})").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodePlacementSettings(R"({"algorithm":"jump","replicas":0})").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodePlacementSettings(R"({"algorithm":"jump","replicas":"1"})").status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace discovery::repo

namespace discovery::repo {
namespace {

// The streaming decoder must answer exactly as the DOM decoder: the same service, or the same
// error with the same message.
void ExpectSameAsDom(const std::string& json) {
  const absl::StatusOr<Service> streamed = DecodeService(json);
  const absl::StatusOr<Service> dom = internal::DecodeServiceWithDom(json);
  ASSERT_EQ(streamed.status(), dom.status()) << json;
  if (dom.ok()) {
    EXPECT_EQ(*streamed, *dom) << json;
  }
}

const std::vector<std::string>& ServiceVectors() {
  static const auto* const vectors = new std::vector<std::string>{
      ReadFixture("go_service_full.json"),
      ReadFixture("go_service_minimal.json"),
      ReadFixture("go_namespace_default.json"),
      ReadFixture("go_server_active.json"),
      "",
      "{",
      "}",
      "[]",
      "null",
      "\"service\"",
      "12",
      "{}",
      "{} {}",
      "{}x",
      R"({"id":"x","future":{"a":1},"labels":null,"servers":null})",
      R"({"labels":{"a":1}})",
      R"({"labels":{"a":null}})",
      R"({"labels":{"a":{"b":"c"}}})",
      R"({"labels":{"a":["b"]}})",
      R"({"labels":{"a":1,"a":"x"}})",
      R"({"labels":{"a":"x","a":1}})",
      R"({"labels":{"a":"x","a":"y","b":"z"}})",
      R"({"labels":{}})",
      R"({"labels":[]})",
      R"({"labels":"a=b"})",
      R"({"labels":{"a":"x"},"labels":null})",
      R"({"labels":{"a":1},"labels":{"b":"y"}})",
      R"({"servers":["a","b"]})",
      R"({"servers":["a",null]})",
      R"({"servers":["a",["b"]]})",
      R"({"servers":["a",{"b":"c"}]})",
      R"({"servers":{}})",
      R"({"servers":"a"})",
      R"({"servers":[1],"servers":["z"]})",
      R"({"servers":["z"],"servers":[]})",
      R"({"id":1})",
      R"({"id":true,"name":false})",
      R"({"id":"a","id":2})",
      R"({"id":2,"id":"a"})",
      R"({"name":{"x":[1,{"y":null}]},"endpoint":[]})",
      R"({"endpoint":1.5,"name":1e999})",
      R"({"description":-1,"selector":18446744073709551615})",
      R"({"servers":[1],"labels":{"a":1},"id":[]})",
      R"({"modified":"soon"})",
      R"({"modified":""})",
      R"({"modified":null})",
      R"({"modified":5})",
      R"({"modified":"soon","id":5})",
      R"({"modified":"2021-02-04T15:12:50.085+01:00"})",
      R"({"modified":"2021-02-04T14:12:50Z","modified":"2022-02-04T14:12:50Z"})",
      R"({"namespace":"default","namespace":null})",
      R"({"id":"\u00e9\ud83d\ude00\n","name":"a\"b"})",
      R"({"id":"\ud800"})",
      "{\"id\":\"\xff\"}",
      R"({"id":"x",})",
      R"({"id":"x" "name":"y"})",
      R"({"id":"x"}  )",
      R"(  {"a":{"b":{"c":{"d":[[[[]]]]}}},"id":"deep"})",
      R"({"id":"x","ttl":"1m","expires":"2021-02-04T14:12:50Z"})",
      R"({"ttl":"30s"})",
      R"({"expires":"2021-02-04T14:12:50Z"})",
      R"({"ttl":"","expires":"2021-02-04T14:12:50Z"})",
      R"({"ttl":"-5s","expires":"2021-02-04T14:12:50Z"})",
      R"({"ttl":"0s"})",
      R"({"ttl":"inf"})",
      R"({"ttl":"soon","expires":"later"})",
      R"({"ttl":60,"expires":"later"})",
      R"({"ttl":"1m","expires":5})",
      R"({"modified":"soon","ttl":5})",
      R"({"modified":"soon","expires":"later"})",
      R"({"ttl":"bad","modified":"soon"})",
      R"({"ttl":"1m","ttl":null,"expires":"2021-02-04T14:12:50Z"})",
      R"({"ttl":"1m","expires":"2021-02-04T14:12:50Z","expires":""})",
  };
  return *vectors;
}

TEST(CodecTest, StreamingServiceDecoderAnswersAsTheDomDecoder) {
  for (const std::string& json : ServiceVectors()) {
    ExpectSameAsDom(json);
  }
  Service service{.id = "93c156b1-f218-5d79-88a5-219307e59d29",
                  .name = "example",
                  .namespace_name = "default",
                  .endpoint = "http://example.com/metrics",
                  .selector = "environment=test",
                  .servers = {"a", "b"},
                  .labels = {{"label1", "välue"}, {"label2", "x"}},
                  .description = "d",
                  .modified = Utc(2021, 2, 4, 14, 13, 50, 1)};
  ExpectSameAsDom(EncodeService(service));
}

// A decoded service is held for as long as it is registered, a million of them after a load:
// its strings must not keep the slack of the parser's growing buffer.
TEST(CodecTest, StreamingServiceDecoderAllocatesStringsToTheirSize) {
  Service service{.id = "93c156b1-f218-5d79-88a5-219307e59d29",
                  .name = "a-job-name-longer-than-short-strings",
                  .namespace_name = "a-namespace-longer-than-short-strings",
                  .endpoint = "http://host-0123456789.example.com:9100/metrics",
                  .selector = "environment=test,datacenter=zurich",
                  .labels = {{"a-label-name-of-some-length", "and-a-value-of-some-length-too"},
                             {"another-label-name", "another-value-for-it"}},
                  .description = "a description of the service that takes some space"};
  absl::StatusOr<Service> decoded = DecodeService(EncodeService(service));
  ASSERT_THAT(decoded, IsOk());
  ASSERT_EQ(*decoded, service);
  for (const std::string* text : {&decoded->id, &decoded->name, &decoded->namespace_name,
                                  &decoded->endpoint, &decoded->selector, &decoded->description}) {
    EXPECT_EQ(text->capacity(), text->size()) << *text;
  }
  for (const auto& [name, value] : decoded->labels) {
    EXPECT_EQ(name.capacity(), name.size()) << name;
    EXPECT_EQ(value.capacity(), value.size()) << value;
  }
}

// Every truncation and many single-byte edits of valid and invalid documents: whatever the
// damage, both decoders must agree on the record or on the reason.
TEST(CodecTest, StreamingServiceDecoderAgreesOnDamagedDocuments) {
  constexpr std::string_view kReplacements = "{}[]\":,0n\\ x";
  for (const std::string& json : ServiceVectors()) {
    for (size_t size = 0; size < json.size(); ++size) {
      ExpectSameAsDom(json.substr(0, size));
    }
    for (size_t at = 0; at < json.size(); ++at) {
      for (char replacement : kReplacements) {
        std::string damaged = json;
        damaged[at] = replacement;
        ExpectSameAsDom(damaged);
      }
    }
  }
}

}  // namespace
}  // namespace discovery::repo

namespace discovery::repo {
namespace {

// ParseTimestamp reads its own (Go's) form without absl's general parser; for every text, in
// that form or near it, it must answer as absl does.
TEST(TimeTest, ParsesLikeAbslRfc3339) {
  std::mt19937 random(15);
  auto pick = [&random](int low, int high) {
    return std::uniform_int_distribution<int>(low, high)(random);
  };
  for (int i = 0; i < 20000; ++i) {
    std::string text = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", pick(0, 9999),
                                   pick(0, 13), pick(0, 32), pick(0, 24), pick(0, 60), pick(0, 61));
    if (const int digits = pick(0, 11); digits > 0) {
      text += '.';
      for (int d = 0; d < digits; ++d) {
        text += static_cast<char>('0' + pick(0, 9));
      }
    }
    switch (pick(0, 9)) {
      case 0:
        text += "+01:30";
        break;
      case 1:
        text += "z";
        break;
      case 2:
        text[10] = 't';
        text += 'Z';
        break;
      case 3:
        text[pick(0, static_cast<int>(text.size()) - 1)] = static_cast<char>(pick(32, 126));
        text += 'Z';
        break;
      default:
        text += 'Z';
        break;
    }
    absl::Time expected;
    std::string error;
    const bool parses = absl::ParseTime(absl::RFC3339_full, text, &expected, &error);
    const absl::StatusOr<absl::Time> parsed = ParseTimestamp(text);
    ASSERT_EQ(parsed.ok(), parses) << text;
    if (parses) {
      EXPECT_EQ(*parsed, expected) << text;
    }
  }
}

}  // namespace
}  // namespace discovery::repo

namespace discovery::repo {
namespace {

// Text is drawn from these: single bytes mostly of what names and labels hold, with quotes, a
// backslash, control characters and bytes that are not UTF-8 among them, and sequences of UTF-8
// (the last a surrogate, which is not).
constexpr std::string_view kTextBytes = "aZ0-_./: \"\\\n\t\x01\x1f\x7f\xff\xc3<";
constexpr std::array<std::string_view, 4> kTextSequences = {"\xc3\xa9", "\xf0\x9f\x98\x80",
                                                            "\xe2\x80\xa8", "\xed\xa0\x80"};

// A string of `length` pieces, each a byte of kTextBytes or one of kTextSequences.
std::string RandomText(std::mt19937& random, int length) {
  std::string text;
  for (int i = 0; i < length; ++i) {
    const size_t piece = std::uniform_int_distribution<size_t>(
        0, kTextBytes.size() + kTextSequences.size() - 1)(random);
    if (piece < kTextBytes.size()) {
      text += kTextBytes[piece];
    } else {
      text += kTextSequences[piece - kTextBytes.size()];
    }
  }
  return text;
}

TEST(CodecTest, EncodesServicesAsTheDomEncoder) {
  std::mt19937 random(15);
  auto pick = [&random](int low, int high) {
    return std::uniform_int_distribution<int>(low, high)(random);
  };
  for (int i = 0; i < 5000; ++i) {
    Service service;
    // Each field empty now and then, as a record may leave it.
    auto text = [&] { return pick(0, 4) == 0 ? std::string{} : RandomText(random, pick(1, 12)); };
    service.id = text();
    service.name = text();
    service.namespace_name = text();
    service.endpoint = text();
    for (int l = pick(0, 3); l > 0; --l) {
      service.labels[RandomText(random, pick(1, 4))] = text();
    }
    for (int s = pick(0, 2); s > 0; --s) {
      service.servers.push_back(text());
    }
    service.selector = text();
    service.description = text();
    service.modified = Utc(pick(1970, 2100), pick(1, 12), pick(1, 28), pick(0, 23), pick(0, 59),
                           pick(0, 59), pick(0, 2) == 0 ? 0 : pick(0, 999'999'999));
    if (pick(0, 2) == 0) {
      service.ttl = absl::Seconds(pick(1, 100'000));
      service.expires = service.modified + service.ttl;
    }
    ASSERT_EQ(EncodeService(service), internal::EncodeServiceWithDom(service)) << "service " << i;
  }
}

TEST(TimeTest, FormatsAsAbslFormatTime) {
  std::mt19937 random(15);
  auto pick = [&random](int64_t low, int64_t high) {
    return std::uniform_int_distribution<int64_t>(low, high)(random);
  };
  std::vector<absl::Time> times = {
      absl::InfinitePast(),      absl::InfiniteFuture(),
      absl::UnixEpoch(),         Utc(999, 12, 31, 23, 59, 59, 1),
      Utc(1000, 1, 1, 0, 0, 0),  Utc(9999, 12, 31, 23, 59, 59, 999999999),
      Utc(10000, 1, 1, 0, 0, 0), Utc(-1, 6, 1, 12, 0, 0, 500)};
  for (int i = 0; i < 20000; ++i) {
    int64_t nanos = 0;
    switch (pick(0, 3)) {
      case 0:
        break;
      case 1:
        nanos = pick(0, 999) * 1'000'000;  // milliseconds, as the Go original writes
        break;
      default:
        nanos = pick(0, 999'999'999);
        break;
    }
    times.push_back(Utc(static_cast<int>(pick(-50, 12000)), static_cast<int>(pick(1, 12)),
                        static_cast<int>(pick(1, 28)), static_cast<int>(pick(0, 23)),
                        static_cast<int>(pick(0, 59)), static_cast<int>(pick(0, 59)), nanos));
  }
  for (const absl::Time time : times) {
    ASSERT_EQ(FormatTimestamp(time),
              absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", time, absl::UTCTimeZone()))
        << absl::ToUnixNanos(time);
  }
}

}  // namespace
}  // namespace discovery::repo
