#include "client_format/service_import.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "client_format/output.h"
#include "model/model.h"
#include "testing/status_matchers.h"

namespace discovery::client_format {
namespace {

using ::discovery::testing::IsOkAndHolds;
using ::discovery::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// What registration uses; id, servers and modified are the server's business.
MATCHER_P(RegistersLike, expected, "") {
  return arg.name == expected.name && arg.namespace_name == expected.namespace_name &&
         arg.endpoint == expected.endpoint && arg.labels == expected.labels &&
         arg.selector == expected.selector && arg.description == expected.description;
}

std::vector<Service> SampleServices() {
  return {
      Service{.id = "93c156b1-f218-5d79-88a5-219307e59d29",
              .name = "example",
              .namespace_name = "default",
              .endpoint = "http://example.com/metrics?a=1&b=<2>",
              .selector = "environment=test",
              .servers = {"prometheus1.example.com", "prometheus2.example.com"},
              .labels = {{"label1", "value1"}, {"on", "123"}},
              .description = "yes: \"quoted\" & <tagged>\nsecond line",
              .modified = absl::FromUnixSeconds(1612448030) + absl::Milliseconds(5)},
      Service{.name = "blackbox",
              .namespace_name = "default-blackbox",
              .endpoint = "http://blackbox.example.com"},
  };
}

TEST(ServiceImportTest, ReadsWhatYamlListPrints) {
  const std::vector<Service> services = SampleServices();
  const std::string yaml = FormatServices(services, {.format = OutputFormat::kYaml});
  EXPECT_THAT(ParseServiceImport(yaml),
              IsOkAndHolds(ElementsAre(RegistersLike(services[0]), RegistersLike(services[1]))));
}

TEST(ServiceImportTest, ReadsWhatJsonListPrints) {
  const std::vector<Service> services = SampleServices();
  const std::string json = FormatServices(services, {.format = OutputFormat::kJson});
  EXPECT_THAT(ParseServiceImport(json),
              IsOkAndHolds(ElementsAre(RegistersLike(services[0]), RegistersLike(services[1]))));
}

// `service list` marks records that cannot be served with "invalid"; once fixed in the file
// they can be imported (the server checks them again).
TEST(ServiceImportTest, AcceptsWhatListPrintsForInvalidRecords) {
  const std::vector<Service> services = SampleServices();
  const std::vector<ListedService> listed = {{.service = services[0]},
                                             {.service = services[1], .invalid = "too big"}};
  for (OutputFormat format : {OutputFormat::kYaml, OutputFormat::kJson}) {
    EXPECT_THAT(ParseServiceImport(FormatListedServices(listed, {.format = format})),
                IsOkAndHolds(ElementsAre(RegistersLike(services[0]), RegistersLike(services[1]))));
  }
}

TEST(ServiceImportTest, KeepsIdAndServersAndDefaultsTheNamespace) {
  const auto services = ParseServiceImport(R"(
- id: abc
  name: a
  endpoint: http://a:9100/metrics
  servers: [p1, p2]
  modified: 2021-02-04T14:13:50Z
- name: b
  namespace: ""
  endpoint: http://b:9100
)");
  ASSERT_THAT(services, IsOkAndHolds(SizeIs(2)));
  EXPECT_EQ((*services)[0].id, "abc");
  EXPECT_THAT((*services)[0].servers, ElementsAre("p1", "p2"));
  EXPECT_EQ((*services)[0].namespace_name, "default");
  EXPECT_EQ((*services)[0].modified, absl::UnixEpoch());
  EXPECT_EQ((*services)[1].namespace_name, "default");
}

TEST(ServiceImportTest, ReassemblesGoUrlStructEndpoints) {
  // As the Go original's `service list -o yaml` wrote it.
  EXPECT_THAT(ParseServiceImport(R"(- id: 5e3c7a6c-1b0b-5c6b-9a3e-0d1c9d9d4a11
  name: node
  namespace: default
  endpoint:
    scheme: http
    opaque: ""
    user: null
    host: example.com:9100
    path: /metrics
    rawpath: ""
    omithost: false
    forcequery: false
    rawquery: ""
    fragment: ""
    rawfragment: ""
  selector: ""
  servers:
  - prometheus1.example.com
  labels:
    env: prod
  description: ""
  modified: 2021-02-04T14:13:50.123456789Z
)"),
              IsOkAndHolds(ElementsAre(RegistersLike(Service{
                  .name = "node",
                  .namespace_name = "default",
                  .endpoint = "http://example.com:9100/metrics",
                  .labels = {{"env", "prod"}},
              }))));
}

TEST(ServiceImportTest, UrlStructQueryFragmentAndUser) {
  const auto endpoint = [](const std::string& fields) -> std::string {
    auto services = ParseServiceImport("- name: a\n  endpoint: {" + fields + "}\n");
    EXPECT_THAT(services, IsOkAndHolds(SizeIs(1))) << fields;
    return services.ok() && services->size() == 1 ? (*services)[0].endpoint : "";
  };
  EXPECT_EQ(endpoint("scheme: https, host: h, path: /p, rawquery: 'a=1&b=2'"),
            "https://h/p?a=1&b=2");
  EXPECT_EQ(endpoint("scheme: http, host: h, forcequery: true"), "http://h?");
  EXPECT_EQ(endpoint("scheme: http, host: h, path: /a b, rawpath: /a%20b"), "http://h/a%20b");
  EXPECT_EQ(endpoint("scheme: http, host: h, path: p"), "http://h/p");
  EXPECT_EQ(endpoint("scheme: http, host: h, fragment: f"), "http://h#f");
  EXPECT_EQ(endpoint("scheme: http, host: h, user: {}"), "http://h");
  EXPECT_EQ(endpoint("scheme: http, host: h, user: bob"), "http://bob@h");
  EXPECT_EQ(endpoint("scheme: http, host: h, user: {username: bob, password: pw}"),
            "http://bob:pw@h");
  EXPECT_EQ(endpoint("scheme: mailto, opaque: bob@example.com"), "mailto:bob@example.com");
}

TEST(ServiceImportTest, EmptyDocumentsYieldNoServices) {
  for (const char* content : {"", "  \n", "# nothing\n", "[]", " []\n", "---\n"}) {
    EXPECT_THAT(ParseServiceImport(content), IsOkAndHolds(IsEmpty())) << content;
  }
}

TEST(ServiceImportTest, AcceptsYamlFlowSequences) {
  EXPECT_THAT(ParseServiceImport("[{name: a, endpoint: 'http://a:80'}]"),
              IsOkAndHolds(ElementsAre(Field(&Service::endpoint, "http://a:80"))));
}

TEST(ServiceImportTest, DecodesJsonEscapesYamlCppCannot) {
  EXPECT_THAT(ParseServiceImport(
                  R"([{"name": "a", "endpoint": "http://a", "description": "\ud83d\ude00"}])"),
              IsOkAndHolds(ElementsAre(Field(&Service::description, "\xF0\x9F\x98\x80"))));
}

TEST(ServiceImportTest, RejectsDocumentsThatAreNotLists) {
  EXPECT_THAT(
      ParseServiceImport("name: a\nendpoint: http://a\n"),
      StatusIs(absl::StatusCode::kInvalidArgument, "expected a list of services, got a mapping"));
  EXPECT_THAT(ParseServiceImport("hello"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                    "expected a list of services, got a string"));
  EXPECT_THAT(
      ParseServiceImport("- just a string\n"),
      StatusIs(absl::StatusCode::kInvalidArgument, "entry 1: expected a mapping, got a string"));
}

TEST(ServiceImportTest, RejectsUnknownKeysNamingTheEntry) {
  EXPECT_THAT(ParseServiceImport("- {name: a, endpoint: http://a}\n"
                                 "- {name: b, endpoint: http://b, port: 80}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, "entry 2: unknown key \"port\""));
  EXPECT_THAT(
      ParseServiceImport("- {name: a, endpoint: {scheme: http, host: a, port: 80}}\n"),
      StatusIs(absl::StatusCode::kInvalidArgument, "entry 1: endpoint: unknown key \"port\""));
}

TEST(ServiceImportTest, RejectsMissingEndpoint) {
  EXPECT_THAT(ParseServiceImport("- {name: a, endpoint: http://a}\n"
                                 "- {name: b, endpoint: http://b}\n"
                                 "- {name: c}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, "entry 3: endpoint is missing"));
  for (const char* entry :
       {"- {name: a, endpoint: ''}", "- {name: a, endpoint: }", "- {name: a, endpoint: {}}",
        "- {name: a, endpoint: {path: ''}}", R"([{"name": "a", "endpoint": null}])"}) {
    EXPECT_THAT(ParseServiceImport(entry),
                StatusIs(absl::StatusCode::kInvalidArgument, "entry 1: endpoint is missing"))
        << entry;
  }
}

TEST(ServiceImportTest, RejectsValuesOfTheWrongType) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"- {endpoint: http://a, labels: [a, b]}", "entry 1: labels: expected a mapping, got a list"},
      {"- {endpoint: http://a, labels: {a: [b]}}",
       "entry 1: labels: a: expected a string, got a list"},
      {"- {endpoint: http://a, servers: p1}", "entry 1: servers: expected a list, got a string"},
      {"- {endpoint: http://a, servers: [p1, {a: b}]}",
       "entry 1: servers: item 2: expected a string, got a mapping"},
      {"- {endpoint: http://a, name: {a: b}}", "entry 1: name: expected a string, got a mapping"},
      {"- {endpoint: [http://a]}",
       "entry 1: endpoint: expected a URL or a mapping of URL fields, got a list"},
      {"- {endpoint: {host: a, forcequery: maybe}}",
       "entry 1: endpoint: forcequery: expected a boolean, got a string"},
      {"- {endpoint: http://a, modified: [1]}", "entry 1: modified: expected a string, got a list"},
      {R"([{"endpoint": "http://a", "labels": ["x"]}])",
       "entry 1: labels: expected a mapping, got a list"},
  };
  for (const auto& [content, message] : cases) {
    EXPECT_THAT(ParseServiceImport(content), StatusIs(absl::StatusCode::kInvalidArgument, message))
        << content;
  }
}

TEST(ServiceImportTest, AcceptsJsonScalarsAsStrings) {
  EXPECT_THAT(ParseServiceImport(R"([{"name": 5, "endpoint": "http://a", "labels": {"b": true}}])"),
              IsOkAndHolds(ElementsAre(RegistersLike(Service{.name = "5",
                                                             .namespace_name = "default",
                                                             .endpoint = "http://a",
                                                             .labels = {{"b", "true"}}}))));
}

TEST(ServiceImportTest, RejectsUnparsableInputWithTheParsersMessage) {
  EXPECT_THAT(ParseServiceImport("- name: a\n  endpoint: [http://a\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid YAML at line")));
  EXPECT_THAT(ParseServiceImport("- name: a\n   bad: indent: here\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid YAML at line 2")));
  EXPECT_THAT(ParseServiceImport("[{\"name\": \"a\",\n \"endpoint\": \"http://a\"]"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("invalid JSON: parse error at line 2")));
  EXPECT_THAT(ParseServiceImport(std::string(100000, '[')),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseServiceImport(std::string(1000, '[') + std::string(1000, ']')),
              StatusIs(absl::StatusCode::kInvalidArgument, "invalid JSON: nested too deeply"));
}

}  // namespace
}  // namespace discovery::client_format

namespace discovery::client_format {
namespace {

// A file as `service list -o yaml` prints it, of `count` entries with 300-byte descriptions.
std::string LargeYaml(size_t count) {
  std::string yaml;
  for (size_t i = 0; i < count; ++i) {
    yaml += fmt::format(
        "- id: \"\"\n  name: node\n  namespace: ns{}\n  endpoint: http://host-{}:9100/metrics\n"
        "  selector: \"\"\n  servers: []\n  labels:\n    team: t{}\n  description: {}\n"
        "  modified: 2021-02-04T14:12:50Z\n",
        i % 3, i, i % 5, std::string(300, 'd'));
  }
  return yaml;
}

TEST(ServiceImportTest, LargeFilesReadInPiecesKeepEveryEntryInOrder) {
  const std::string yaml = LargeYaml(5000);
  ASSERT_GT(yaml.size(), size_t{1} << 20);
  absl::StatusOr<std::vector<Service>> services = ParseServiceImport(yaml);
  ASSERT_TRUE(services.ok()) << services.status();
  ASSERT_EQ(services->size(), 5000U);
  for (size_t i : {size_t{0}, size_t{1}, size_t{2499}, size_t{2500}, size_t{4999}}) {
    EXPECT_EQ((*services)[i].endpoint, fmt::format("http://host-{}:9100/metrics", i));
    EXPECT_EQ((*services)[i].namespace_name, fmt::format("ns{}", i % 3));
    EXPECT_EQ((*services)[i].labels.at("team"), fmt::format("t{}", i % 5));
  }
}

TEST(ServiceImportTest, LargeFilesReportErrorsCountedFromTheStart) {
  std::string yaml = LargeYaml(5000);
  const std::string endpoint = "  endpoint: http://host-3999:9100/metrics\n";
  yaml.erase(yaml.find(endpoint), endpoint.size());
  EXPECT_EQ(ParseServiceImport(yaml).status().message(), "entry 4000: endpoint is missing");

  // Not a plain top-level sequence (a comment at the margin): read in one piece, all the same.
  yaml = "# backup\n" + LargeYaml(4000);
  absl::StatusOr<std::vector<Service>> services = ParseServiceImport(yaml);
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_EQ(services->size(), 4000U);
}

}  // namespace
}  // namespace discovery::client_format
