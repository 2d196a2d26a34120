#include "targetgroup/targetgroup.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "model/endpoint.h"
#include "model/model.h"
#include "testing/status_matchers.h"

namespace discovery::targetgroup {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::IsOkAndHolds;
using ::discovery::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

Service MakeService(std::string name, std::string endpoint, Labels labels = {},
                    std::string namespace_name = "default") {
  Service service;
  service.id = ServiceId(endpoint);
  service.name = std::move(name);
  service.namespace_name = std::move(namespace_name);
  service.endpoint = std::move(endpoint);
  service.labels = std::move(labels);
  return service;
}

// The standard group of a service without labels, for checking one generated label.
Labels StandardLabels(const std::string& endpoint) {
  absl::StatusOr<TargetGroup> group =
      FromService(MakeService("job", endpoint), ExportConfig::kStandard);
  EXPECT_THAT(group, IsOk()) << endpoint;
  return group.ok() ? group->labels : Labels{};
}

// --- The README's http_sd examples -------------------------------------------------------

TEST(TargetGroupTest, ReadmeStandardExample) {
  const Service service = MakeService("example", "http://example.com/metrics",
                                      {{"label1", "value1"}, {"label2", "value2"}});

  absl::StatusOr<TargetGroup> group = FromService(service, ExportConfig::kStandard);

  ASSERT_THAT(group, IsOk());
  EXPECT_EQ(*group, (TargetGroup{.targets = {"example.com"},
                                 .labels = {{"__metrics_path__", "/metrics"},
                                            {"__scheme__", "http"},
                                            {"instance", "example.com"},
                                            {"job", "example"},
                                            {"label1", "value1"},
                                            {"label2", "value2"}}}));
  EXPECT_EQ(ToHttpSdJson({*group}),
            R"([{"targets":["example.com"],"labels":{"__metrics_path__":"/metrics",)"
            R"("__scheme__":"http","instance":"example.com","job":"example",)"
            R"("label1":"value1","label2":"value2"}}])");
}

TEST(TargetGroupTest, ReadmeStandardExampleMatchesReadmeJson) {
  // Verbatim from the README (`curl ... | jq`).
  const nlohmann::json readme = nlohmann::json::parse(R"([
  {
    "targets": [
      "example.com"
    ],
    "labels": {
      "__metrics_path__": "/metrics",
      "__scheme__": "http",
      "instance": "example.com",
      "job": "example",
      "label1": "value1",
      "label2": "value2"
    }
  }
])");
  const std::vector<TargetGroup> groups =
      FromServices({MakeService("example", "http://example.com/metrics",
                                {{"label1", "value1"}, {"label2", "value2"}})},
                   ExportConfig::kStandard);

  EXPECT_EQ(nlohmann::json::parse(ToHttpSdJson(groups)), readme);
}

TEST(TargetGroupTest, ReadmeBlackboxExample) {
  const Service service =
      MakeService("blackbox", "http://blackbox.example.com", {}, "default-blackbox");

  absl::StatusOr<TargetGroup> group = FromService(service, ExportConfig::kBlackbox);

  ASSERT_THAT(group, IsOk());
  EXPECT_EQ(*group, (TargetGroup{.targets = {"http://blackbox.example.com"}, .labels = {}}));
  EXPECT_EQ(ToHttpSdJson({*group}), R"([{"targets":["http://blackbox.example.com"],"labels":{}}])");
}

// --- Standard groups ---------------------------------------------------------------------

TEST(TargetGroupTest, StandardKeepsThePort) {
  absl::StatusOr<TargetGroup> group = FromService(
      MakeService("node", "https://www.test.com:7002/metrics"), ExportConfig::kStandard);

  ASSERT_THAT(group, IsOk());
  EXPECT_THAT(group->targets, ElementsAre("www.test.com:7002"));
  EXPECT_EQ(group->labels.at("instance"), "www.test.com:7002");
  EXPECT_EQ(group->labels.at("__scheme__"), "https");
  EXPECT_EQ(group->labels.at("job"), "node");
}

TEST(TargetGroupTest, StandardKeepsIpv6Brackets) {
  absl::StatusOr<TargetGroup> with_port =
      FromService(MakeService("node", "http://[::1]:9100/metrics"), ExportConfig::kStandard);
  absl::StatusOr<TargetGroup> without_port =
      FromService(MakeService("node", "http://[2001:db8::1]/metrics"), ExportConfig::kStandard);

  ASSERT_THAT(with_port, IsOk());
  EXPECT_THAT(with_port->targets, ElementsAre("[::1]:9100"));
  EXPECT_EQ(with_port->labels.at("instance"), "[::1]:9100");
  ASSERT_THAT(without_port, IsOk());
  EXPECT_THAT(without_port->targets, ElementsAre("[2001:db8::1]"));
  EXPECT_EQ(without_port->labels.at("instance"), "[2001:db8::1]");
}

TEST(TargetGroupTest, StandardDropsUserinfo) {
  absl::StatusOr<TargetGroup> group = FromService(
      MakeService("node", "http://user:secret@example.com:9100/metrics"), ExportConfig::kStandard);

  ASSERT_THAT(group, IsOk());
  EXPECT_THAT(group->targets, ElementsAre("example.com:9100"));
  EXPECT_EQ(group->labels.at("instance"), "example.com:9100");
}

TEST(TargetGroupTest, StandardTurnsQueryIntoParamLabels) {
  absl::StatusOr<TargetGroup> group = FromService(
      MakeService("probe",
                  "http://example.com/probe?module=http_2xx&target=https%3A%2F%2Fx.com&a=1&a=2&b"),
      ExportConfig::kStandard);

  ASSERT_THAT(group, IsOk());
  EXPECT_EQ(group->labels, (Labels{{"__metrics_path__", "/probe"},
                                   {"__param_a", "1"},
                                   {"__param_b", ""},
                                   {"__param_module", "http_2xx"},
                                   {"__param_target", "https://x.com"},
                                   {"__scheme__", "http"},
                                   {"instance", "example.com"},
                                   {"job", "probe"}}));
  EXPECT_THAT(group->targets, ElementsAre("example.com"));
}

TEST(TargetGroupTest, MetricsPathIsDecodedWithoutTrailingSlashes) {
  EXPECT_EQ(StandardLabels("http://example.com/").at("__metrics_path__"), "");
  EXPECT_EQ(StandardLabels("http://example.com").at("__metrics_path__"), "");
  EXPECT_EQ(StandardLabels("http://example.com/metrics/").at("__metrics_path__"), "/metrics");
  EXPECT_EQ(StandardLabels("http://example.com/a/b//").at("__metrics_path__"), "/a/b");
  EXPECT_EQ(StandardLabels("http://example.com/%2F%2f").at("__metrics_path__"), "");
  EXPECT_EQ(StandardLabels("http://example.com/a%20b/").at("__metrics_path__"), "/a b");
  EXPECT_EQ(StandardLabels("http://example.com/a/?x=1").at("__metrics_path__"), "/a");
}

TEST(TargetGroupTest, ServiceLabelsOverrideGeneratedLabels) {
  const Service service =
      MakeService("example", "http://example.com:9100/metrics?module=a",
                  {{"job", "custom"}, {"instance", "nice-name"}, {"__param_module", "b"}});

  absl::StatusOr<TargetGroup> group = FromService(service, ExportConfig::kStandard);

  ASSERT_THAT(group, IsOk());
  EXPECT_THAT(group->targets, ElementsAre("example.com:9100"));
  EXPECT_EQ(group->labels, (Labels{{"__metrics_path__", "/metrics"},
                                   {"__param_module", "b"},
                                   {"__scheme__", "http"},
                                   {"instance", "nice-name"},
                                   {"job", "custom"}}));
}

TEST(TargetGroupTest, UnknownConfigIsStandardAsInGo) {
  const Service service = MakeService("example", "http://example.com/metrics");

  EXPECT_THAT(FromService(service, static_cast<ExportConfig>(7)),
              IsOkAndHolds(*FromService(service, ExportConfig::kStandard)));
}

// --- Blackbox and disabled ---------------------------------------------------------------

TEST(TargetGroupTest, BlackboxTargetIsTheCanonicalUrlAndLabelsAreTheServicesOnly) {
  const Service service =
      MakeService("probe", "https://blackbox.example.com/probe?module=http_2xx", {{"team", "web"}});

  absl::StatusOr<TargetGroup> group = FromService(service, ExportConfig::kBlackbox);

  ASSERT_THAT(group, IsOk());
  EXPECT_EQ(*group, (TargetGroup{.targets = {"https://blackbox.example.com/probe?module=http_2xx"},
                                 .labels = {{"team", "web"}}}));
}

TEST(TargetGroupTest, DisabledIsAnEmptyGroupWithoutLookingAtTheEndpoint) {
  Service service = MakeService("example", "http://example.com/metrics", {{"a", "b"}});
  service.endpoint = "not a url";

  EXPECT_THAT(FromService(service, ExportConfig::kDisabled), IsOkAndHolds(TargetGroup{}));
  EXPECT_THAT(FromServices({service}, ExportConfig::kDisabled), IsEmpty());
}

TEST(TargetGroupTest, AnEndpointParsedByTheCallerGivesTheSameGroup) {
  for (const char* endpoint :
       {"http://example.com/metrics", "https://user:pw@[::1]:9100/a%20b/?x=1&y=2&x=3",
        "http://blackbox.example.com/probe?module=http_2xx&target=a.example.com",
        "https://example.com:443"}) {
    const Service service = MakeService("job", endpoint, {{"team", "web"}, {"job", "mine"}});
    absl::StatusOr<Endpoint> parsed = Endpoint::Parse(service.endpoint);
    ASSERT_THAT(parsed, IsOk()) << endpoint;
    for (ExportConfig config : {ExportConfig::kStandard, ExportConfig::kBlackbox,
                                ExportConfig::kDisabled, static_cast<ExportConfig>(7)}) {
      EXPECT_THAT(FromService(service, config), IsOkAndHolds(FromService(service, *parsed, config)))
          << endpoint << " " << static_cast<int>(config);
    }
  }
}

TEST(TargetGroupTest, InvalidStoredEndpointIsInvalidArgument) {
  Service service = MakeService("example", "http://example.com/metrics");
  service.endpoint = "localhost:9100";

  EXPECT_THAT(FromService(service, ExportConfig::kStandard),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(service.id), HasSubstr("localhost:9100"))));
  EXPECT_THAT(FromService(service, ExportConfig::kBlackbox),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// One corrupt record never breaks the answer for the others (docs/decisions.md D36).
TEST(TargetGroupTest, ListsLeaveOutServicesWhoseEndpointDoesNotParse) {
  std::vector<Service> services = {MakeService("ok", "http://a.example.com")};
  for (const char* endpoint : {"localhost:9100", "/metrics", "http:/x"}) {
    Service legacy = MakeService("legacy", "http://example.com/metrics");
    legacy.id = endpoint;
    legacy.endpoint = endpoint;
    services.push_back(legacy);
  }
  services.push_back(MakeService("ok2", "http://b.example.com"));

  std::vector<absl::Status> skipped;
  const std::vector<TargetGroup> groups = FromServices(services, ExportConfig::kBlackbox, &skipped);
  EXPECT_EQ(ToHttpSdJson(groups), R"([{"targets":["http://a.example.com"],"labels":{}},)"
                                  R"({"targets":["http://b.example.com"],"labels":{}}])");
  ASSERT_EQ(skipped.size(), 3U);
  EXPECT_THAT(skipped[0], StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("invalid endpoint \"localhost:9100\"")));
  EXPECT_EQ(FromServices(services, ExportConfig::kStandard).size(), 2U);  // no report wanted
}

// --- Lists ------------------------------------------------------------------------------

TEST(TargetGroupTest, GroupsAreSortedByCanonicalEndpoint) {
  const std::vector<Service> services = {
      MakeService("c", "https://initial3.pnet.ch"), MakeService("a", "https://initial1.pnet.ch"),
      MakeService("b", "HTTPS://initial2.pnet.ch"),  // canonical: https://initial2.pnet.ch
  };

  const std::vector<TargetGroup> groups = FromServices(services, ExportConfig::kBlackbox);

  EXPECT_EQ(ToFileSdJson(groups),
            R"([{"targets":["https://initial1.pnet.ch"]},{"targets":["https://initial2.pnet.ch"]},)"
            R"({"targets":["https://initial3.pnet.ch"]}])");
}

TEST(TargetGroupTest, EqualEndpointsAreOrderedByNamespace) {
  const std::vector<Service> services = {
      MakeService("job", "http://example.com/metrics", {{"ns", "b"}}, "b"),
      MakeService("job", "http://example.com/metrics", {{"ns", "a"}}, "a"),
  };
  std::vector<Service> reversed(services.rbegin(), services.rend());

  const std::vector<TargetGroup> groups = FromServices(services, ExportConfig::kBlackbox);
  const std::vector<TargetGroup> groups_reversed = FromServices(reversed, ExportConfig::kBlackbox);

  ASSERT_EQ(groups.size(), 2U);
  EXPECT_EQ(groups[0].labels.at("ns"), "a");
  EXPECT_EQ(groups[1].labels.at("ns"), "b");
  EXPECT_EQ(groups_reversed, groups);
}

TEST(TargetGroupTest, NoServicesGiveNoGroups) {
  EXPECT_THAT(FromServices(std::vector<Service>{}, ExportConfig::kStandard), IsEmpty());
}

// --- JSON ------------------------------------------------------------------------------

TEST(TargetGroupJsonTest, EmptyListIsAnEmptyArray) {
  EXPECT_EQ(ToHttpSdJson({}), "[]");
  EXPECT_EQ(ToFileSdJson({}), "[]");
}

TEST(TargetGroupJsonTest, FileSdMatchesTheGoExporterForBlackbox) {
  // internal/exporter/exporter_test.go: the blackbox file of service b1.
  const std::vector<TargetGroup> groups =
      FromServices({MakeService("blackbox", "https://blackbox1.pnet.ch", {}, "appl-blackbox")},
                   ExportConfig::kBlackbox);

  EXPECT_EQ(ToFileSdJson(groups), R"([{"targets":["https://blackbox1.pnet.ch"]}])");
}

TEST(TargetGroupJsonTest, FileSdOfStandardGroup) {
  const std::vector<TargetGroup> groups =
      FromServices({MakeService("initial", "https://initial1.pnet.ch")}, ExportConfig::kStandard);

  EXPECT_EQ(ToFileSdJson(groups),
            R"([{"targets":["initial1.pnet.ch"],"labels":{"__metrics_path__":"",)"
            R"("__scheme__":"https","instance":"initial1.pnet.ch","job":"initial"}}])");
}

TEST(TargetGroupJsonTest, FileSdOmitsEmptyFieldsHttpSdKeepsThem) {
  const std::vector<TargetGroup> groups = {TargetGroup{}};

  EXPECT_EQ(ToFileSdJson(groups), "[{}]");
  EXPECT_EQ(ToHttpSdJson(groups), R"([{"targets":[],"labels":{}}])");
  EXPECT_EQ(ToFileSdJson({TargetGroup{.targets = {}, .labels = {{"a", "b"}}}}),
            R"([{"labels":{"a":"b"}}])");
}

TEST(TargetGroupJsonTest, FileSdEscapesHtmlLikeGo) {
  const std::vector<TargetGroup> groups = {
      TargetGroup{.targets = {"https://x.com/?a=1&b=<2>"}, .labels = {{"note", "a<b>&c"}}}};

  EXPECT_EQ(ToFileSdJson(groups), R"([{"targets":["https://x.com/?a=1\u0026b=\u003c2\u003e"],)"
                                  R"("labels":{"note":"a\u003cb\u003e\u0026c"}}])");
  EXPECT_EQ(ToHttpSdJson(groups),
            R"([{"targets":["https://x.com/?a=1&b=<2>"],"labels":{"note":"a<b>&c"}}])");
}

TEST(TargetGroupJsonTest, EscapesQuotesBackslashesAndControlCharacters) {
  const std::vector<TargetGroup> groups = {
      TargetGroup{.targets = {}, .labels = {{"v", "\"\\/\b\f\n\r\t\x01\x1f\x7f"}}}};

  const std::string expected = R"([{"labels":{"v":"\"\\/\b\f\n\r\t\u0001\u001f)"
                               "\x7f"
                               R"("}}])";
  EXPECT_EQ(ToFileSdJson(groups), expected);
  EXPECT_EQ(nlohmann::json::parse(ToHttpSdJson(groups))[0]["labels"]["v"],
            groups[0].labels.at("v"));
}

TEST(TargetGroupJsonTest, KeepsUtf8AndEscapesLineSeparatorsInFileSd) {
  const std::string text =
      "\xC3\xA4\xE2\x82\xAC\xF0\x9F\x98\x80\xE2\x80\xA8\xE2\x80\xA9\xEF\xBF\xBD";
  const std::vector<TargetGroup> groups = {TargetGroup{.targets = {text}, .labels = {}}};

  EXPECT_EQ(ToFileSdJson(groups),
            "[{\"targets\":[\"\xC3\xA4\xE2\x82\xAC\xF0\x9F\x98\x80"
            "\\u2028\\u2029\xEF\xBF\xBD\"]}]");
  EXPECT_EQ(ToHttpSdJson(groups), "[{\"targets\":[\"" + text + "\"],\"labels\":{}}]");
  EXPECT_EQ(nlohmann::json::parse(ToFileSdJson(groups))[0]["targets"][0], text);
}

TEST(TargetGroupJsonTest, InvalidUtf8BecomesReplacementCharacters) {
  // A stray continuation byte, a truncated sequence, an overlong '/', a surrogate and a byte
  // that never occurs in UTF-8: each invalid byte is one \ufffd, as Go writes it.
  const std::string invalid =
      "a\x80"
      "b\xE2\x82"
      "c\xC0\xAF"
      "d\xED\xA0\x80"
      "e\xFF";
  const std::vector<TargetGroup> groups = {TargetGroup{.targets = {}, .labels = {{"v", invalid}}}};

  const std::string expected =
      R"([{"labels":{"v":"a\ufffdb\ufffd\ufffdc\ufffd\ufffdd\ufffd\ufffd\ufffde\ufffd"}}])";
  EXPECT_EQ(ToFileSdJson(groups), expected);
  EXPECT_TRUE(nlohmann::json::accept(ToHttpSdJson(groups)));
}

TEST(TargetGroupJsonTest, HttpSdRoundTripsThroughAJsonParser) {
  const std::vector<TargetGroup> groups =
      FromServices({MakeService("a", "http://[::1]:9100/m?x=%3C%22%3E", {{"team", "a&b"}}),
                    MakeService("b", "https://example.com:8443/metrics/")},
                   ExportConfig::kStandard);

  const nlohmann::json parsed = nlohmann::json::parse(ToHttpSdJson(groups));

  ASSERT_TRUE(parsed.is_array());
  ASSERT_EQ(parsed.size(), groups.size());
  for (size_t i = 0; i < groups.size(); ++i) {
    EXPECT_EQ(parsed[i].size(), 2U);
    EXPECT_EQ(parsed[i]["targets"].get<std::vector<std::string>>(), (groups)[i].targets);
    EXPECT_EQ(parsed[i]["labels"].get<Labels>(), (groups)[i].labels);
  }
  EXPECT_EQ(nlohmann::json::parse(ToFileSdJson(groups)), parsed);
}

}  // namespace
}  // namespace discovery::targetgroup
