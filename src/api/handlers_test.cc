#include "api/handlers.h"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "api/convert.h"
#include "testing/api_stack.h"
#include "testing/status_matchers.h"

namespace discovery::api {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

class HandlersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(stack_, testing::ApiStack::Create(
                                     {.admin_roles = {"admin"},
                                      .handlers = {.tokens = {.issuer = "iss", .secret = "secret"},
                                                   .clock = [] { return kNow; }}}));
    store_ = &stack_->store();
    registry_ = &stack_->registry();
    handlers_ = &stack_->handlers();
  }

  const auth::Principal admin_{
      .kind = auth::Principal::Kind::kUser, .name = "alice", .roles = {"admin"}};
  const auth::Principal user_{.kind = auth::Principal::Kind::kUser, .name = "bob"};
  const auth::Principal machine_{
      .kind = auth::Principal::Kind::kMachine, .name = "ci", .namespaces = {"default"}};
  std::unique_ptr<testing::ApiStack> stack_;
  store::Store* store_ = nullptr;
  registry::Registry* registry_ = nullptr;
  Handlers* handlers_ = nullptr;
};

TEST_F(HandlersTest, AdministrationNeedsAnAdminRole) {
  pb::RegisterServerRequest server;
  server.set_name("p1");
  EXPECT_THAT(handlers_->RegisterServer(user_, server),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("user token for bob is not allowed to register a server")));
  EXPECT_THAT(handlers_->RegisterServer(machine_, server),
              StatusIs(absl::StatusCode::kPermissionDenied));
  absl::StatusOr<pb::RegisterServerResponse> registered = handlers_->RegisterServer(admin_, server);
  ASSERT_THAT(registered, IsOk());
  EXPECT_EQ(registered->server().state(), 2);

  pb::RegisterNamespaceRequest ns;
  ns.set_name("team");
  ns.set_export_(2);
  EXPECT_THAT(handlers_->RegisterNamespace(machine_, ns),
              StatusIs(absl::StatusCode::kPermissionDenied));
  absl::StatusOr<pb::RegisterNamespaceResponse> created = handlers_->RegisterNamespace(admin_, ns);
  ASSERT_THAT(created, IsOk());
  EXPECT_EQ(created->namespace_().export_(), 2);
  absl::StatusOr<pb::ListNamespaceResponse> list = handlers_->ListNamespace(machine_, {});
  ASSERT_THAT(list, IsOk());
  EXPECT_EQ(list->namespaces_size(), 2);
}

// docs/decisions.md D14.
TEST_F(HandlersTest, MachineTokensChangeServicesOnlyInTheirNamespaces) {
  pb::RegisterServerRequest server;
  server.set_name("p1");
  ASSERT_THAT(handlers_->RegisterServer(admin_, server), IsOk());
  pb::RegisterNamespaceRequest ns;
  ns.set_name("other");
  ns.set_export_(1);
  ASSERT_THAT(handlers_->RegisterNamespace(admin_, ns), IsOk());

  pb::RegisterServiceRequest request;
  request.set_name("node");
  request.set_endpoint("http://a:9100/metrics");
  // An omitted namespace is "default", which the token holds.
  absl::StatusOr<pb::RegisterServiceResponse> registered =
      handlers_->RegisterService(machine_, request);
  ASSERT_THAT(registered, IsOk());
  EXPECT_EQ(registered->service().namespace_(), "default");
  EXPECT_THAT(registered->service().servers(), ElementsAre("p1"));

  request.set_namespace_("other");
  EXPECT_THAT(handlers_->RegisterService(machine_, request),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("machine token ci (default) is not allowed to change service in "
                                 "other namespace")));
  pb::UnRegisterServiceRequest remove;
  remove.set_id(registered->service().id());
  remove.set_namespace_("other");
  EXPECT_THAT(handlers_->UnRegisterService(machine_, remove),
              StatusIs(absl::StatusCode::kPermissionDenied));
  remove.clear_namespace_();
  EXPECT_THAT(handlers_->UnRegisterService(machine_, remove), IsOk());
}

// WhoAmI answers what the Authorizer allows each kind of caller.
TEST_F(HandlersTest, WhoAmIAnswersWhatTheCallerMayChange) {
  absl::StatusOr<pb::WhoAmIResponse> admin = handlers_->WhoAmI(admin_, {});
  ASSERT_THAT(admin, IsOk());
  EXPECT_EQ(admin->kind(), "user");
  EXPECT_EQ(admin->name(), "alice");
  EXPECT_TRUE(admin->admin());
  EXPECT_TRUE(admin->all_namespaces());
  EXPECT_THAT(admin->roles(), ElementsAre("admin"));

  // Every user may change services anywhere; only admin roles administer.
  absl::StatusOr<pb::WhoAmIResponse> user = handlers_->WhoAmI(user_, {});
  ASSERT_THAT(user, IsOk());
  EXPECT_FALSE(user->admin());
  EXPECT_TRUE(user->all_namespaces());
  EXPECT_THAT(user->namespaces(), ElementsAre());

  absl::StatusOr<pb::WhoAmIResponse> machine = handlers_->WhoAmI(machine_, {});
  ASSERT_THAT(machine, IsOk());
  EXPECT_EQ(machine->kind(), "machine");
  EXPECT_EQ(machine->name(), "ci");
  EXPECT_FALSE(machine->admin());
  EXPECT_FALSE(machine->all_namespaces());
  EXPECT_THAT(machine->namespaces(), ElementsAre("default"));

  const auth::Principal admin_machine{
      .kind = auth::Principal::Kind::kMachine, .name = "root", .admin_token = true};
  absl::StatusOr<pb::WhoAmIResponse> root = handlers_->WhoAmI(admin_machine, {});
  ASSERT_THAT(root, IsOk());
  EXPECT_TRUE(root->admin());
  EXPECT_TRUE(root->all_namespaces());
}

// docs/decisions.md D36: ListService answers the served services and, apart from them, the stored
// records that cannot be served with the reason; ListTargetGroup is not broken by them.
TEST_F(HandlersTest, ListServiceShowsInvalidRecordsApart) {
  pb::RegisterServerRequest server;
  server.set_name("p1");
  ASSERT_THAT(handlers_->RegisterServer(admin_, server), IsOk());
  pb::RegisterServiceRequest request;
  request.set_name("node");
  request.set_endpoint("http://a:9100/metrics");
  ASSERT_THAT(handlers_->RegisterService(machine_, request), IsOk());
  const std::string legacy_id = ServiceId("localhost:9100");
  absl::StatusOr<store::TxnResult> put =
      store::Put(*store_, repo::Keys().Service("default", legacy_id),
                 R"({"id":")" + legacy_id +
                     R"(","name":"node","namespace":"default","endpoint":"localhost:9100"})");
  ASSERT_THAT(put, IsOk());
  ASSERT_TRUE(registry_->WaitForRevision(put->revision, absl::Seconds(10)));

  pb::ListServiceRequest list;
  list.set_namespace_("default");
  absl::StatusOr<pb::ListServiceResponse> answer = handlers_->ListService(machine_, list);
  ASSERT_THAT(answer, IsOk());
  ASSERT_EQ(answer->services_size(), 1);
  EXPECT_EQ(answer->services(0).endpoint(), "http://a:9100/metrics");
  ASSERT_EQ(answer->invalid_services_size(), 1);
  EXPECT_EQ(answer->invalid_services(0).service().id(), legacy_id);
  EXPECT_EQ(answer->invalid_services(0).service().endpoint(), "localhost:9100");
  EXPECT_THAT(answer->invalid_services(0).reason(), HasSubstr("is not a valid url"));
  list.set_namespace_("other");
  answer = handlers_->ListService(machine_, list);
  ASSERT_THAT(answer, IsOk());
  EXPECT_EQ(answer->invalid_services_size(), 0);

  pb::ListTargetGroupRequest groups;
  groups.set_server("p1");
  groups.set_namespace_("default");
  absl::StatusOr<pb::ListTargetGroupResponse> targets = handlers_->ListTargetGroup(user_, groups);
  ASSERT_THAT(targets, IsOk());
  ASSERT_EQ(targets->targetgroups_size(), 1);
  EXPECT_THAT(targets->targetgroups(0).targets(), ElementsAre("a:9100"));

  pb::UnRegisterServiceRequest remove;
  remove.set_id(legacy_id);
  ASSERT_THAT(handlers_->UnRegisterService(machine_, remove), IsOk());
  answer = handlers_->ListService(machine_, {});
  ASSERT_THAT(answer, IsOk());
  EXPECT_EQ(answer->invalid_services_size(), 0);
  EXPECT_EQ(answer->services_size(), 1);
}

// ListServiceStream orders only the rows asked for (a REST page): any range of its rows must be
// that range of the whole ordered list, also where the requested order ties (one endpoint in two
// namespaces, invalid records of one endpoint, every service modified at the same instant).
TEST_F(HandlersTest, AnyRangeOfAListingIsThatRangeOfTheWholeOrderedList) {
  pb::RegisterServerRequest server;
  server.set_name("p1");
  ASSERT_THAT(handlers_->RegisterServer(admin_, server), IsOk());
  pb::RegisterNamespaceRequest ns;
  ns.set_name("other");
  ASSERT_THAT(handlers_->RegisterNamespace(admin_, ns), IsOk());
  for (int i = 0; i < 40; ++i) {
    pb::RegisterServiceRequest request;
    request.set_name("node");
    // Endpoints out of id order, each in both namespaces.
    request.set_endpoint(fmt::format("http://h{:02}:9100/metrics", (i * 7) % 20));
    request.set_namespace_(i < 20 ? "default" : "other");
    ASSERT_THAT(handlers_->RegisterService(admin_, request), IsOk());
  }
  int64_t revision = 0;
  for (const std::string id : {"legacy-2", "legacy-1", "legacy-3"}) {
    absl::StatusOr<store::TxnResult> put =
        store::Put(*store_, repo::Keys().Service("default", id),
                   R"({"id":")" + id +
                       R"(","name":"node","namespace":"default","endpoint":"localhost:9100"})");
    ASSERT_THAT(put, IsOk());
    revision = put->revision;
  }
  ASSERT_TRUE(registry_->WaitForRevision(revision, absl::Seconds(10)));

  using Row = std::tuple<std::string, std::string, std::string, std::string>;
  const auto rows_of = [](const std::vector<ListedService>& listed) {
    std::vector<Row> rows;
    rows.reserve(listed.size());
    for (const ListedService& row : listed) {
      rows.emplace_back(row.service.endpoint, row.service.namespace_name, row.service.id,
                        row.invalid_reason);
    }
    return rows;
  };
  for (const std::string sort_by : {"endpoint", "date"}) {
    SCOPED_TRACE(sort_by);
    pb::ListServiceStreamRequest request;
    request.set_sort_by(sort_by);
    absl::StatusOr<ServiceListing> whole = handlers_->ListServiceStream(user_, request);
    ASSERT_THAT(whole, IsOk());
    ASSERT_EQ(whole->size(), 43U);
    whole->OrderAll();
    const std::vector<Row> all = rows_of(whole->Rows(0, whole->size()));
    ASSERT_EQ(all.size(), 43U);
    // What the order is: by endpoint and namespace, or newest first; ties in the order listed:
    // served by namespace and id, then invalid.
    ASSERT_OK_AND_ASSIGN(const std::vector<Service> served, registry_->ListServices(""));
    ASSERT_OK_AND_ASSIGN(const std::vector<InvalidService> invalid,
                         registry_->ListInvalidServices(""));
    std::vector<std::pair<absl::Time, Row>> listed;
    listed.reserve(served.size() + invalid.size());
    for (const Service& service : served) {
      listed.emplace_back(service.modified,
                          Row{service.endpoint, service.namespace_name, service.id, ""});
    }
    for (const InvalidService& record : invalid) {
      listed.emplace_back(record.service.modified,
                          Row{record.service.endpoint, record.service.namespace_name,
                              record.service.id, record.reason});
    }
    std::stable_sort(listed.begin(), listed.end(), [&sort_by](const auto& a, const auto& b) {
      if (sort_by == "date") {
        return a.first > b.first;
      }
      return std::tie(std::get<0>(a.second), std::get<1>(a.second)) <
             std::tie(std::get<0>(b.second), std::get<1>(b.second));
    });
    std::vector<Row> expected;
    expected.reserve(listed.size());
    for (const auto& [modified, row] : listed) {
      expected.push_back(row);
    }
    EXPECT_EQ(all, expected);
    for (size_t begin = 0; begin <= all.size(); begin += 3) {
      for (size_t end = begin; end <= all.size() + 2; end += 5) {
        absl::StatusOr<ServiceListing> listing = handlers_->ListServiceStream(user_, request);
        ASSERT_THAT(listing, IsOk());
        const std::vector<Row> range = rows_of(listing->Rows(begin, end));
        EXPECT_EQ(range, std::vector<Row>(
                             all.begin() + static_cast<std::ptrdiff_t>(begin),
                             all.begin() + static_cast<std::ptrdiff_t>(std::min(end, all.size()))))
            << "rows " << begin << " to " << end;
      }
    }
  }

  // ListService's rows, which REST prints a part at a time: the order listed, served by
  // namespace and id, then invalid; any range of them that range.
  ASSERT_OK_AND_ASSIGN(const std::vector<Service> served, registry_->ListServices(""));
  ASSERT_OK_AND_ASSIGN(const std::vector<InvalidService> invalid,
                       registry_->ListInvalidServices(""));
  std::vector<Row> listed;
  listed.reserve(served.size() + invalid.size());
  for (const Service& service : served) {
    listed.emplace_back(service.endpoint, service.namespace_name, service.id, "");
  }
  for (const InvalidService& record : invalid) {
    listed.emplace_back(record.service.endpoint, record.service.namespace_name, record.service.id,
                        record.reason);
  }
  ASSERT_EQ(listed.size(), 43U);
  for (size_t begin = 0; begin <= listed.size(); begin += 7) {
    const size_t end = begin + 11;
    ASSERT_OK_AND_ASSIGN(ServiceListing rows, handlers_->ListServiceRows(user_, {}));
    std::vector<ListedService> visited;
    rows.VisitRows(begin, end,
                   [&visited](ListedService row) { visited.push_back(std::move(row)); });
    EXPECT_EQ(rows_of(visited),
              std::vector<Row>(
                  listed.begin() + static_cast<std::ptrdiff_t>(begin),
                  listed.begin() + static_cast<std::ptrdiff_t>(std::min(end, listed.size()))))
        << "rows " << begin << " to " << end;
  }
}

TEST_F(HandlersTest, TokensCanBeCreatedByAdminsAndInspectedByAnyone) {
  pb::CreateRequest create;
  create.set_id("ci");
  create.add_namespaces("default");
  create.set_expires("1h");
  EXPECT_THAT(handlers_->Create(machine_, create), StatusIs(absl::StatusCode::kPermissionDenied));
  absl::StatusOr<pb::CreateResponse> created = handlers_->Create(admin_, create);
  ASSERT_THAT(created, IsOk());

  pb::InfoRequest info;
  info.set_token(created->token());
  absl::StatusOr<pb::InfoResponse> answer = handlers_->Info(machine_, info);
  ASSERT_THAT(answer, IsOk());
  EXPECT_EQ(answer->tokeninfo().id(), "ci");
  EXPECT_THAT(answer->tokeninfo().namespaces(), ElementsAre("default"));
  EXPECT_EQ(answer->tokeninfo().expires_at().seconds(), absl::ToUnixSeconds(kNow + absl::Hours(1)));

  create.set_expires("");
  created = handlers_->Create(admin_, create);
  ASSERT_THAT(created, IsOk());
  info.set_token(created->token());
  answer = handlers_->Info(user_, info);
  ASSERT_THAT(answer, IsOk());
  EXPECT_EQ(answer->tokeninfo().expires_at().seconds(), kGoZeroTimeUnixSeconds);

  create.set_expires("soon");
  EXPECT_THAT(
      handlers_->Create(admin_, create),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid expiry duration soon")));
  create.set_expires("1h");
  create.add_namespaces("no/such");
  EXPECT_THAT(handlers_->Create(admin_, create), StatusIs(absl::StatusCode::kInvalidArgument));
  // docs/decisions.md D4: a token without three segments is InvalidArgument, not a crash.
  info.set_token("abc");
  EXPECT_THAT(handlers_->Info(user_, info),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("token is not valid")));
}

}  // namespace
}  // namespace discovery::api
