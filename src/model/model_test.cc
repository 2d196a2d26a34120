#include "model/model.h"

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "model/endpoint.h"
#include "testing/status_matchers.h"

namespace discovery {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::IsOkAndHolds;
using ::discovery::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr std::string_view kDnsNamespace = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";

// ---- Enumerations ----

TEST(ExportConfigTest, NamesKnownValuesAndNumbersOthers) {
  EXPECT_EQ(ExportConfigName(ExportConfig::kDisabled), "disabled");
  EXPECT_EQ(ExportConfigName(ExportConfig::kStandard), "standard");
  EXPECT_EQ(ExportConfigName(ExportConfig::kBlackbox), "blackbox");
  EXPECT_EQ(ExportConfigName(static_cast<ExportConfig>(7)), "ExportConfig(7)");
  EXPECT_EQ(ExportConfigName(static_cast<ExportConfig>(-1)), "ExportConfig(-1)");
}

TEST(ExportConfigTest, ParsesNamesCaseSensitively) {
  EXPECT_THAT(ParseExportConfig("disabled"), IsOkAndHolds(ExportConfig::kDisabled));
  EXPECT_THAT(ParseExportConfig("standard"), IsOkAndHolds(ExportConfig::kStandard));
  EXPECT_THAT(ParseExportConfig("blackbox"), IsOkAndHolds(ExportConfig::kBlackbox));
  for (const char* bad : {"", "Standard", "BLACKBOX", "ExportConfig(7)", "1", " standard"}) {
    EXPECT_THAT(ParseExportConfig(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid export config")))
        << bad;
  }
  EXPECT_THAT(ParseExportConfig("x"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "invalid export config 'x': must be 'disabled', 'standard' or 'blackbox'"));
}

TEST(ServerStateTest, NamesKnownValuesAndNumbersOthers) {
  EXPECT_EQ(ServerStateName(ServerState::kLeaving), "leaving");
  EXPECT_EQ(ServerStateName(ServerState::kJoining), "joining");
  EXPECT_EQ(ServerStateName(ServerState::kActive), "active");
  EXPECT_EQ(ServerStateName(static_cast<ServerState>(3)), "ServerState(3)");
}

TEST(ServerTest, EnabledUnlessLeaving) {
  Server server;
  EXPECT_EQ(server.state, ServerState::kJoining);
  EXPECT_TRUE(server.Enabled());
  server.state = ServerState::kActive;
  EXPECT_TRUE(server.Enabled());
  server.state = ServerState::kLeaving;
  EXPECT_FALSE(server.Enabled());
}

// ---- Labels ----

struct LabelsCase {
  std::string description;
  Labels labels;
  std::string error;  // "" when valid
};

void PrintTo(const LabelsCase& c, std::ostream* os) { *os << c.description; }

class ValidateLabelsTest : public ::testing::TestWithParam<LabelsCase> {};

TEST_P(ValidateLabelsTest, Validates) {
  const LabelsCase& c = GetParam();
  if (c.error.empty()) {
    EXPECT_THAT(ValidateLabels(c.labels), IsOk());
  } else {
    EXPECT_THAT(ValidateLabels(c.labels), StatusIs(absl::StatusCode::kInvalidArgument, c.error));
  }
}

std::string InvalidName(const std::string& name) {
  return "label name '" + name +
         "' is not valid: label names must contain only ASCII letters, numbers and underscores";
}

std::string Reserved(const std::string& name) {
  return "label name '" + name +
         "' is reserved: names starting with '__' are reserved for Prometheus, except "
         "'__scrape_interval__' and '__scrape_timeout__'";
}

std::string BadDuration(const std::string& name, const std::string& value) {
  return "label value for '" + name + "' is not a valid duration: '" + value +
         "' (use e.g. '15s', '1m30s' or '500ms'; units y, w, d, h, m, s, ms)";
}

INSTANTIATE_TEST_SUITE_P(
    GoOriginalCases, ValidateLabelsTest,
    ::testing::Values(
        LabelsCase{"empty", {}, ""}, LabelsCase{"is_valid_1", {{"is_valid_1", "value"}}, ""},
        LabelsCase{"space", {{"is invalid", "value"}}, InvalidName("is invalid")},
        LabelsCase{"at_sign", {{"inv@lid", "value"}}, InvalidName("inv@lid")},
        LabelsCase{"empty_value", {{"key", ""}}, "label value for 'key' cannot be empty string"}));

// docs/decisions.md D12: the original's regex rejected one-character names and accepted any last
// character.
INSTANTIATE_TEST_SUITE_P(
    B12LabelNames, ValidateLabelsTest,
    ::testing::Values(LabelsCase{"one_letter", {{"a", "v"}}, ""},
                      LabelsCase{"one_underscore", {{"_", "v"}}, ""},
                      LabelsCase{"underscore_prefix", {{"_env", "v"}}, ""},
                      LabelsCase{"upper_case", {{"Env_2", "v"}}, ""},
                      LabelsCase{"trailing_dash", {{"foo-", "v"}}, InvalidName("foo-")},
                      LabelsCase{"trailing_dot", {{"foo.", "v"}}, InvalidName("foo.")},
                      LabelsCase{"trailing_at", {{"ab@", "v"}}, InvalidName("ab@")},
                      LabelsCase{
                          "trailing_non_ascii", {{"a\xc3\xa9", "v"}}, InvalidName("a\xc3\xa9")},
                      LabelsCase{"leading_digit", {{"1abc", "v"}}, InvalidName("1abc")},
                      LabelsCase{"empty_name", {{"", "v"}}, InvalidName("")},
                      LabelsCase{"dash_inside", {{"a-b", "v"}}, InvalidName("a-b")}));

INSTANTIATE_TEST_SUITE_P(
    ReservedNames, ValidateLabelsTest,
    ::testing::Values(
        LabelsCase{"scheme", {{"__scheme__", "https"}}, Reserved("__scheme__")},
        LabelsCase{"address", {{"__address__", "x:1"}}, Reserved("__address__")},
        LabelsCase{"metrics_path", {{"__metrics_path__", "/m"}}, Reserved("__metrics_path__")},
        LabelsCase{"param", {{"__param_target", "x"}}, Reserved("__param_target")},
        LabelsCase{"double_underscore", {{"__", "x"}}, Reserved("__")},
        LabelsCase{"single_underscore_prefix_ok", {{"_x_", "x"}}, ""},
        LabelsCase{"job_is_allowed", {{"job", "x"}}, ""},
        LabelsCase{"instance_is_allowed", {{"instance", "x"}}, ""}));

INSTANTIATE_TEST_SUITE_P(
    ScrapeDurations, ValidateLabelsTest,
    ::testing::Values(
        LabelsCase{"interval_15s", {{"__scrape_interval__", "15s"}}, ""},
        LabelsCase{"interval_1m30s", {{"__scrape_interval__", "1m30s"}}, ""},
        LabelsCase{"interval_500ms", {{"__scrape_interval__", "500ms"}}, ""},
        LabelsCase{"interval_all_units", {{"__scrape_interval__", "1y2w3d4h5m6s7ms"}}, ""},
        LabelsCase{"interval_zero", {{"__scrape_interval__", "0"}}, ""},
        LabelsCase{"interval_0s", {{"__scrape_interval__", "0s"}}, ""},
        LabelsCase{"timeout_10s", {{"__scrape_timeout__", "10s"}}, ""},
        LabelsCase{"interval_and_timeout",
                   {{"__scrape_interval__", "1m"}, {"__scrape_timeout__", "59s"}},
                   ""},
        LabelsCase{"equal_interval_and_timeout",
                   {{"__scrape_interval__", "30s"}, {"__scrape_timeout__", "30s"}},
                   ""},
        LabelsCase{"timeout_over_interval",
                   {{"__scrape_interval__", "15s"}, {"__scrape_timeout__", "1m"}},
                   "label value for '__scrape_timeout__' ('1m') must not be greater than "
                   "'__scrape_interval__' ('15s')"},
        LabelsCase{
            "no_unit", {{"__scrape_interval__", "15"}}, BadDuration("__scrape_interval__", "15")},
        LabelsCase{"go_style_fraction",
                   {{"__scrape_interval__", "1.5s"}},
                   BadDuration("__scrape_interval__", "1.5s")},
        LabelsCase{"unknown_unit",
                   {{"__scrape_interval__", "15x"}},
                   BadDuration("__scrape_interval__", "15x")},
        LabelsCase{"microseconds",
                   {{"__scrape_timeout__", "15us"}},
                   BadDuration("__scrape_timeout__", "15us")},
        LabelsCase{"units_out_of_order",
                   {{"__scrape_interval__", "30s1m"}},
                   BadDuration("__scrape_interval__", "30s1m")},
        LabelsCase{"unit_twice",
                   {{"__scrape_interval__", "1m1m"}},
                   BadDuration("__scrape_interval__", "1m1m")},
        LabelsCase{"negative",
                   {{"__scrape_interval__", "-1s"}},
                   BadDuration("__scrape_interval__", "-1s")},
        LabelsCase{
            "space", {{"__scrape_interval__", "15 s"}}, BadDuration("__scrape_interval__", "15 s")},
        LabelsCase{
            "unit_only", {{"__scrape_interval__", "s"}}, BadDuration("__scrape_interval__", "s")},
        // A Go time.Duration holds about 292 years.
        LabelsCase{"292y_fits", {{"__scrape_interval__", "292y"}}, ""},
        LabelsCase{"293y_overflows",
                   {{"__scrape_interval__", "293y"}},
                   BadDuration("__scrape_interval__", "293y")},
        LabelsCase{"huge_number_overflows",
                   {{"__scrape_interval__", "99999999999999999999999ms"}},
                   BadDuration("__scrape_interval__", "99999999999999999999999ms")}));

INSTANTIATE_TEST_SUITE_P(
    Values, ValidateLabelsTest,
    ::testing::Values(
        LabelsCase{"utf8_value", {{"city", "Z\xc3\xbcrich \xe6\x97\xa5\xe6\x9c\xac"}}, ""},
        LabelsCase{"emoji_value", {{"mood", "\xf0\x9f\x98\x80"}}, ""},
        LabelsCase{"spaces_and_symbols", {{"d", "a b,c=d"}}, ""},
        LabelsCase{"invalid_byte", {{"k", "a\xff"}}, "label value for 'k' is not valid UTF-8"},
        LabelsCase{"truncated_sequence", {{"k", "\xc3"}}, "label value for 'k' is not valid UTF-8"},
        LabelsCase{"overlong", {{"k", "\xc0\xaf"}}, "label value for 'k' is not valid UTF-8"},
        LabelsCase{"surrogate", {{"k", "\xed\xa0\x80"}}, "label value for 'k' is not valid UTF-8"},
        LabelsCase{
            "above_max", {{"k", "\xf4\x90\x80\x80"}}, "label value for 'k' is not valid UTF-8"},
        // Labels are checked in name order; the first failure wins.
        LabelsCase{"first_failure_wins", {{"b", ""}, {"a b", "x"}}, InvalidName("a b")},
        LabelsCase{"empty_value_before_bad_name",
                   {{"a b", ""}},
                   "label value for 'a b' cannot be empty string"}));

TEST(LabelsTest, ToStringSortsKeys) {
  EXPECT_EQ(LabelsToString({}), "");
  EXPECT_EQ(LabelsToString({{"key", "value"}}), "key=value");
  EXPECT_EQ(LabelsToString({{"key2", "value2"}, {"key1", "value1"}}), "key1=value1,key2=value2");
}

TEST(LabelsTest, ParseReadsCommaSeparatedPairs) {
  EXPECT_THAT(ParseLabels(""), IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(ParseLabels("k1=v1,k2=v2"), IsOkAndHolds(Labels{{"k1", "v1"}, {"k2", "v2"}}));
  EXPECT_THAT(ParseLabels("k=a=b"), IsOkAndHolds(Labels{{"k", "a=b"}}));
  EXPECT_THAT(ParseLabels("k="), IsOkAndHolds(Labels{{"k", ""}}));
  EXPECT_THAT(ParseLabels("k=v,"), IsOkAndHolds(Labels{{"k", "v"}}));
  EXPECT_THAT(ParseLabels("k=1,k=2"), IsOkAndHolds(Labels{{"k", "2"}}));
}

TEST(LabelsTest, ParseRejectsItemWithoutEquals) {
  EXPECT_THAT(ParseLabels("k1=v1,oops"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                  "invalid label 'oops': expected 'name=value'"));
  EXPECT_THAT(ParseLabels("env"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(LabelsTest, ParseRoundTripsToString) {
  const Labels labels = {{"env", "prod"}, {"team", "sre"}, {"zone", "a"}};
  EXPECT_THAT(ParseLabels(LabelsToString(labels)), IsOkAndHolds(labels));
}

// ---- Names ----

struct NameCase {
  std::string name;
  std::string error;  // "" when valid
};

void PrintTo(const NameCase& c, std::ostream* os) { *os << "'" << c.name << "'"; }

constexpr const char* kNameChars = "name must only contain 'a-z', 'A-Z', '0-9', '-' and '_'";

class NamespaceNameTest : public ::testing::TestWithParam<NameCase> {};

TEST_P(NamespaceNameTest, Validates) {
  const NameCase& c = GetParam();
  if (c.error.empty()) {
    EXPECT_THAT(ValidateNamespaceName(c.name), IsOk());
    EXPECT_THAT(ValidateServiceName(c.name), IsOk());
  } else {
    EXPECT_THAT(ValidateNamespaceName(c.name),
                StatusIs(absl::StatusCode::kInvalidArgument, c.error));
    EXPECT_THAT(ValidateServiceName(c.name), StatusIs(absl::StatusCode::kInvalidArgument, c.error));
  }
}

// docs/decisions.md D13: the message names '-' because '-' is accepted.
INSTANTIATE_TEST_SUITE_P(
    All, NamespaceNameTest,
    ::testing::Values(NameCase{"default", ""}, NameCase{"default-blackbox", ""}, NameCase{"a", ""},
                      NameCase{"A_b-9", ""}, NameCase{"-", ""},
                      NameCase{"", "name cannot be empty"}, NameCase{"space in name", kNameChars},
                      NameCase{"not_valid:", kNameChars}, NameCase{"a/b", kNameChars},
                      NameCase{"a.b", kNameChars}, NameCase{"..", kNameChars},
                      NameCase{"caf\xc3\xa9", kNameChars}));

class ServerNameTest : public ::testing::TestWithParam<NameCase> {};

TEST_P(ServerNameTest, Validates) {
  const NameCase& c = GetParam();
  if (c.error.empty()) {
    EXPECT_THAT(ValidateServerName(c.name), IsOk());
  } else {
    EXPECT_THAT(ValidateServerName(c.name), StatusIs(absl::StatusCode::kInvalidArgument, c.error));
  }
}

constexpr const char* kServerChars = "name must only contain 'a-z', 'A-Z', '0-9', '.', '-' and '_'";

// Server names become store keys and file names (docs/decisions.md D10).
INSTANTIATE_TEST_SUITE_P(
    All, ServerNameTest,
    ::testing::Values(NameCase{"server1", ""}, NameCase{"prometheus-01.example.com", ""},
                      NameCase{"prom_a.b-c", ""}, NameCase{"a.", ""},
                      NameCase{std::string(253, 'a'), ""}, NameCase{"", "name cannot be empty"},
                      NameCase{std::string(254, 'a'), "name must be at most 253 characters"},
                      NameCase{"a/b", kServerChars}, NameCase{"../../server/v1/x", kServerChars},
                      NameCase{"a b", kServerChars}, NameCase{"a:b", kServerChars},
                      NameCase{"caf\xc3\xa9", kServerChars},
                      NameCase{".hidden", "name must not start with '.'"},
                      NameCase{".", "name must not start with '.'"},
                      NameCase{"..", "name must not start with '.'"},
                      NameCase{"a..b", "name must not contain '..'"}));

// A server the Go original stored may be looked up and removed even when RegisterServer refuses
// its name; only names that would address another key are refused.
TEST(ValidateExistingServerNameTest, AcceptsWhatTheOriginalStored) {
  for (const std::string name : {"host:9090", "server1", "a b", "caf\xc3\xa9", "a..b"}) {
    EXPECT_THAT(ValidateExistingServerName(name), IsOk()) << name;
  }
  EXPECT_THAT(ValidateServerName("host:9090"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateExistingServerName(""),
              StatusIs(absl::StatusCode::kInvalidArgument, "name cannot be empty"));
  for (const std::string name : {".", ".."}) {
    EXPECT_THAT(ValidateExistingServerName(name),
                StatusIs(absl::StatusCode::kInvalidArgument, "name must not be '.' or '..'"))
        << name;
  }
  for (const std::string& name :
       std::vector<std::string>{"a/b", "../../server/v1/x", "a\nb", std::string(1, '\0')}) {
    EXPECT_THAT(ValidateExistingServerName(name),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         "name must not contain '/' or control characters"))
        << name;
  }
}

// ---- Validate ----

TEST(ValidateTest, Namespace) {
  EXPECT_THAT(Validate(Namespace{.name = "default"}), IsOk());
  EXPECT_THAT(Validate(Namespace{.name = "x", .export_config = static_cast<ExportConfig>(9)}),
              IsOk());
  EXPECT_THAT(Validate(Namespace{}),
              StatusIs(absl::StatusCode::kInvalidArgument, "name cannot be empty"));
  EXPECT_THAT(Validate(Namespace{.name = "a b"}),
              StatusIs(absl::StatusCode::kInvalidArgument, kNameChars));
}

TEST(ValidateTest, Server) {
  EXPECT_THAT(Validate(Server{.name = "server1", .labels = {{"env", "prod"}}}), IsOk());
  EXPECT_THAT(Validate(Server{}),
              StatusIs(absl::StatusCode::kInvalidArgument, "name cannot be empty"));
  EXPECT_THAT(Validate(Server{.name = "a/../b"}), StatusIs(absl::StatusCode::kInvalidArgument));
}

// Server labels are matched by selectors; what no selector can name is refused.
TEST(ValidateTest, ServerLabelsMustBeSelectable) {
  EXPECT_THAT(
      Validate(Server{.name = "p1", .labels = {{"example.com/zone", "eu-1"}, {"tier", ""}}}),
      IsOk());
  EXPECT_THAT(Validate(Server{.name = "p1", .labels = {{"a=b", "c"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("server p1: invalid label key 'a=b'")));
  EXPECT_THAT(Validate(Server{.name = "p1", .labels = {{"", "c"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Validate(Server{.name = "p1", .labels = {{"env", "two words"}}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("invalid label value 'two words'")));
}

Service ValidService() {
  Service service;
  service.name = "node";
  service.namespace_name = "default";
  service.endpoint = "http://example.com/metrics";
  service.id = "93c156b1-f218-5d79-88a5-219307e59d29";
  service.selector = "env=prod";
  service.labels = {{"team", "sre"}};
  return service;
}

TEST(ValidateServiceTest, AcceptsValidService) {
  EXPECT_THAT(Validate(ValidService()), IsOk());
  Service no_selector = ValidService();
  no_selector.selector.clear();
  EXPECT_THAT(Validate(no_selector), IsOk());
}

struct ServiceCase {
  std::string description;
  Service service;
  std::string error;
};

void PrintTo(const ServiceCase& c, std::ostream* os) { *os << c.description; }

class ValidateServiceErrorTest : public ::testing::TestWithParam<ServiceCase> {};

TEST_P(ValidateServiceErrorTest, Rejects) {
  EXPECT_THAT(Validate(GetParam().service),
              StatusIs(absl::StatusCode::kInvalidArgument, GetParam().error));
}

template <typename Mutate>
Service With(Mutate mutate) {
  Service service = ValidService();
  mutate(service);
  return service;
}

INSTANTIATE_TEST_SUITE_P(
    Fields, ValidateServiceErrorTest,
    ::testing::Values(
        ServiceCase{"empty_name", With([](Service& s) { s.name = ""; }), "name cannot be empty"},
        ServiceCase{"name_with_space", With([](Service& s) { s.name = "space in name"; }),
                    kNameChars},
        ServiceCase{"name_with_colon", With([](Service& s) { s.name = "not_valid: x"; }),
                    kNameChars},
        ServiceCase{"empty_namespace", With([](Service& s) { s.namespace_name = ""; }),
                    "namespace cannot be empty"},
        ServiceCase{"bad_namespace", With([](Service& s) { s.namespace_name = "a/b"; }),
                    "namespace must only contain 'a-z', 'A-Z', '0-9', '-' and '_'"},
        ServiceCase{"empty_endpoint", With([](Service& s) { s.endpoint = ""; }),
                    "endpoint cannot be empty"},
        ServiceCase{"opaque_endpoint", With([](Service& s) { s.endpoint = "localhost:9100"; }),
                    "'localhost:9100' is not a valid url: missing '//' after the scheme; did you "
                    "mean 'http://localhost:9100'?"},
        ServiceCase{"non_canonical_endpoint",
                    With([](Service& s) { s.endpoint = "HTTP://example.com/metrics"; }),
                    "endpoint 'HTTP://example.com/metrics' is not canonical: expected "
                    "'http://example.com/metrics'"},
        ServiceCase{"bad_label", With([](Service& s) {
                      s.labels = {{"a-b", "x"}};
                    }),
                    "label name 'a-b' is not valid: label names must contain only ASCII "
                    "letters, numbers and underscores"},
        ServiceCase{"wrong_id", With([](Service& s) { s.id = "x"; }),
                    "id 'x' does not match endpoint 'http://example.com/metrics': expected "
                    "'93c156b1-f218-5d79-88a5-219307e59d29'"},
        ServiceCase{"empty_id", With([](Service& s) { s.id = ""; }),
                    "id '' does not match endpoint 'http://example.com/metrics': expected "
                    "'93c156b1-f218-5d79-88a5-219307e59d29'"}));

// The Go original's order (docs/decisions.md D45): name, name characters, namespace, namespace
// characters, endpoint, labels; then the id and the selector.
INSTANTIATE_TEST_SUITE_P(
    Order, ValidateServiceErrorTest,
    ::testing::Values(ServiceCase{"name_before_namespace", With([](Service& s) {
                                    s.name = "";
                                    s.namespace_name = "";
                                  }),
                                  "name cannot be empty"},
                      ServiceCase{"name_chars_before_namespace", With([](Service& s) {
                                    s.name = "a b";
                                    s.namespace_name = "";
                                  }),
                                  kNameChars},
                      ServiceCase{"namespace_before_endpoint", With([](Service& s) {
                                    s.namespace_name = "";
                                    s.endpoint = "";
                                  }),
                                  "namespace cannot be empty"},
                      ServiceCase{"namespace_chars_before_endpoint", With([](Service& s) {
                                    s.namespace_name = "a b";
                                    s.endpoint = "";
                                  }),
                                  "namespace must only contain 'a-z', 'A-Z', '0-9', '-' and '_'"},
                      ServiceCase{"endpoint_before_labels", With([](Service& s) {
                                    s.endpoint = "";
                                    s.labels = {{"a", ""}};
                                  }),
                                  "endpoint cannot be empty"},
                      ServiceCase{"labels_before_id", With([](Service& s) {
                                    s.labels = {{"a", ""}};
                                    s.id = "";
                                  }),
                                  "label value for 'a' cannot be empty string"}));

TEST(ValidateServiceTest, RejectsMalformedSelectorAsInvalidArgument) {
  // docs/decisions.md D11: a malformed selector is the caller's mistake, not an internal error.
  Service service = ValidService();
  service.selector = "env in (prod";
  EXPECT_THAT(Validate(service),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid selector")));
}

TEST(ValidateServiceTest, IdBeforeSelector) {
  Service service = ValidService();
  service.selector = "env in (prod";
  service.id = "x";
  EXPECT_THAT(Validate(service),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("id 'x' does not match")));
}

// ---- Record limits ----

TEST(RecordLimitsTest, NamesUpToTheLimitAreValid) {
  EXPECT_THAT(ValidateServiceName(std::string(kMaxServiceNameBytes, 'a')), IsOk());
  EXPECT_THAT(ValidateNamespaceName(std::string(kMaxNamespaceNameBytes, 'a')), IsOk());
  EXPECT_THAT(ValidateServiceName(std::string(kMaxServiceNameBytes + 1, 'a')),
              StatusIs(absl::StatusCode::kInvalidArgument, "name is 201 bytes; the limit is 200"));
  EXPECT_THAT(ValidateNamespaceName(std::string(kMaxNamespaceNameBytes + 1, 'a')),
              StatusIs(absl::StatusCode::kInvalidArgument, "name is 256 bytes; the limit is 255"));
  // The length is reported before the characters, so a huge name is not quoted.
  EXPECT_THAT(ValidateServiceName(std::string(300, '/')),
              StatusIs(absl::StatusCode::kInvalidArgument, "name is 300 bytes; the limit is 200"));
}

TEST(RecordLimitsTest, LabelsAreBoundedInCountAndSize) {
  Labels labels{{std::string(kMaxLabelNameBytes, 'n'), "x"}};
  for (size_t i = 1; i < kMaxLabels; ++i) {
    labels[absl::StrCat("l", i)] = std::string(kMaxLabelValueBytes, 'v');
  }
  ASSERT_EQ(labels.size(), kMaxLabels);
  EXPECT_THAT(ValidateLabels(labels), IsOk());

  Labels too_many = labels;
  too_many["one_more"] = "x";
  EXPECT_THAT(ValidateLabels(too_many),
              StatusIs(absl::StatusCode::kInvalidArgument, "65 labels; the limit is 64"));

  EXPECT_THAT(ValidateLabels({{"x", std::string(5000, 'v')}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "label value of 'x' is 5000 bytes; the limit is 4096"));
  // A long name is quoted by its start only.
  EXPECT_THAT(ValidateLabels({{std::string(129, 'n'), "v"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("label name '", std::string(32, 'n'),
                                    "...' is 129 bytes; the limit is 128")));
  // Limits come before the other rules, whose messages quote names and values.
  EXPECT_THAT(ValidateLabels({{std::string(3 << 20, '-'), ""}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("the limit is 128")));
}

TEST(RecordLimitsTest, DescriptionIsBounded) {
  EXPECT_THAT(ValidateDescription(std::string(kMaxDescriptionBytes, 'd')), IsOk());
  EXPECT_THAT(
      ValidateDescription(std::string(kMaxDescriptionBytes + 1, 'd')),
      StatusIs(absl::StatusCode::kInvalidArgument, "description is 1025 bytes; the limit is 1024"));
  Service service = ValidService();
  service.description = std::string(2000, 'd');
  EXPECT_THAT(Validate(service), StatusIs(absl::StatusCode::kInvalidArgument,
                                          "description is 2000 bytes; the limit is 1024"));
}

TEST(RecordLimitsTest, ServiceValidationChecksEveryLimit) {
  Service service = ValidService();
  service.namespace_name = std::string(256, 'n');
  EXPECT_THAT(Validate(service), StatusIs(absl::StatusCode::kInvalidArgument,
                                          "namespace is 256 bytes; the limit is 255"));
  service = ValidService();
  service.labels["big"] = std::string(4097, 'v');
  EXPECT_THAT(Validate(service), StatusIs(absl::StatusCode::kInvalidArgument,
                                          "label value of 'big' is 4097 bytes; the limit is 4096"));
}

TEST(RecordLimitsTest, ServerLabelsAreCounted) {
  Server server{.name = "p1"};
  for (size_t i = 0; i < kMaxLabels; ++i) {
    server.labels.emplace(absl::StrCat("l", i), "v");
  }
  EXPECT_THAT(Validate(server), IsOk());
  server.labels["more"] = "v";
  EXPECT_THAT(Validate(server), StatusIs(absl::StatusCode::kInvalidArgument,
                                         "server p1: 65 labels; the limit is 64"));
}

// What the Go original stored and we can still render is served; what cannot be rendered or
// is over a limit is not.
TEST(CheckStoredServiceTest, AcceptsRenderableRecordsTheOriginalStored) {
  Service service = ValidService();
  EXPECT_THAT(CheckStoredService(service), IsOk());
  service.labels = {{"__address__", "x:1"}, {"a-b", "c"}};  // the original's unanchored regex
  service.id = "not-the-id";
  service.endpoint = "HTTP://Example.com/metrics";  // not canonical, but parses
  service.name = "a.b";
  EXPECT_THAT(CheckStoredService(service), IsOk());
}

TEST(CheckStoredServiceTest, RejectsEndpointsThatDoNotParse) {
  for (const char* endpoint : {"localhost:9100", "/metrics", "http:/x", ""}) {
    Service service = ValidService();
    service.endpoint = endpoint;
    EXPECT_THAT(CheckStoredService(service), StatusIs(absl::StatusCode::kInvalidArgument))
        << endpoint;
  }
}

TEST(CheckStoredServiceTest, RejectsRecordsOverALimit) {
  Service service = ValidService();
  service.name = std::string(300, 'a');
  EXPECT_THAT(CheckStoredService(service),
              StatusIs(absl::StatusCode::kInvalidArgument, "name is 300 bytes; the limit is 200"));
  service = ValidService();
  service.namespace_name = std::string(256, 'n');
  EXPECT_THAT(CheckStoredService(service), StatusIs(absl::StatusCode::kInvalidArgument,
                                                    "namespace is 256 bytes; the limit is 255"));
  service = ValidService();
  service.labels["big"] = std::string(3 << 20, 'v');
  EXPECT_THAT(CheckStoredService(service),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "label value of 'big' is 3145728 bytes; the limit is 4096"));
  service = ValidService();
  service.description = std::string(1025, 'd');
  EXPECT_THAT(CheckStoredService(service), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ClampToLimitsTest, CutsEveryFieldToItsLimit) {
  Service service = ValidService();
  EXPECT_EQ(ClampToLimits(service), service);
  service.name = std::string(300, 'a');
  service.endpoint = absl::StrCat("http://x/", std::string(10000, 'p'));
  service.description = std::string(1023, 'd') + "\xc3\xa9";  // 1025 bytes, é across the limit
  service.labels.clear();
  for (int i = 0; i < 100; ++i) {
    service.labels[absl::StrCat("l", i)] = std::string(5000, 'v');
  }
  service.labels[std::string(200, 'z')] = "long name";
  const Service clamped = ClampToLimits(service);
  EXPECT_EQ(clamped.name, std::string(kMaxServiceNameBytes, 'a'));
  EXPECT_EQ(clamped.endpoint.size(), kMaxLabelValueBytes);
  EXPECT_EQ(clamped.description, std::string(1023, 'd'));
  EXPECT_EQ(clamped.labels.size(), kMaxLabels);
  for (const auto& [name, value] : clamped.labels) {
    EXPECT_LE(name.size(), kMaxLabelNameBytes);
    EXPECT_EQ(value.size(), kMaxLabelValueBytes);
  }
  EXPECT_EQ(clamped.id, service.id);
  EXPECT_THAT(CheckStoredService(clamped), IsOk());
}

// ---- IDs ----

TEST(UuidV5Test, MatchesAppendixAVector) {
  EXPECT_THAT(UuidV5(kDnsNamespace, "discovery"),
              IsOkAndHolds(std::string("12ece826-bfcf-55f3-8e26-f92fe44d4be3")));
}

TEST(UuidV5Test, MatchesRfcStyleVectors) {
  // Python's uuid.uuid5(NAMESPACE_DNS, "python.org") and (NAMESPACE_URL, ...).
  EXPECT_THAT(UuidV5(kDnsNamespace, "python.org"),
              IsOkAndHolds(std::string("886313e1-3b8a-5372-9b90-0c9aee199e5d")));
  EXPECT_THAT(UuidV5("6ba7b811-9dad-11d1-80b4-00c04fd430c8", "http://example.com/metrics"),
              IsOkAndHolds(std::string("7a4f8eb9-d128-5265-8495-f7e4a23f806c")));
}

TEST(UuidV5Test, AcceptsOtherNamespaceSpellings) {
  const std::string expected = "12ece826-bfcf-55f3-8e26-f92fe44d4be3";
  for (const char* ns :
       {"6BA7B810-9DAD-11D1-80B4-00C04FD430C8", "6ba7b8109dad11d180b400c04fd430c8",
        "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}", "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        "URN:UUID:6ba7b810-9dad-11d1-80b4-00c04fd430c8"}) {
    EXPECT_THAT(UuidV5(ns, "discovery"), IsOkAndHolds(expected)) << ns;
  }
}

TEST(UuidV5Test, RejectsInvalidNamespace) {
  for (const char* ns :
       {"", "discovery", "6ba7b810-9dad-11d1-80b4-00c04fd430c",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8a", "6ba7b810x9dad-11d1-80b4-00c04fd430c8",
        "6ba7b810-9dad-11d1-80b4-00c04fd430cg", "{6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        "6ba7b810-9dad-11d1-80b4+00c04fd430c8"}) {
    EXPECT_THAT(UuidV5(ns, "x"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid namespace uuid")))
        << ns;
  }
  EXPECT_THAT(UuidV5("nope", "x"),
              StatusIs(absl::StatusCode::kInvalidArgument, "invalid namespace uuid 'nope'"));
}

TEST(ServiceIdTest, MatchesAppendixAVectors) {
  EXPECT_EQ(ServiceId("http://example.com/metrics"), "93c156b1-f218-5d79-88a5-219307e59d29");
  EXPECT_EQ(ServiceId("http://blackbox.example.com"), "e988791c-2c4e-5eeb-b3b8-db3c0cf82719");
}

TEST(ServiceIdTest, MatchesUuidV5InServiceNamespace) {
  for (const char* endpoint :
       {"https://www.test.com:7002/metrics", "http://[::1]:9100/metrics", "", "x"}) {
    EXPECT_THAT(UuidV5("12ece826-bfcf-55f3-8e26-f92fe44d4be3", endpoint),
                IsOkAndHolds(ServiceId(endpoint)));
  }
  EXPECT_EQ(ServiceId("https://www.test.com:7002/metrics"), "434fd078-dbe5-5da8-912d-f851d19367a3");
  EXPECT_EQ(ServiceId("http://example.com/%C3%A4"), "63530d53-dc3a-56ef-aa67-844038a93393");
}

TEST(ServiceIdTest, IsVersion5Rfc4122LowerCase) {
  const std::string id = ServiceId("http://p.example.com/metrics");
  ASSERT_EQ(id.size(), 36U);
  EXPECT_EQ(id[14], '5');
  EXPECT_THAT(std::string("89ab"), HasSubstr(std::string(1, id[19])));
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef-"), std::string::npos);
}

// docs/decisions.md D9: unregistering by endpoint must hash the canonical form, so spelling
// variants of one endpoint map to one ID.
TEST(ServiceIdTest, CanonicalisedEndpointsShareTheId) {
  absl::StatusOr<Endpoint> upper = Endpoint::Parse("HTTP://example.com/metrics");
  ASSERT_THAT(upper, IsOk());
  EXPECT_EQ(upper->String(), "http://example.com/metrics");
  EXPECT_EQ(ServiceId(upper->String()), "93c156b1-f218-5d79-88a5-219307e59d29");

  absl::StatusOr<Endpoint> spaced = Endpoint::Parse("http://example.com/a b");
  ASSERT_THAT(spaced, IsOk());
  EXPECT_EQ(ServiceId(spaced->String()), "a6ae0938-a477-562d-abaa-9da786006fdf");
  EXPECT_EQ(ServiceId(spaced->String()), ServiceId("http://example.com/a%20b"));
}

}  // namespace
}  // namespace discovery
