#include "repo/repo.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "repo/codec.h"
#include "store/embedded/embedded_store.h"
#include "testing/status_matchers.h"

namespace discovery::repo {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

Service MakeService(std::string name, std::string ns, std::string endpoint) {
  Service service;
  service.id = ServiceId(endpoint);
  service.name = std::move(name);
  service.namespace_name = std::move(ns);
  service.endpoint = std::move(endpoint);
  service.servers = {"p1"};
  service.modified = absl::FromUnixSeconds(1612447990);
  return service;
}

class RepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::OpenEmbeddedStore({});
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    repo_ = std::make_unique<Repository>(*store_, Keys());
  }

  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Repository> repo_;
};

TEST(KeysTest, UsesTheGoOriginalsLayout) {
  Keys keys;
  EXPECT_EQ(keys.Namespace("default"), "/discovery/namespace/v1/default");
  EXPECT_EQ(keys.Server("prometheus1.example.com"), "/discovery/server/v1/prometheus1.example.com");
  EXPECT_EQ(keys.Service("default", "93c156b1-f218-5d79-88a5-219307e59d29"),
            "/discovery/service/v1/default/93c156b1-f218-5d79-88a5-219307e59d29");
  EXPECT_EQ(keys.ServicesIn("default"), "/discovery/service/v1/default/");
}

TEST(KeysTest, ParsesWhatItBuilds) {
  Keys keys("/sd");
  Keys::Parsed parsed = keys.Parse(keys.Service("ns", "id"));
  EXPECT_EQ(parsed.kind, Keys::Parsed::Kind::kService);
  EXPECT_EQ(parsed.name, "ns");
  EXPECT_EQ(parsed.id, "id");
  EXPECT_EQ(keys.Parse(keys.Server("s")).kind, Keys::Parsed::Kind::kServer);
  EXPECT_EQ(keys.Parse(keys.Namespace("n")).kind, Keys::Parsed::Kind::kNamespace);
  EXPECT_EQ(keys.Parse("/sd/other/v1/x").kind, Keys::Parsed::Kind::kOther);
  EXPECT_EQ(keys.Parse("/discovery/server/v1/s").kind, Keys::Parsed::Kind::kOther);
  EXPECT_EQ(keys.Parse("/sd/server/v1/").kind, Keys::Parsed::Kind::kOther);
}

TEST(KeysTest, ParsesOnlyTheExactLayouts) {
  using Kind = Keys::Parsed::Kind;
  Keys keys("/sd");
  EXPECT_EQ(keys.Parse(keys.PlacementSettings()).kind, Kind::kPlacementSettings);
  EXPECT_EQ(keys.Parse("/sd/settings/v1/placement/x").kind, Kind::kOther);
  EXPECT_EQ(keys.Parse("/sdx/server/v1/s").kind, Kind::kOther);
  EXPECT_EQ(keys.Parse("/sd").kind, Kind::kOther);
  EXPECT_EQ(keys.Parse("/sd/").kind, Kind::kOther);
  EXPECT_EQ(keys.Parse("").kind, Kind::kOther);
  EXPECT_EQ(keys.Parse("/sd/server/v2/s").kind, Kind::kOther);
  EXPECT_EQ(keys.Parse("/sd/server/v1/s/t").kind, Kind::kOther);
  EXPECT_EQ(keys.Parse("/sd/service/v1/ns").kind, Kind::kOther);
  EXPECT_EQ(keys.Parse("/sd/service/v1/ns/").kind, Kind::kOther);
  EXPECT_EQ(keys.Parse("/sd/service/v1//id").kind, Kind::kOther);
  EXPECT_EQ(keys.Parse("/sd/service/v1/ns/id/x").kind, Kind::kOther);
  EXPECT_EQ(keys.Parse("/sd/service/v1/ns/id/x/y/z").kind, Kind::kOther);
  EXPECT_EQ(keys.Parse("/sd/namespace/v1/a/b/c/d/e/f").kind, Kind::kOther);
  const Keys::Parsed server = keys.Parse("/sd/server/v1/a.b-c");
  EXPECT_EQ(server.kind, Kind::kServer);
  EXPECT_EQ(server.name, "a.b-c");
  EXPECT_TRUE(server.id.empty());
}

TEST(KeysTest, ValidatesPrefixesLikeTheOriginal) {
  EXPECT_THAT(ValidatePrefix("/discovery"), IsOk());
  EXPECT_THAT(ValidatePrefix("/my-discovery"), IsOk());
  EXPECT_THAT(ValidatePrefix("discovery"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidatePrefix("/"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidatePrefix("/Disc"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidatePrefix("/a/b"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(KeysTest, ValidatesServiceIds) {
  EXPECT_THAT(ValidateServiceId("93c156b1-f218-5d79-88a5-219307e59d29"), IsOk());
  EXPECT_THAT(ValidateServiceId("93C156B1-f218-5d79-88a5-219307e59d29"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateServiceId("../../server/v1/p1"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not a service id")));
  EXPECT_THAT(ValidateServiceId("93c156b1-f218-5d79-88a5-219307e59d2"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateServiceId("93c156b1-f218-5d79-88a5-219307e59d29a"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(RepositoryTest, NamespacesSaveListDelete) {
  Namespace ns{.name = "default", .export_config = ExportConfig::kStandard};
  ASSERT_THAT(repo_->PutNamespace(ns), IsOk());
  EXPECT_THAT(repo_->ListNamespaces(), ::discovery::testing::IsOkAndHolds(ElementsAre(ns)));
  absl::StatusOr<Versioned<Namespace>> got = repo_->GetNamespace("default");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->value, ns);
  EXPECT_GT(got->mod_revision, 0);

  EXPECT_THAT(repo_->DeleteNamespace("default"), IsOk());
  EXPECT_THAT(repo_->DeleteNamespace("default"),
              StatusIs(absl::StatusCode::kNotFound, "namespace default not found"));
  EXPECT_THAT(repo_->ListNamespaces(), ::discovery::testing::IsOkAndHolds(IsEmpty()));
}

TEST_F(RepositoryTest, ServersSaveListDelete) {
  Server server{.name = "p1", .labels = {{"env", "prod"}}, .state = ServerState::kActive};
  ASSERT_THAT(repo_->PutServer(server), IsOk());
  EXPECT_THAT(repo_->ListServers(), ::discovery::testing::IsOkAndHolds(ElementsAre(server)));
  EXPECT_THAT(repo_->DeleteServer("p1"), IsOk());
  EXPECT_THAT(repo_->DeleteServer("p1"),
              StatusIs(absl::StatusCode::kNotFound, "server p1 not found"));
  EXPECT_THAT(repo_->GetServer("p1"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(RepositoryTest, ServicesSaveListByNamespaceDelete) {
  Service a = MakeService("a", "default", "http://a.example.com/metrics");
  Service b = MakeService("b", "other", "http://b.example.com/metrics");
  ASSERT_THAT(repo_->PutService(a), IsOk());
  ASSERT_THAT(repo_->PutService(b), IsOk());
  EXPECT_THAT(repo_->ListServices(), ::discovery::testing::IsOkAndHolds(ElementsAre(a, b)));
  EXPECT_THAT(repo_->ListServices("default"), ::discovery::testing::IsOkAndHolds(ElementsAre(a)));
  EXPECT_THAT(repo_->ListServices("none"), ::discovery::testing::IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(repo_->GetService("other", b.id),
              ::discovery::testing::IsOkAndHolds(::testing::Field(&Versioned<Service>::value, b)));

  EXPECT_THAT(repo_->DeleteService("default", a.id), IsOk());
  EXPECT_THAT(repo_->DeleteService("default", a.id), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(repo_->ListServices(), ::discovery::testing::IsOkAndHolds(ElementsAre(b)));
}

// docs/decisions.md D2.
TEST_F(RepositoryTest, DeletingANamespaceDeletesExactlyItsServices) {
  ASSERT_THAT(repo_->PutNamespace({.name = "default"}), IsOk());
  ASSERT_THAT(repo_->PutNamespace({.name = "default-blackbox"}), IsOk());
  Service in_default = MakeService("a", "default", "http://a.example.com/metrics");
  Service in_blackbox = MakeService("b", "default-blackbox", "http://b.example.com");
  ASSERT_THAT(repo_->PutService(in_default), IsOk());
  ASSERT_THAT(repo_->PutService(in_blackbox), IsOk());

  ASSERT_THAT(repo_->DeleteNamespace("default"), IsOk());

  EXPECT_THAT(repo_->ListServices(), ::discovery::testing::IsOkAndHolds(ElementsAre(in_blackbox)));
  EXPECT_THAT(repo_->ListNamespaces(),
              ::discovery::testing::IsOkAndHolds(
                  ElementsAre(::testing::Field(&Namespace::name, "default-blackbox"))));
}

// A large namespace goes in parts: one transaction before each bound, then the namespace with
// the rest. Bounds out of order or outside the namespace's services change nothing.
TEST_F(RepositoryTest, DeletingANamespaceInPartsDeletesExactlyItsServices) {
  ASSERT_THAT(repo_->PutNamespace({.name = "big"}), IsOk());
  ASSERT_THAT(repo_->PutNamespace({.name = "big-other"}), IsOk());
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    Service service = MakeService("s", "big", fmt::format("http://h{}.example.com/metrics", i));
    ids.push_back(service.id);
    ASSERT_THAT(repo_->PutService(service), IsOk());
  }
  Service kept = MakeService("k", "big-other", "http://kept.example.com/metrics");
  ASSERT_THAT(repo_->PutService(kept), IsOk());
  std::sort(ids.begin(), ids.end());
  ASSERT_OK_AND_ASSIGN(const int64_t before, store_->CurrentRevision());
  // Three parts and the last transaction; the repeated and the backward bound are skipped.
  ASSERT_THAT(repo_->DeleteNamespace("big", {ids[5], ids[5], ids[2], ids[10], ids[15]}), IsOk());
  ASSERT_OK_AND_ASSIGN(const int64_t after, store_->CurrentRevision());
  EXPECT_EQ(after - before, 4);
  EXPECT_THAT(repo_->ListServices(), ::discovery::testing::IsOkAndHolds(ElementsAre(kept)));
  EXPECT_THAT(repo_->ListNamespaces(), ::discovery::testing::IsOkAndHolds(ElementsAre(
                                           ::testing::Field(&Namespace::name, "big-other"))));
}

TEST_F(RepositoryTest, DeletingAMissingNamespaceDeletesNothing) {
  Service orphan = MakeService("a", "gone", "http://a.example.com/metrics");
  ASSERT_THAT(repo_->PutService(orphan), IsOk());
  EXPECT_THAT(repo_->DeleteNamespace("gone"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(repo_->ListServices(), ::discovery::testing::IsOkAndHolds(ElementsAre(orphan)));
}

// docs/decisions.md D10.
TEST_F(RepositoryTest, KeyComponentsCannotEscapeTheirRecord) {
  ASSERT_THAT(repo_->PutServer({.name = "p1"}), IsOk());
  EXPECT_THAT(repo_->DeleteService("default", "../../server/v1/p1"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(repo_->DeleteService("..", "93c156b1-f218-5d79-88a5-219307e59d29"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(repo_->DeleteNamespace("../server/v1/p1"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(repo_->DeleteServer("../namespace/v1/default"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(repo_->PutServer({.name = "a/b"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(repo_->GetServer("p1"), IsOk());
}

TEST_F(RepositoryTest, RejectsInvalidRecordsBeforeWriting) {
  Service bad = MakeService("a", "default", "http://a.example.com/metrics");
  bad.id = "93c156b1-f218-5d79-88a5-219307e59d29";  // not the id of its endpoint
  EXPECT_THAT(repo_->PutService(bad), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(repo_->PutNamespace({.name = "with space"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(repo_->ListServices(), ::discovery::testing::IsOkAndHolds(IsEmpty()));
}

TEST_F(RepositoryTest, ListNamesTheKeyOfAnUndecodableRecord) {
  ASSERT_THAT(store::Put(*store_, "/discovery/server/v1/broken", "{nope"), IsOk());
  EXPECT_THAT(repo_->ListServers(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("/discovery/server/v1/broken")));
}

TEST_F(RepositoryTest, ReadsRecordsWrittenByTheGoOriginal) {
  ASSERT_THAT(
      store::Put(*store_, "/discovery/service/v1/default/93c156b1-f218-5d79-88a5-219307e59d29",
                 R"({"id":"93c156b1-f218-5d79-88a5-219307e59d29","name":"example",)"
                 R"("namespace":"default","endpoint":"http://example.com/metrics",)"
                 R"("servers":["prometheus1.example.com"],"selector":"environment=test",)"
                 R"("modified":"2021-02-04T15:13:50.085+01:00"})"),
      IsOk());
  absl::StatusOr<std::vector<Service>> services = repo_->ListServices("default");
  ASSERT_THAT(services, IsOk());
  ASSERT_EQ(services->size(), 1U);
  EXPECT_EQ((*services)[0].name, "example");
  EXPECT_THAT(Validate((*services)[0]), IsOk());
}

}  // namespace
}  // namespace discovery::repo
