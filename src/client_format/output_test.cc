#include "client_format/output.h"

#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

#include "model/model.h"
#include "testing/status_matchers.h"

namespace discovery::client_format {
namespace {

using ::discovery::testing::IsOkAndHolds;
using ::discovery::testing::StatusIs;

absl::Time At(std::string_view rfc3339) {
  absl::Time time;
  std::string error;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, std::string(rfc3339), &time, &error)) << error;
  return time;
}

OutputOptions Options(OutputFormat format, bool headers = true) {
  return OutputOptions{.format = format, .headers = headers};
}

Server Prometheus1() {
  return Server{.name = "prometheus1.example.com",
                .labels = {{"environment", "test"}},
                .state = ServerState::kActive,
                .modified = At("2021-02-04T14:12:50Z")};
}

Service Example(std::string_view modified) {
  return Service{.id = "93c156b1-f218-5d79-88a5-219307e59d29",
                 .name = "example",
                 .namespace_name = "default",
                 .endpoint = "http://example.com/metrics",
                 .selector = "environment=test",
                 .servers = {"prometheus1.example.com"},
                 .labels = {{"label1", "value1"}, {"label2", "value2"}},
                 .modified = At(modified)};
}

Service Blackbox() {
  return Service{.id = "e988791c-2c4e-5eeb-b3b8-db3c0cf82719",
                 .name = "blackbox",
                 .namespace_name = "default-blackbox",
                 .endpoint = "http://blackbox.example.com",
                 .selector = "environment=test",
                 .servers = {"prometheus1.example.com"},
                 .modified = At("2021-02-05T08:05:44Z")};
}

std::vector<Namespace> ReadmeNamespaces() {
  return {{.name = "default",
           .export_config = ExportConfig::kStandard,
           .modified = At("2021-02-05T07:58:35Z")},
          {.name = "default-blackbox",
           .export_config = ExportConfig::kBlackbox,
           .modified = At("2021-02-05T08:00:18Z")}};
}

// ---- ParseOutputFormat ----

TEST(ParseOutputFormatTest, AcceptsTheFiveNames) {
  EXPECT_THAT(ParseOutputFormat("table"), IsOkAndHolds(OutputFormat::kTable));
  EXPECT_THAT(ParseOutputFormat("wide"), IsOkAndHolds(OutputFormat::kWide));
  EXPECT_THAT(ParseOutputFormat("json"), IsOkAndHolds(OutputFormat::kJson));
  EXPECT_THAT(ParseOutputFormat("yaml"), IsOkAndHolds(OutputFormat::kYaml));
  EXPECT_THAT(ParseOutputFormat("csv"), IsOkAndHolds(OutputFormat::kCsv));
}

TEST(ParseOutputFormatTest, RejectsOthers) {
  EXPECT_THAT(ParseOutputFormat("xml"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "unknown output format \"xml\": use table, wide, json, yaml or csv"));
  for (const char* bad : {"", "JSON", "Table", " yaml", "yml"}) {
    EXPECT_THAT(ParseOutputFormat(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

// ---- table: the README's examples, byte for byte ----

TEST(TableTest, ReadmeServerList) {
  EXPECT_EQ(FormatServers({Prometheus1()}, OutputOptions{}),
            "NAME                    MODIFIED             STATE  LABELS\n"
            "prometheus1.example.com 2021-02-04T14:12:50Z active environment=test\n");
}

TEST(TableTest, ReadmeNamespaceLists) {
  EXPECT_EQ(FormatNamespaces({{.name = "default",
                               .export_config = ExportConfig::kStandard,
                               .modified = At("2021-02-04T14:07:03Z")}},
                             OutputOptions{}),
            "NAME    EXPORTCONFIG MODIFIED\n"
            "default standard     2021-02-04T14:07:03Z\n");
  EXPECT_EQ(FormatNamespaces(ReadmeNamespaces(), OutputOptions{}),
            "NAME             EXPORTCONFIG MODIFIED\n"
            "default          standard     2021-02-05T07:58:35Z\n"
            "default-blackbox blackbox     2021-02-05T08:00:18Z\n");
}

TEST(TableTest, ReadmeServiceLists) {
  EXPECT_EQ(
      FormatServices({Example("2021-02-04T14:13:50Z")}, OutputOptions{}),
      "NAME    NAMESPACE ID                                   ENDPOINT                   SERVERS   "
      "              LABELS                      SELECTOR         MODIFIED             "
      "DESCRIPTION\n"
      "example default   93c156b1-f218-5d79-88a5-219307e59d29 http://example.com/metrics "
      "prometheus1.example.com label1=value1,label2=value2 environment=test "
      "2021-02-04T14:13:50Z\n");
  EXPECT_EQ(
      FormatServices({Blackbox(), Example("2021-02-05T07:59:17Z")}, OutputOptions{}),
      "NAME     NAMESPACE        ID                                   ENDPOINT                    "
      "SERVERS                 LABELS                      SELECTOR         MODIFIED             "
      "DESCRIPTION\n"
      "blackbox default-blackbox e988791c-2c4e-5eeb-b3b8-db3c0cf82719 http://blackbox.example.com "
      "prometheus1.example.com                             environment=test "
      "2021-02-05T08:05:44Z\n"
      "example  default          93c156b1-f218-5d79-88a5-219307e59d29 http://example.com/metrics  "
      "prometheus1.example.com label1=value1,label2=value2 environment=test "
      "2021-02-05T07:59:17Z\n");
}

// ---- invalid records (docs/decisions.md D36): the reason in wide, json and yaml; table and csv
// unchanged ----

std::vector<ListedService> WithALegacyRecord() {
  return {{.service = Example("2021-02-04T14:13:50Z")},
          {.service = {.id = "43a1c696-2216-59ea-aa99-d2ef7095b9b0",
                       .name = "node",
                       .namespace_name = "default",
                       .endpoint = "localhost:9100",
                       .modified = At("2020-01-02T03:04:05Z")},
           .invalid = "'localhost:9100' is not a valid url"}};
}

TEST(InvalidRecordsTest, TableAndCsvKeepTheirColumns) {
  const std::vector<ListedService> listed = WithALegacyRecord();
  std::vector<Service> plain;
  plain.reserve(listed.size());
  for (const ListedService& item : listed) {
    plain.push_back(item.service);
  }
  EXPECT_EQ(FormatListedServices(listed, OutputOptions{}), FormatServices(plain, OutputOptions{}));
  EXPECT_EQ(FormatListedServices(listed, Options(OutputFormat::kCsv)),
            FormatServices(plain, Options(OutputFormat::kCsv)));
  EXPECT_EQ(FormatListedServices(listed, Options(OutputFormat::kTable, false)),
            "example default 93c156b1-f218-5d79-88a5-219307e59d29 http://example.com/metrics "
            "prometheus1.example.com label1=value1,label2=value2 environment=test "
            "2021-02-04T14:13:50Z\n"
            "node    default 43a1c696-2216-59ea-aa99-d2ef7095b9b0 localhost:9100             "
            "                                                                     "
            "2020-01-02T03:04:05Z\n");
}

TEST(InvalidRecordsTest, WideShowsTheReason) {
  EXPECT_EQ(
      FormatListedServices(WithALegacyRecord(), Options(OutputFormat::kWide)),
      "NAME    NAMESPACE ID                                   ENDPOINT                   SERVERS   "
      "              LABELS                      SELECTOR         MODIFIED             DESCRIPTION "
      "INVALID                             EXPIRES\n"
      "example default   93c156b1-f218-5d79-88a5-219307e59d29 http://example.com/metrics "
      "prometheus1.example.com label1=value1,label2=value2 environment=test "
      "2021-02-04T14:13:50Z                                                 -\n"
      "node    default   43a1c696-2216-59ea-aa99-d2ef7095b9b0 localhost:9100             "
      "                                                                     2020-01-02T03:04:05Z "
      "            'localhost:9100' is not a valid url -\n");
  // Other lists are the same as their table.
  EXPECT_EQ(FormatServers({Prometheus1()}, Options(OutputFormat::kWide)),
            FormatServers({Prometheus1()}, OutputOptions{}));
  EXPECT_EQ(FormatNamespaces(ReadmeNamespaces(), Options(OutputFormat::kWide)),
            FormatNamespaces(ReadmeNamespaces(), OutputOptions{}));
}

TEST(TtlTest, JsonYamlAndWideShowTheExpiryAndTheTableKeepsItsColumns) {
  Service with_ttl = Example("2021-02-04T14:13:50Z");
  with_ttl.ttl = absl::Minutes(1);
  with_ttl.expires = At("2021-02-04T14:14:50.5Z");
  const std::vector<ListedService> listed = {{.service = with_ttl}, {.service = Blackbox()}};
  const std::vector<Service> plain = {Example("2021-02-04T14:13:50Z"), Blackbox()};
  EXPECT_EQ(FormatListedServices(listed, OutputOptions{}), FormatServices(plain, OutputOptions{}));
  EXPECT_EQ(FormatListedServices(listed, Options(OutputFormat::kCsv)),
            FormatServices(plain, Options(OutputFormat::kCsv)));

  const std::string wide = FormatListedServices(listed, Options(OutputFormat::kWide, false));
  EXPECT_THAT(wide, ::testing::HasSubstr(" 2021-02-04T14:14:50Z (ttl 1m0s)\n"));
  EXPECT_THAT(wide, ::testing::EndsWith(" -\n"));

  const std::string json = FormatListedServices(listed, Options(OutputFormat::kJson));
  EXPECT_THAT(json, ::testing::HasSubstr(R"(
    "modified": "2021-02-04T14:13:50Z",
    "ttl": "1m0s",
    "expires": "2021-02-04T14:14:50.5Z"
  })"));
  EXPECT_EQ(json.find("ttl", json.find("blackbox")), std::string::npos);
  const std::string yaml = FormatListedServices(listed, Options(OutputFormat::kYaml));
  EXPECT_THAT(yaml, ::testing::HasSubstr("modified: 2021-02-04T14:13:50Z\n  ttl: 1m0s\n"
                                         "  expires: 2021-02-04T14:14:50.5Z\n"));
  EXPECT_EQ(yaml.find("ttl", yaml.find("blackbox")), std::string::npos);
}

TEST(InvalidRecordsTest, JsonAndYamlAddTheReasonToInvalidRecordsOnly) {
  const std::string json = FormatListedServices(WithALegacyRecord(), Options(OutputFormat::kJson));
  EXPECT_THAT(json, ::testing::HasSubstr(R"(
  {
    "id": "43a1c696-2216-59ea-aa99-d2ef7095b9b0",
    "name": "node",
    "namespace": "default",
    "endpoint": "localhost:9100",
    "labels": {},
    "servers": [],
    "selector": "",
    "description": "",
    "modified": "2020-01-02T03:04:05Z",
    "invalid": "'localhost:9100' is not a valid url"
  }
)"));
  EXPECT_EQ(json.find("invalid"), json.rfind("invalid"));

  const std::string yaml = FormatListedServices(WithALegacyRecord(), Options(OutputFormat::kYaml));
  EXPECT_THAT(yaml, ::testing::HasSubstr(R"(  modified: 2020-01-02T03:04:05Z
  invalid: "'localhost:9100' is not a valid url"
)"));
  EXPECT_EQ(yaml.find("invalid"), yaml.rfind("invalid"));
}

TEST(TableTest, WithoutHeadersOnlyItems) {
  EXPECT_EQ(FormatNamespaces(ReadmeNamespaces(), Options(OutputFormat::kTable, false)),
            "default          standard 2021-02-05T07:58:35Z\n"
            "default-blackbox blackbox 2021-02-05T08:00:18Z\n");
}

TEST(TableTest, EmptyListPrintsHeaderOrNothing) {
  EXPECT_EQ(FormatServers({}, OutputOptions{}), "NAME MODIFIED STATE LABELS\n");
  EXPECT_EQ(FormatServers({}, Options(OutputFormat::kTable, false)), "");
}

TEST(TableTest, MeasuresCellsInCharactersNotBytes) {
  Server server = Prometheus1();
  server.name = "zürich";
  EXPECT_EQ(FormatServers({server, Prometheus1()}, Options(OutputFormat::kTable, false)),
            "zürich                  2021-02-04T14:12:50Z active environment=test\n"
            "prometheus1.example.com 2021-02-04T14:12:50Z active environment=test\n");
}

TEST(TableTest, ShowsStateNamesAndJoinsServers) {
  Server leaving = Prometheus1();
  leaving.state = ServerState::kLeaving;
  leaving.labels.clear();
  EXPECT_EQ(FormatServers({leaving}, Options(OutputFormat::kTable, false)),
            "prometheus1.example.com 2021-02-04T14:12:50Z leaving\n");

  Service service = Blackbox();
  service.servers = {"a", "b"};
  service.description = "probe";
  EXPECT_EQ(FormatServices({service}, Options(OutputFormat::kTable, false)),
            "blackbox default-blackbox e988791c-2c4e-5eeb-b3b8-db3c0cf82719 "
            "http://blackbox.example.com a,b  environment=test 2021-02-05T08:05:44Z probe\n");
}

// ---- csv ----

TEST(CsvTest, SemicolonSeparatedWithHeader) {
  EXPECT_EQ(FormatNamespaces(ReadmeNamespaces(), Options(OutputFormat::kCsv)),
            "NAME;EXPORTCONFIG;MODIFIED\n"
            "default;standard;2021-02-05T07:58:35Z\n"
            "default-blackbox;blackbox;2021-02-05T08:00:18Z\n");
  EXPECT_EQ(FormatServers({Prometheus1()}, Options(OutputFormat::kCsv, false)),
            "prometheus1.example.com;2021-02-04T14:12:50Z;active;environment=test\n");
  EXPECT_EQ(FormatServers({}, Options(OutputFormat::kCsv, false)), "");
}

TEST(CsvTest, QuotesLikeGo) {
  Service service = Blackbox();
  service.servers = {"a", "b"};
  service.labels = {{"x", "a;b"}};
  service.selector = "";
  service.description = "say \"hi\"\nbye";
  EXPECT_EQ(FormatServices({service}, Options(OutputFormat::kCsv, false)),
            "blackbox;default-blackbox;e988791c-2c4e-5eeb-b3b8-db3c0cf82719;"
            "http://blackbox.example.com;a,b;\"x=a;b\";;2021-02-05T08:05:44Z;"
            "\"say \"\"hi\"\"\nbye\"\n");
  service.description = " leading space";
  EXPECT_THAT(FormatServices({service}, Options(OutputFormat::kCsv, false)),
              ::testing::EndsWith(";\" leading space\"\n"));
}

// ---- json ----

TEST(JsonTest, Servers) {
  Server bare{.name = "p2", .state = ServerState::kLeaving, .modified = At("2021-02-04T14:12:50Z")};
  EXPECT_EQ(FormatServers({Prometheus1(), bare}, Options(OutputFormat::kJson)),
            R"([
  {
    "name": "prometheus1.example.com",
    "labels": {
      "environment": "test"
    },
    "state": 2,
    "modified": "2021-02-04T14:12:50Z"
  },
  {
    "name": "p2",
    "labels": {},
    "state": 0,
    "modified": "2021-02-04T14:12:50Z"
  }
]
)");
}

TEST(JsonTest, Namespaces) {
  EXPECT_EQ(FormatNamespaces(ReadmeNamespaces(), Options(OutputFormat::kJson)),
            R"([
  {
    "name": "default",
    "export": 1,
    "modified": "2021-02-05T07:58:35Z"
  },
  {
    "name": "default-blackbox",
    "export": 2,
    "modified": "2021-02-05T08:00:18Z"
  }
]
)");
}

TEST(JsonTest, ServicesShowEveryFieldAndEscapeHtml) {
  Service service = Example("2021-02-04T14:13:50.25Z");
  service.endpoint = "http://example.com/metrics?a=1&b=2";
  service.description = "<b>";
  EXPECT_EQ(FormatServices({service, Service{}}, Options(OutputFormat::kJson)),
            R"([
  {
    "id": "93c156b1-f218-5d79-88a5-219307e59d29",
    "name": "example",
    "namespace": "default",
    "endpoint": "http://example.com/metrics?a=1\u0026b=2",
    "labels": {
      "label1": "value1",
      "label2": "value2"
    },
    "servers": [
      "prometheus1.example.com"
    ],
    "selector": "environment=test",
    "description": "\u003cb\u003e",
    "modified": "2021-02-04T14:13:50.25Z"
  },
  {
    "id": "",
    "name": "",
    "namespace": "",
    "endpoint": "",
    "labels": {},
    "servers": [],
    "selector": "",
    "description": "",
    "modified": "1970-01-01T00:00:00Z"
  }
]
)");
}

// Scripts may switch formats: JSON and YAML show the same fields, empty ones included.
TEST(JsonTest, JsonAndYamlShowTheSameFields) {
  const auto keys_of_json = [](const std::string& text) {
    std::vector<std::set<std::string>> keys;
    for (const auto& item : nlohmann::json::parse(text)) {
      std::set<std::string> names;
      for (const auto& [key, value] : item.items()) {
        names.insert(key);
      }
      keys.push_back(names);
    }
    return keys;
  };
  const auto keys_of_yaml = [](const std::string& text) {
    std::vector<std::set<std::string>> keys;
    for (const YAML::Node& item : YAML::Load(text)) {
      std::set<std::string> names;
      for (const auto& entry : item) {
        names.insert(entry.first.as<std::string>());
      }
      keys.push_back(names);
    }
    return keys;
  };
  const std::vector<Service> services = {Example("2021-02-04T14:13:50Z"), Service{}};
  EXPECT_EQ(keys_of_json(FormatServices(services, Options(OutputFormat::kJson))),
            keys_of_yaml(FormatServices(services, Options(OutputFormat::kYaml))));
  const std::vector<Server> servers = {
      Prometheus1(), Server{.name = "p2", .modified = At("2021-02-04T14:12:50Z")}};
  EXPECT_EQ(keys_of_json(FormatServers(servers, Options(OutputFormat::kJson))),
            keys_of_yaml(FormatServers(servers, Options(OutputFormat::kYaml))));
  EXPECT_EQ(keys_of_json(FormatListedServices(WithALegacyRecord(), Options(OutputFormat::kJson))),
            keys_of_yaml(FormatListedServices(WithALegacyRecord(), Options(OutputFormat::kYaml))));
}

TEST(JsonTest, EmptyListIsEmptyArray) {
  EXPECT_EQ(FormatServers({}, Options(OutputFormat::kJson)), "[]\n");
  EXPECT_EQ(FormatNamespaces({}, Options(OutputFormat::kJson)), "[]\n");
  EXPECT_EQ(FormatServices({}, Options(OutputFormat::kJson)), "[]\n");
}

TEST(JsonTest, ModifiedIsRfc3339NanoLikeGo) {
  const auto modified = [](absl::Time time) {
    std::string json =
        FormatNamespaces({{.name = "n", .modified = time}}, Options(OutputFormat::kJson));
    const size_t start = json.find(R"("modified": ")") + 13;
    return json.substr(start, json.find('"', start) - start);
  };
  const absl::Time base = At("2021-02-04T14:12:50Z");
  EXPECT_EQ(modified(base), "2021-02-04T14:12:50Z");
  EXPECT_EQ(modified(base + absl::Milliseconds(500)), "2021-02-04T14:12:50.5Z");
  EXPECT_EQ(modified(base + absl::Nanoseconds(123456789)), "2021-02-04T14:12:50.123456789Z");
  EXPECT_EQ(modified(base + absl::Nanoseconds(1) + absl::Nanoseconds(1) / 4),
            "2021-02-04T14:12:50.000000001Z");
  EXPECT_EQ(modified(At("2021-02-04T15:12:50.1+01:00")), "2021-02-04T14:12:50.1Z");
}

TEST(JsonTest, EscapesLineSeparatorsAndReplacesInvalidUtf8) {
  Service service = Blackbox();
  service.description = "a\u2028b\xff";
  EXPECT_THAT(FormatServices({service}, Options(OutputFormat::kJson)),
              ::testing::HasSubstr(R"("description": "a\u2028b)"
                                   "\xEF\xBF\xBD\""));
}

// ---- yaml ----

TEST(YamlTest, Servers) {
  Server bare{.name = "p2", .state = ServerState::kLeaving, .modified = At("2021-02-04T14:12:50Z")};
  EXPECT_EQ(FormatServers({Prometheus1(), bare}, Options(OutputFormat::kYaml)),
            R"(- name: prometheus1.example.com
  labels:
    environment: test
  state: 2
  modified: 2021-02-04T14:12:50Z
- name: p2
  labels: {}
  state: 0
  modified: 2021-02-04T14:12:50Z
)");
}

TEST(YamlTest, Namespaces) {
  EXPECT_EQ(FormatNamespaces(ReadmeNamespaces(), Options(OutputFormat::kYaml)),
            R"(- name: default
  export: 1
  modified: 2021-02-05T07:58:35Z
- name: default-blackbox
  export: 2
  modified: 2021-02-05T08:00:18Z
)");
}

TEST(YamlTest, ServicesKeepEveryKeyWithPlainEndpoint) {
  Service bare{.name = "b", .namespace_name = "default", .endpoint = "http://b:9100"};
  EXPECT_EQ(FormatServices({Example("2021-02-04T14:13:50.5Z"), bare}, Options(OutputFormat::kYaml)),
            R"(- id: 93c156b1-f218-5d79-88a5-219307e59d29
  name: example
  namespace: default
  endpoint: http://example.com/metrics
  selector: environment=test
  servers:
    - prometheus1.example.com
  labels:
    label1: value1
    label2: value2
  description: ""
  modified: 2021-02-04T14:13:50.5Z
- id: ""
  name: b
  namespace: default
  endpoint: http://b:9100
  selector: ""
  servers: []
  labels: {}
  description: ""
  modified: 1970-01-01T00:00:00Z
)");
}

TEST(YamlTest, QuotesStringsThatWouldReadAsOtherTypes) {
  Service service{.name = "123",
                  .namespace_name = "yes",
                  .endpoint = "http://a?x=1&y=2",
                  .selector = "null",
                  .labels = {{"on", "0x1F"},
                             {"u", "0X1F"},
                             {"v", "1.2.3"},
                             {"w", "1:20"},
                             {"x", "-1.5e3"},
                             {"y", ".inf"},
                             {"z", "10s"}},
                  .description = "a: b"};
  EXPECT_EQ(FormatServices({service}, Options(OutputFormat::kYaml)),
            R"(- id: ""
  name: "123"
  namespace: "yes"
  endpoint: http://a?x=1&y=2
  selector: "null"
  servers: []
  labels:
    "on": "0x1F"
    u: "0X1F"
    v: 1.2.3
    w: "1:20"
    x: "-1.5e3"
    "y": ".inf"
    z: 10s
  description: "a: b"
  modified: 1970-01-01T00:00:00Z
)");
}

// A namespace token could register such a label; std::regex overflowed the stack on it and every
// `service list -o yaml` covering it crashed.
TEST(YamlTest, PrintsHugeLabelValuesWithoutRecursion) {
  const std::string digits(300000, '7');
  const std::string words(300000, 'a');
  Service service{.name = "big", .labels = {{"digits", digits}, {"words", words}}};
  const std::string yaml = FormatServices({service}, Options(OutputFormat::kYaml));
  EXPECT_NE(yaml.find("digits: \"" + digits + "\""), std::string::npos);
  EXPECT_NE(yaml.find("words: " + words), std::string::npos);
}

// The fuzzer's inputs (fuzz/corpus/yaml_output/invalid_utf8, noncharacter_quoted): yaml-cpp
// wrote these bytes raw into plain scalars (no longer UTF-8, so no longer YAML) and replaced them
// in quoted ones; now they read back as U+FFFD, as the JSON output has invalid UTF-8.
TEST(YamlTest, ReplacesInvalidUtf8AndNoncharactersWhateverTheQuoting) {
  Server server{.name =
                    "a\x80"
                    "b",
                .labels = {{"plain", "\xff\xfe"},
                           {"quoted", "\xc3\n"},
                           {"nonchar", "x\uFFFE"},
                           {"nonchar_quoted", "\uFDD0\n"}}};
  const std::string yaml = FormatServers({server}, Options(OutputFormat::kYaml));
  const YAML::Node node = YAML::Load(yaml)[0];
  EXPECT_EQ(node["name"].as<std::string>(), "a\uFFFDb");
  EXPECT_EQ(node["labels"]["plain"].as<std::string>(), "\uFFFD\uFFFD");
  EXPECT_EQ(node["labels"]["quoted"].as<std::string>(), "\uFFFD\n");
  EXPECT_EQ(node["labels"]["nonchar"].as<std::string>(), "x\uFFFD");
  EXPECT_EQ(node["labels"]["nonchar_quoted"].as<std::string>(), "\uFFFD\n");
  // The same text as the JSON output gives invalid UTF-8.
  EXPECT_THAT(FormatServers({server}, Options(OutputFormat::kJson)),
              ::testing::HasSubstr("\"plain\": \"\uFFFD\uFFFD\""));
}

// fuzz/corpus/yaml_output/carriage_return: yaml-cpp left a carriage return in a plain scalar,
// where the reader takes it for a line break: "zon\r" read as "zon", "\r" as null.
TEST(YamlTest, QuotesCarriageReturns) {
  Service service{.selector = "zon\r", .labels = {{"cr", "\r"}}, .description = "a\rb"};
  const std::string yaml = FormatServices({service}, Options(OutputFormat::kYaml));
  EXPECT_THAT(yaml, ::testing::HasSubstr("selector: \"zon\\r\"\n"));
  const YAML::Node node = YAML::Load(yaml)[0];
  EXPECT_EQ(node["selector"].as<std::string>(), "zon\r");
  EXPECT_EQ(node["labels"]["cr"].as<std::string>(), "\r");
  EXPECT_EQ(node["description"].as<std::string>(), "a\rb");
}

// fuzz/corpus/yaml_output/long_escaped_key: yaml-cpp writes a key of more than 1024 bytes as an
// explicit "? key", but judged by its length before escaping; 300 control characters written
// as \x01 each made an implicit key its reader rejected.
TEST(YamlTest, LabelKeysLongerOnceEscapedAreExplicitKeys) {
  const std::string controls(300, '\x01');
  const std::string digits(1023, '7');  // quoted: 1025 bytes written
  Server server{.name = "p", .labels = {{controls, "a"}, {digits, "b"}, {"short", "c"}}};
  const std::string yaml = FormatServers({server}, Options(OutputFormat::kYaml));
  EXPECT_THAT(yaml, ::testing::HasSubstr("? \"\\x01\\x01"));
  EXPECT_THAT(yaml, ::testing::HasSubstr("? \"777"));
  EXPECT_THAT(yaml, ::testing::HasSubstr("short: c\n"));
  const YAML::Node labels = YAML::Load(yaml)[0]["labels"];
  EXPECT_EQ(labels[controls].as<std::string>(), "a");
  EXPECT_EQ(labels[digits].as<std::string>(), "b");
  EXPECT_EQ(labels["short"].as<std::string>(), "c");
}

TEST(YamlTest, EmptyListIsEmptySequence) {
  EXPECT_EQ(FormatServers({}, Options(OutputFormat::kYaml)), "[]\n");
  EXPECT_EQ(FormatNamespaces({}, Options(OutputFormat::kYaml)), "[]\n");
  EXPECT_EQ(FormatServices({}, Options(OutputFormat::kYaml)), "[]\n");
}

}  // namespace
}  // namespace discovery::client_format

namespace discovery::client_format {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::vector<ListedService> ThreeRows() {
  std::vector<ListedService> rows = WithALegacyRecord();
  Service third = Blackbox();
  third.servers = {"prom-a", "prom-b"};
  rows.push_back({.service = third});
  return rows;
}

TEST(ListedServiceWriterTest, JsonCsvAndYamlRowsAreWrittenAsTheyAreAdded) {
  for (const OutputFormat format : {OutputFormat::kJson, OutputFormat::kCsv, OutputFormat::kYaml}) {
    std::ostringstream out;
    ListedServiceWriter writer(out, {.format = format});
    const std::vector<ListedService> rows = ThreeRows();
    writer.Add(rows[0]);
    EXPECT_THAT(out.str(), HasSubstr(rows[0].service.endpoint)) << static_cast<int>(format);
    EXPECT_THAT(out.str(), Not(HasSubstr(rows[2].service.endpoint)));
    writer.Add(rows[1]);
    writer.Add(rows[2]);
    writer.Finish();
    EXPECT_EQ(writer.rows(), 3U);
    EXPECT_EQ(out.str(), FormatListedServices(rows, {.format = format}));
  }
}

TEST(ListedServiceWriterTest, JsonIsTheIndentedArrayOfItsRows) {
  std::ostringstream out;
  ListedServiceWriter writer(out, {.format = OutputFormat::kJson});
  for (const ListedService& row : ThreeRows()) {
    writer.Add(row);
  }
  writer.Finish();
  const nlohmann::ordered_json parsed = nlohmann::ordered_json::parse(out.str());
  ASSERT_EQ(parsed.size(), 3U);
  EXPECT_EQ(parsed[2]["servers"], nlohmann::ordered_json::array({"prom-a", "prom-b"}));
  EXPECT_EQ(parsed[1]["invalid"], "'localhost:9100' is not a valid url");
  // Byte for byte what one array printed at once (json.MarshalIndent) is.
  EXPECT_EQ(out.str(), parsed.dump(2) + "\n");
}

TEST(ListedServiceWriterTest, YamlIsOneSequenceOfItsRows) {
  std::ostringstream out;
  ListedServiceWriter writer(out, {.format = OutputFormat::kYaml});
  for (const ListedService& row : ThreeRows()) {
    writer.Add(row);
  }
  writer.Finish();
  const YAML::Node parsed = YAML::Load(out.str());
  ASSERT_TRUE(parsed.IsSequence());
  ASSERT_EQ(parsed.size(), 3U);
  EXPECT_EQ(parsed[2]["servers"][1].as<std::string>(), "prom-b");
  EXPECT_EQ(parsed[1]["invalid"].as<std::string>(), "'localhost:9100' is not a valid url");
}

TEST(ListedServiceWriterTest, TableIsWrittenAtTheEndAlignedOverAllRows) {
  std::ostringstream out;
  ListedServiceWriter writer(out, {.format = OutputFormat::kTable});
  std::vector<ListedService> rows = ThreeRows();
  rows[2].service.name = "a-much-longer-name-than-the-others";
  for (const ListedService& row : rows) {
    writer.Add(row);
    EXPECT_EQ(out.str(), "");  // widths depend on rows still to come
  }
  writer.Finish();
  EXPECT_EQ(out.str(), FormatListedServices(rows, {.format = OutputFormat::kTable}));
  const std::string text = out.str();
  const size_t namespace_column = text.find("NAMESPACE");
  EXPECT_EQ(namespace_column, std::string("a-much-longer-name-than-the-others ").size());
}

TEST(ListedServiceWriterTest, NoRows) {
  for (const auto& [format, expected] :
       std::vector<std::pair<OutputFormat, std::string>>{{OutputFormat::kJson, "[]\n"},
                                                         {OutputFormat::kYaml, "[]\n"},
                                                         {OutputFormat::kCsv, ""}}) {
    std::ostringstream out;
    ListedServiceWriter writer(out, {.format = format, .headers = false});
    writer.Finish();
    EXPECT_EQ(out.str(), expected);
  }
}

}  // namespace
}  // namespace discovery::client_format
