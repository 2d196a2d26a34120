#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "registry/registry.h"
#include "registry/registry_test_fixture.h"
#include "repo/codec.h"
#include "store/store.h"
#include "testing/status_matchers.h"

// Registering and unregistering services and namespaces, the bounds of a record, and stored
// records that cannot be served.
namespace discovery::registry {
namespace {

TEST_F(RegistryTest, RegisterServiceErrors) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {{"env", "prod"}}), IsOk());

  EXPECT_THAT(registry->RegisterService(Target("localhost:9100")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("http://localhost:9100")));
  ServiceRegistration unnamed = Target("http://a:9100");
  unnamed.name = "";
  EXPECT_THAT(registry->RegisterService(unnamed),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name")));
  EXPECT_THAT(registry->RegisterService(Target("http://a:9100", "no/such")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // docs/decisions.md D3: an unknown namespace is NotFound, not Internal.
  EXPECT_THAT(registry->RegisterService(Target("http://a:9100", "nosuch")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("namespace nosuch not found")));
  // docs/decisions.md D11: a malformed selector is InvalidArgument and says what is wrong.
  EXPECT_THAT(registry->RegisterService(Target("http://a:9100", "", "env in (prod")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid selector")));
  EXPECT_THAT(
      registry->RegisterService(Target("http://a:9100", "", "env=test")),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("no server found for selector 'env=test'")));
  ServiceRegistration labelled = Target("http://a:9100");
  labelled.labels = {{"__scheme__", "https"}};
  EXPECT_THAT(registry->RegisterService(labelled), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(registry->RegisterService(Target("http://a:9100/probe?mod-ule=x")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("__param_mod-ule")));
  absl::StatusOr<std::vector<Service>> services = registry->ListServices("");
  ASSERT_THAT(services, IsOk());
  EXPECT_THAT(*services, IsEmpty());
}

TEST_F(RegistryTest, ReRegisteringAnEndpointReplacesTheService) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ServiceRegistration first = Target("HTTP://a:9100/metrics");
  first.labels = {{"team", "x"}};
  ASSERT_THAT(registry->RegisterService(first), IsOk());
  ServiceRegistration second = Target("http://a:9100/metrics");
  second.name = "renamed";
  absl::StatusOr<Service> stored = registry->RegisterService(second);
  ASSERT_THAT(stored, IsOk());
  EXPECT_EQ(stored->endpoint, "http://a:9100/metrics");
  absl::StatusOr<std::vector<Service>> services = registry->ListServices("default");
  ASSERT_THAT(services, IsOk());
  ASSERT_THAT(*services, SizeIs(1));
  EXPECT_EQ((*services)[0].name, "renamed");
  EXPECT_THAT((*services)[0].labels, IsEmpty());
}

// docs/decisions.md D9, D10.
TEST_F(RegistryTest, UnregisterServiceByIdOrByAnyFormOfItsEndpoint) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  absl::StatusOr<Service> a = registry->RegisterService(Target("http://a:9100/metrics"));
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://b:9100/metrics")), IsOk());

  EXPECT_THAT(registry->UnregisterService("HTTP://b:9100/metrics", ""), IsOk());
  EXPECT_THAT(registry->UnregisterService(a->id, "default"), IsOk());
  EXPECT_THAT(registry->UnregisterService(a->id, "default"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("not found")));
  // Path tricks never reach another key.
  EXPECT_THAT(registry->UnregisterService("../../../server/v1/p1", "default"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(registry->UnregisterService(a->id, "../server"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  absl::StatusOr<std::vector<Server>> servers = registry->ListServers();
  ASSERT_THAT(servers, IsOk());
  EXPECT_THAT(*servers, SizeIs(1));
}

// docs/decisions.md D2.
TEST_F(RegistryTest, UnregisteringANamespaceDeletesExactlyItsServices) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ASSERT_THAT(registry->RegisterNamespace("web", ExportConfig::kStandard), IsOk());
  ASSERT_THAT(registry->RegisterNamespace("default-blackbox", ExportConfig::kBlackbox), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://a:9100", "web")), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://b:9115", "default-blackbox")), IsOk());

  ASSERT_THAT(registry->UnregisterNamespace("web"), IsOk());
  absl::StatusOr<std::vector<Service>> services = registry->ListServices("");
  ASSERT_THAT(services, IsOk());
  ASSERT_THAT(*services, SizeIs(1));
  EXPECT_EQ((*services)[0].namespace_name, "default-blackbox");
  EXPECT_THAT(registry->UnregisterNamespace("web"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("not found")));
  EXPECT_THAT(registry->RegisterNamespace("bad name", ExportConfig::kStandard),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(registry->RegisterNamespace("x", static_cast<ExportConfig>(7)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("export config 7")));
}

// A namespace of more services than one deletion takes goes in several store transactions (a
// million keys in one outlast etcd's request timeout), and still exactly its services go.
TEST_F(RegistryTest, UnregisteringALargeNamespaceDeletesItInParts) {
  RegistryOptions options;
  options.services_per_deletion = 8;
  auto registry = Start(std::move(options));
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ASSERT_THAT(registry->RegisterNamespace("big", ExportConfig::kStandard), IsOk());
  ASSERT_THAT(registry->RegisterNamespace("big-other", ExportConfig::kStandard), IsOk());
  for (int i = 0; i < 50; ++i) {
    ASSERT_THAT(registry->RegisterService(Target(fmt::format("http://h{}:9100", i), "big")),
                IsOk());
  }
  ASSERT_THAT(registry->RegisterService(Target("http://kept:9100", "big-other")), IsOk());
  absl::StatusOr<int64_t> before = store_->CurrentRevision();
  ASSERT_THAT(before, IsOk());
  ASSERT_THAT(registry->UnregisterNamespace("big"), IsOk());
  absl::StatusOr<int64_t> after = store_->CurrentRevision();
  ASSERT_THAT(after, IsOk());
  // Six parts of eight services, then the namespace with the last two.
  EXPECT_EQ(*after - *before, 7);
  absl::StatusOr<std::vector<Service>> services = registry->ListServices("");
  ASSERT_THAT(services, IsOk());
  ASSERT_THAT(*services, SizeIs(1));
  EXPECT_EQ((*services)[0].namespace_name, "big-other");
  EXPECT_THAT(StoredServiceRevisions(), SizeIs(1));
}

// Registrations without a namespace need `default`: it cannot be deleted, and keeps its services.
TEST_F(RegistryTest, TheDefaultNamespaceCannotBeUnregistered) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://a:9100")), IsOk());
  EXPECT_THAT(registry->UnregisterNamespace("default"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("namespace default cannot be unregistered")));
  absl::StatusOr<std::vector<Service>> services = registry->ListServices("default");
  ASSERT_THAT(services, IsOk());
  EXPECT_THAT(*services, SizeIs(1));
}

// docs/decisions.md D37: records are bounded at registration, with the field and the limit in the
// message.
TEST_F(RegistryTest, RegisterServiceEnforcesTheRecordLimits) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ServiceRegistration big = Target("http://a:9100/metrics");
  big.labels = {{"x", std::string(5000, 'v')}};
  EXPECT_THAT(registry->RegisterService(big),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("label value of 'x' is 5000 bytes; the limit is 4096")));
  big.labels.clear();
  for (int i = 0; i <= 64; ++i) {
    big.labels[fmt::format("l{}", i)] = "v";
  }
  EXPECT_THAT(registry->RegisterService(big), StatusIs(absl::StatusCode::kInvalidArgument,
                                                       HasSubstr("65 labels; the limit is 64")));
  big.labels.clear();
  big.description = std::string(1025, 'd');
  EXPECT_THAT(registry->RegisterService(big),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("description is 1025 bytes; the limit is 1024")));
  big.description.clear();
  big.name = std::string(300, 'n');
  EXPECT_THAT(registry->RegisterService(big),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("name is 300 bytes; the limit is 200")));
  big.name = "node";
  big.namespace_name = std::string(256, 'n');
  EXPECT_THAT(registry->RegisterService(big),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("name is 256 bytes; the limit is 255")));
  EXPECT_THAT(registry->RegisterNamespace(std::string(256, 'n'), ExportConfig::kStandard),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("name is 256 bytes; the limit is 255")));
  absl::StatusOr<std::vector<Service>> services = registry->ListServices("");
  ASSERT_THAT(services, IsOk());
  EXPECT_THAT(*services, IsEmpty());

  // Right at the limits is fine.
  ServiceRegistration full = Target("http://b:9100/metrics");
  full.name = std::string(200, 'n');
  full.description = std::string(1024, 'd');
  for (int i = 0; i < 64; ++i) {
    full.labels[fmt::format("l{}", i)] = std::string(4096, 'v');
  }
  EXPECT_THAT(registry->RegisterService(full), IsOk());
}

// docs/decisions.md D36: a stored record that cannot be served (the Go original accepted
// "localhost:9100") is left out of http_sd and ListTargetGroup, listed apart with the reason,
// counted, and removable; the good services next to it are served as before.
TEST_F(RegistryTest, ALegacyRecordNeverBreaksAnAnswer) {
  std::vector<InvalidCounts> counts;
  absl::Mutex mu;
  auto registry = Start({.on_invalid = [&](const InvalidCounts& c) {
    absl::MutexLock lock(&mu);
    counts.push_back(c);
  }});
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://a:9100/metrics")), IsOk());
  const std::string legacy_id = ServiceId("localhost:9100");
  ASSERT_THAT(store::Put(*store_, repo::Keys().Service("default", legacy_id),
                         R"({"id":")" + legacy_id +
                             R"(","name":"node","namespace":"default",)"
                             R"("endpoint":"localhost:9100","servers":["p1"]})"),
              IsOk());
  Service too_big{.name = "big", .namespace_name = "default", .endpoint = "http://big:1"};
  too_big.id = ServiceId(too_big.endpoint);
  too_big.labels = {{"blob", std::string(3 << 20, 'x')}};
  ASSERT_THAT(store::Put(*store_, repo::Keys().Service("default", too_big.id),
                         repo::EncodeService(too_big)),
              IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://b:9100/metrics")), IsOk());

  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> body =
      registry->HttpSd("p1", "default", "");
  ASSERT_THAT(body, IsOk());
  EXPECT_EQ((*body)->json(), R"([{"targets":["a:9100"],"labels":{"__metrics_path__":"/metrics",)"
                             R"("__scheme__":"http","instance":"a:9100","job":"node"}},)"
                             R"({"targets":["b:9100"],"labels":{"__metrics_path__":"/metrics",)"
                             R"("__scheme__":"http","instance":"b:9100","job":"node"}}])");
  absl::StatusOr<std::vector<targetgroup::TargetGroup>> groups =
      registry->TargetGroups("p1", "default", "");
  ASSERT_THAT(groups, IsOk());
  EXPECT_THAT(*groups, SizeIs(2));
  absl::StatusOr<std::vector<Service>> services = registry->ListServices("default");
  ASSERT_THAT(services, IsOk());
  EXPECT_THAT(*services, SizeIs(2));

  absl::StatusOr<std::vector<InvalidService>> invalid = registry->ListInvalidServices("");
  ASSERT_THAT(invalid, IsOk());
  ASSERT_THAT(*invalid, SizeIs(2));
  std::map<std::string, InvalidService> by_id;
  for (const InvalidService& record : *invalid) {
    by_id[record.service.id] = record;
  }
  EXPECT_THAT(by_id.at(legacy_id).reason, HasSubstr("'localhost:9100' is not a valid url"));
  EXPECT_EQ(by_id.at(legacy_id).service.endpoint, "localhost:9100");
  EXPECT_THAT(by_id.at(legacy_id).service.servers, IsEmpty());
  EXPECT_EQ(by_id.at(too_big.id).reason,
            "label value of 'blob' is 3145728 bytes; the limit is 4096");
  EXPECT_EQ(by_id.at(too_big.id).service.labels.at("blob").size(), kMaxLabelValueBytes);
  EXPECT_THAT(registry->ListInvalidServices("other"), IsOkAndHolds(IsEmpty()));
  {
    absl::MutexLock lock(&mu);
    ASSERT_FALSE(counts.empty());
    EXPECT_EQ(counts.back(), (InvalidCounts{{{"service", "default"}, 2}}));
  }

  // Removable by id like any other service, although the record does not parse.
  EXPECT_THAT(registry->UnregisterService(legacy_id, "default"), IsOk());
  EXPECT_THAT(registry->UnregisterService(too_big.id, "default"), IsOk());
  EXPECT_THAT(registry->ListInvalidServices(""), IsOkAndHolds(IsEmpty()));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(counts.back(), InvalidCounts{});
}

}  // namespace
}  // namespace discovery::registry
