#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "registry/registry.h"
#include "registry/registry_test_fixture.h"
#include "testing/status_matchers.h"

// What the registry serves: target groups by export config, http_sd bodies and their ETags, and
// service counts.
namespace discovery::registry {
namespace {

// docs/decisions.md D15.
TEST_F(RegistryTest, TargetGroupsFollowTheNamespaceExportConfig) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ASSERT_THAT(registry->RegisterNamespace("probes", ExportConfig::kBlackbox), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://a:9100/metrics")), IsOk());
  ServiceRegistration probe = Target("https://example.com", "probes");
  probe.labels = {{"module", "http_2xx"}};
  ASSERT_THAT(registry->RegisterService(probe), IsOk());

  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> body =
      registry->HttpSd("p1", "default", "");
  ASSERT_THAT(body, IsOk());
  EXPECT_EQ((*body)->json(), R"([{"targets":["a:9100"],"labels":{"__metrics_path__":"/metrics",)"
                             R"("__scheme__":"http","instance":"a:9100","job":"node"}}])");
  body = registry->HttpSd("p1", "probes", "");
  ASSERT_THAT(body, IsOk());
  EXPECT_EQ((*body)->json(),
            R"([{"targets":["https://example.com"],"labels":{"module":"http_2xx"}}])");
  body = registry->HttpSd("p1", "probes", "standard");
  ASSERT_THAT(body, IsOk());
  EXPECT_THAT((*body)->json(), HasSubstr(R"("job":"node")"));

  ASSERT_THAT(registry->RegisterNamespace("probes", ExportConfig::kDisabled), IsOk());
  body = registry->HttpSd("p1", "probes", "");
  ASSERT_THAT(body, IsOk());
  EXPECT_EQ((*body)->json(), "[]");

  EXPECT_THAT(registry->HttpSd("p1", "default", "disabled"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("invalid exporter config: 'disabled'")));
  EXPECT_THAT(registry->HttpSd(".*", "default", ""), StatusIs(absl::StatusCode::kInvalidArgument));
  // An unknown server or namespace is an empty answer, never an error: Prometheus would keep
  // the old targets of a server that answers with an error.
  for (const auto& [server, ns] : {std::pair{"p.", "default"}, std::pair{"p1", "nowhere"}}) {
    body = registry->HttpSd(server, ns, "");
    ASSERT_THAT(body, IsOk());
    EXPECT_EQ((*body)->json(), "[]");
    absl::StatusOr<std::vector<targetgroup::TargetGroup>> groups =
        registry->TargetGroups(server, ns, "");
    ASSERT_THAT(groups, IsOk());
    EXPECT_TRUE(groups->empty());
  }
  absl::StatusOr<std::vector<targetgroup::TargetGroup>> groups =
      registry->TargetGroups("p1", "default", "blackbox");
  ASSERT_THAT(groups, IsOk());
  ASSERT_THAT(*groups, SizeIs(1));
  EXPECT_THAT((*groups)[0].targets, ElementsAre("http://a:9100/metrics"));
}

TEST_F(RegistryTest, HttpSdETagChangesWithTheContentOnly) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://a:9100")), IsOk());
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> first =
      registry->HttpSd("p1", "default", "");
  ASSERT_THAT(first, IsOk());
  // An unrelated change keeps the answer and its tag.
  ASSERT_THAT(registry->RegisterNamespace("other", ExportConfig::kStandard), IsOk());
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> same =
      registry->HttpSd("p1", "default", "");
  ASSERT_THAT(same, IsOk());
  EXPECT_EQ((*same)->etag(), (*first)->etag());
  ASSERT_THAT(registry->RegisterService(Target("http://b:9100")), IsOk());
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> changed =
      registry->HttpSd("p1", "default", "");
  ASSERT_THAT(changed, IsOk());
  EXPECT_NE((*changed)->etag(), (*first)->etag());
  EXPECT_THAT((*changed)->json(), HasSubstr("b:9100"));
}

// The I/O thread's variant answers only what is rendered already, and never renders.
TEST_F(RegistryTest, CachedHttpSdAnswersOnlyRenderedBodies) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://a:9100")), IsOk());
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> cached =
      registry->CachedHttpSd("p1", "default", "");
  ASSERT_THAT(cached, IsOk());
  EXPECT_EQ(*cached, nullptr);
  // Still not rendered: asking did not render it.
  EXPECT_THAT(registry->CachedHttpSd("p1", "default", ""), IsOkAndHolds(nullptr));

  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> body =
      registry->HttpSd("p1", "default", "");
  ASSERT_THAT(body, IsOk());
  EXPECT_THAT(registry->CachedHttpSd("p1", "default", ""), IsOkAndHolds(*body));
  // Another config is another body, not rendered yet.
  EXPECT_THAT(registry->CachedHttpSd("p1", "default", "blackbox"), IsOkAndHolds(nullptr));

  // A change of the slice makes the cached body stale: nothing until it is rendered anew.
  ASSERT_THAT(registry->RegisterService(Target("http://b:9100")), IsOk());
  EXPECT_THAT(registry->CachedHttpSd("p1", "default", ""), IsOkAndHolds(nullptr));
  body = registry->HttpSd("p1", "default", "");
  ASSERT_THAT(body, IsOk());
  EXPECT_THAT((*body)->json(), HasSubstr("b:9100"));
  EXPECT_THAT(registry->CachedHttpSd("p1", "default", ""), IsOkAndHolds(*body));

  // Nothing to render: the empty answer right away. Errors as HttpSd.
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> unknown =
      registry->CachedHttpSd("nobody", "default", "");
  ASSERT_THAT(unknown, IsOk());
  ASSERT_NE(*unknown, nullptr);
  EXPECT_EQ((*unknown)->json(), "[]");
  EXPECT_THAT(registry->CachedHttpSd(".*", "default", ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(registry->CachedHttpSd("p1", "default", "disabled"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(RegistryTest, ServiceCountsAreReported) {
  absl::Mutex mu;
  ServiceCounts last;
  auto registry = Start({.on_counts = [&](const ServiceCounts& counts) {
    absl::MutexLock lock(&mu);
    last = counts;
  }});
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://a:9100")), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://b:9100")), IsOk());
  absl::MutexLock lock(&mu);
  EXPECT_EQ(last, (ServiceCounts{{{"p1", "default"}, 2}}));
}

}  // namespace
}  // namespace discovery::registry
