// The audit trail: one line per attempted change through the Dispatcher, whoever calls and
// whatever the outcome, and the client address behind trusted proxies.
#include "api/audit.h"

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "api/dispatcher.h"
#include "api/handlers.h"
#include "api/peer.h"
#include "auth/authenticator.h"
#include "auth/machine_token.h"
#include "common/logging.h"
#include "testing/api_stack.h"
#include "testing/status_matchers.h"

namespace discovery::api {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::StatusIs;
using ::testing::AllOf;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::SizeIs;
using Json = nlohmann::json;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

TEST(PeerTest, ParsesNetworks) {
  ASSERT_OK_AND_ASSIGN(std::vector<Cidr> networks, ParseCidrs("10.0.0.0/8, 192.168.1.7 ,fd00::/8"));
  ASSERT_EQ(networks.size(), 3U);
  EXPECT_TRUE(InNetworks("10.1.2.3", networks));
  EXPECT_TRUE(InNetworks("192.168.1.7", networks));
  EXPECT_FALSE(InNetworks("192.168.1.8", networks));
  EXPECT_TRUE(InNetworks("fd12::1", networks));
  EXPECT_FALSE(InNetworks("fe80::1", networks));
  EXPECT_FALSE(InNetworks("not-an-address", networks));
  EXPECT_THAT(ParseCidrs(""), IsOk());
  EXPECT_THAT(ParseCidr("10.0.0.0/33"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseCidr("example.com/8"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseCidr("10.0.0.0/"), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(Cidr everything, ParseCidr("0.0.0.0/0"));
  EXPECT_TRUE(InNetworks("203.0.113.9", {everything}));
  EXPECT_FALSE(InNetworks("2001:db8::1", {everything}));
}

TEST(PeerTest, ReadsTransportPeers) {
  EXPECT_EQ(PeerAddress("10.0.0.1:5000"), "10.0.0.1");
  EXPECT_EQ(PeerAddress("[2001:db8::1]:5000"), "2001:db8::1");
  EXPECT_EQ(PeerAddress("ipv4:127.0.0.1:41234"), "127.0.0.1");
  EXPECT_EQ(PeerAddress("ipv6:[::1]:41234"), "::1");
  EXPECT_EQ(PeerAddress("ipv6:%5B::1%5D:41234"), "::1");
  EXPECT_EQ(PeerAddress("2001:db8::2"), "2001:db8::2");
  EXPECT_EQ(PeerAddress("unix:/run/x.sock"), "");
  EXPECT_EQ(PeerAddress(""), "");
}

TEST(PeerTest, BelievesForwardedForOnlyFromTrustedProxies) {
  ASSERT_OK_AND_ASSIGN(std::vector<Cidr> trusted, ParseCidrs("10.0.0.0/8"));
  // Not a trusted peer: its header is anybody's claim.
  EXPECT_EQ(ClientAddress("198.51.100.7:4000", "203.0.113.1", trusted), "198.51.100.7");
  // A trusted load balancer: the client it appended.
  EXPECT_EQ(ClientAddress("10.0.0.5:4000", "203.0.113.1", trusted), "203.0.113.1");
  // A chain: the right-most untrusted entry; what the client wrote itself is ignored.
  EXPECT_EQ(ClientAddress("10.0.0.5:4000", "6.6.6.6, 203.0.113.1, 10.0.0.9", trusted),
            "203.0.113.1");
  // Only trusted entries: the left-most.
  EXPECT_EQ(ClientAddress("10.0.0.5:4000", "10.1.1.1, 10.0.0.9", trusted), "10.1.1.1");
  // Garbage stops the walk at the last address a trusted proxy vouched for.
  EXPECT_EQ(ClientAddress("10.0.0.5:4000", "203.0.113.1, bogus", trusted), "10.0.0.5");
  EXPECT_EQ(ClientAddress("10.0.0.5:4000", "", trusted), "10.0.0.5");
  EXPECT_EQ(ClientAddress("ipv6:[::1]:1", "203.0.113.1", {}), "::1");
}

TEST(AuditTest, KnowsTheChangingMethods) {
  EXPECT_EQ(ChangeOf("/postfinance.discovery.v1.ServiceAPI/UnRegisterService")->object, "service");
  EXPECT_EQ(ChangeOf("/postfinance.discovery.v1.TokenAPI/Create")->op, "create");
  EXPECT_FALSE(ChangeOf("/postfinance.discovery.v1.ServiceAPI/ListService").has_value());
  EXPECT_FALSE(ChangeOf("/postfinance.discovery.v1.TokenAPI/Info").has_value());
  EXPECT_FALSE(ChangeOf("/postfinance.discovery.v1.TokenAPI/Created").has_value());
  EXPECT_EQ(OutcomeOf(absl::StatusCode::kPermissionDenied), "denied");
  EXPECT_EQ(OutcomeOf(absl::StatusCode::kUnauthenticated), "unauthenticated");
}

class DispatcherAuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitLogging({.format = LogOptions::Format::kJson, .output = &log_});
    ASSERT_OK_AND_ASSIGN(stack_, testing::ApiStack::Create(
                                     {.admin_roles = {"admin"},
                                      .handlers = {.tokens = {.issuer = "iss", .secret = "secret"},
                                                   .clock = [] { return kNow; }}}));
    registry_ = &stack_->registry();
    handlers_ = &stack_->handlers();
    // Users: tokens of another issuer, resolved by this table instead of an OIDC provider.
    ASSERT_OK_AND_ASSIGN(alice_, auth::CreateMachineToken({.issuer = "idp", .secret = "x"}, "alice",
                                                          {}, absl::ZeroDuration(), kNow));
    ASSERT_OK_AND_ASSIGN(bob_, auth::CreateMachineToken({.issuer = "idp", .secret = "x"}, "bob", {},
                                                        absl::ZeroDuration(), kNow));
    ASSERT_OK_AND_ASSIGN(
        machine_, auth::CreateMachineToken({.issuer = "iss", .secret = "secret"}, "ci-42", {"team"},
                                           absl::ZeroDuration(), kNow));
    authenticator_ = std::make_unique<auth::Authenticator>(auth::AuthenticatorOptions{
        .issuer = "iss",
        .secret = "secret",
        .user_tokens = [this](std::string_view token) -> absl::StatusOr<auth::Principal> {
          if (token == alice_) {
            return auth::Principal{.name = "alice", .roles = {"admin"}};
          }
          if (token == bob_) {
            return auth::Principal{.name = "bob"};
          }
          return absl::UnauthenticatedError("personal token is not valid: oidc: test");
        },
        .revoked = [this](std::string_view id) { return registry_->IsTokenRevoked(id); },
        .clock = [] { return kNow; }});
    ASSERT_OK_AND_ASSIGN(std::vector<Cidr> trusted, ParseCidrs("10.0.0.0/8"));
    dispatcher_ = std::make_unique<Dispatcher>(
        *handlers_, *authenticator_,
        CallObserver{
            .changed =
                [this](std::string_view object, std::string_view op, std::string_view outcome) {
                  counted_.push_back(std::string(object) + "/" + std::string(op) + "/" +
                                     std::string(outcome));
                }},
        trusted);
  }
  void TearDown() override { InitLogging({}); }

  // The audit lines logged so far, parsed.
  std::vector<Json> AuditLines() const {
    std::vector<Json> lines;
    std::istringstream in(log_.str());
    for (std::string line; std::getline(in, line);) {
      Json record = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (record.is_object() && record.value("msg", "") == "audit") {
        lines.push_back(std::move(record));
      }
    }
    return lines;
  }

  static std::string Bearer(const std::string& token) { return "Bearer " + token; }

  template <typename Response, typename Request>
  absl::StatusOr<Response> Call(std::string_view service, std::string_view method,
                                const std::string& token, const Request& request,
                                Dispatcher::Method<Response, Request> handler,
                                std::string_view peer = "198.51.100.7:40000",
                                std::string_view forwarded_for = "") {
    const std::string full_method = std::string(service) + std::string(method);
    const std::string authorization = Bearer(token);
    return dispatcher_->Dispatch(
        full_method,
        CallerInfo{.authorization = authorization, .peer = peer, .forwarded_for = forwarded_for},
        request, handler);
  }

  std::ostringstream log_;
  std::unique_ptr<testing::ApiStack> stack_;
  registry::Registry* registry_ = nullptr;
  Handlers* handlers_ = nullptr;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::string alice_, bob_, machine_;
  std::vector<std::string> counted_;
};

TEST_F(DispatcherAuditTest, EveryKindOfChangeIsOneLine) {
  const size_t logged_at_start = log_.str().size();  // the stack's own start-up lines
  pb::RegisterNamespaceRequest ns;
  ns.set_name("team");
  ASSERT_THAT(Call(kNamespaceApi, "RegisterNamespace", alice_, ns, &Handlers::RegisterNamespace),
              IsOk());
  pb::RegisterServerRequest server;
  server.set_name("prom1");
  ASSERT_THAT(Call(kServerApi, "RegisterServer", alice_, server, &Handlers::RegisterServer),
              IsOk());
  pb::RegisterServiceRequest service;
  service.set_name("node");
  service.set_namespace_("team");
  service.set_endpoint("http://node1:9100/metrics");
  absl::StatusOr<pb::RegisterServiceResponse> registered =
      Call(kServiceApi, "RegisterService", machine_, service, &Handlers::RegisterService,
           "10.0.0.5:3333", "203.0.113.1");
  ASSERT_THAT(registered, IsOk());
  pb::UnRegisterServiceRequest unregister_service;
  unregister_service.set_namespace_("team");
  unregister_service.set_id(registered->service().id());
  ASSERT_THAT(Call(kServiceApi, "UnRegisterService", bob_, unregister_service,
                   &Handlers::UnRegisterService),
              IsOk());
  pb::CreateRequest create;
  create.set_id("robot");
  create.add_namespaces("team");
  ASSERT_THAT(Call(kTokenApi, "Create", alice_, create, &Handlers::Create), IsOk());
  pb::UnregisterServerRequest unregister_server;
  unregister_server.set_name("prom1");
  ASSERT_THAT(
      Call(kServerApi, "UnregisterServer", alice_, unregister_server, &Handlers::UnregisterServer),
      IsOk());
  pb::UnregisterNamespaceRequest unregister_ns;
  unregister_ns.set_name("team");
  ASSERT_THAT(Call(kNamespaceApi, "UnregisterNamespace", alice_, unregister_ns,
                   &Handlers::UnregisterNamespace),
              IsOk());
  // Reads are not audited.
  ASSERT_THAT(Call(kNamespaceApi, "ListNamespace", alice_, pb::ListNamespaceRequest{},
                   &Handlers::ListNamespace),
              IsOk());

  const std::vector<Json> lines = AuditLines();
  ASSERT_EQ(lines.size(), 7U) << log_.str();
  auto summary = [](const Json& line) {
    return line.value("object", "") + " " + line.value("op", "") + " by " +
           line.value("who_kind", "") + ":" + line.value("who", "") + " from " +
           line.value("peer", "") + " " + line.value("outcome", "");
  };
  EXPECT_EQ(summary(lines[0]), "namespace register by user:alice from 198.51.100.7 ok");
  EXPECT_EQ(lines[0]["name"], "team");
  EXPECT_EQ(lines[0]["level"], "info");
  EXPECT_EQ(summary(lines[1]), "server register by user:alice from 198.51.100.7 ok");
  EXPECT_EQ(lines[1]["name"], "prom1");
  // Through a trusted load balancer: the client it names.
  EXPECT_EQ(summary(lines[2]), "service register by machine:ci-42 from 203.0.113.1 ok");
  EXPECT_EQ(lines[2]["namespace"], "team");
  EXPECT_EQ(lines[2]["endpoint"], "http://node1:9100/metrics");
  EXPECT_EQ(lines[2]["id"], registered->service().id());
  EXPECT_EQ(lines[2]["servers"], "prom1");
  EXPECT_EQ(summary(lines[3]), "service unregister by user:bob from 198.51.100.7 ok");
  EXPECT_EQ(lines[3]["id"], registered->service().id());
  EXPECT_EQ(summary(lines[4]), "token create by user:alice from 198.51.100.7 ok");
  EXPECT_EQ(lines[4]["token_id"], "robot");
  EXPECT_EQ(lines[4]["namespaces"], "team");
  EXPECT_EQ(summary(lines[5]), "server unregister by user:alice from 198.51.100.7 ok");
  EXPECT_EQ(summary(lines[6]), "namespace unregister by user:alice from 198.51.100.7 ok");
  for (const Json& line : lines) {
    EXPECT_FALSE(line.contains("error")) << line.dump();
    EXPECT_EQ(line["code"], "OK");
  }
  // One line per change: the audit line is the change's only record at INFO.
  std::vector<std::string> info_lines;
  std::istringstream in(log_.str().substr(logged_at_start));
  for (std::string line; std::getline(in, line);) {
    const Json record = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_object() && record.value("level", "") == "info") {
      info_lines.push_back(record.value("msg", ""));
    }
  }
  EXPECT_THAT(info_lines, AllOf(SizeIs(lines.size()), Each(Eq("audit"))));
  EXPECT_THAT(counted_,
              ElementsAre("namespace/register/ok", "server/register/ok", "service/register/ok",
                          "service/unregister/ok", "token/create/ok", "server/unregister/ok",
                          "namespace/unregister/ok"));
}

TEST_F(DispatcherAuditTest, RefusedChangesAreLoggedToo) {
  pb::RegisterServerRequest server;
  server.set_name("prom2");
  // A verified user without the role.
  EXPECT_THAT(Call(kServerApi, "RegisterServer", bob_, server, &Handlers::RegisterServer),
              StatusIs(absl::StatusCode::kPermissionDenied));
  // No valid credentials; the header an untrusted peer sends is not believed.
  EXPECT_THAT(Call(kServerApi, "RegisterServer", "forged", server, &Handlers::RegisterServer,
                   "198.51.100.9:1", "10.9.9.9"),
              StatusIs(absl::StatusCode::kUnauthenticated));
  // A machine token outside its namespaces.
  pb::UnRegisterServiceRequest unregister;
  unregister.set_namespace_("other");
  unregister.set_id("x");
  EXPECT_THAT(
      Call(kServiceApi, "UnRegisterService", machine_, unregister, &Handlers::UnRegisterService),
      StatusIs(absl::StatusCode::kPermissionDenied));
  // Refused before running (overload).
  dispatcher_->Refused(std::string(kTokenApi) + "Create",
                       absl::UnavailableError("the server is overloaded"), "ipv4:10.0.0.7:9");

  const std::vector<Json> lines = AuditLines();
  ASSERT_EQ(lines.size(), 4U) << log_.str();
  EXPECT_EQ(lines[0]["who"], "bob");
  EXPECT_EQ(lines[0]["outcome"], "denied");
  EXPECT_EQ(lines[0]["code"], "PermissionDenied");
  EXPECT_EQ(lines[0]["name"], "prom2");
  EXPECT_EQ(lines[0]["level"], "info");
  EXPECT_EQ(lines[1]["who_kind"], "none");
  EXPECT_EQ(lines[1]["who"], "");
  EXPECT_EQ(lines[1]["outcome"], "unauthenticated");
  EXPECT_EQ(lines[1]["peer"], "198.51.100.9");
  EXPECT_EQ(lines[1]["name"], "prom2");
  EXPECT_EQ(lines[2]["who_kind"], "machine");
  EXPECT_EQ(lines[2]["who"], "ci-42");
  EXPECT_EQ(lines[2]["outcome"], "denied");
  EXPECT_EQ(lines[2]["namespace"], "other");
  EXPECT_EQ(lines[3]["object"], "token");
  EXPECT_EQ(lines[3]["outcome"], "unavailable");
  EXPECT_EQ(lines[3]["peer"], "10.0.0.7");
  for (const Json& line : lines) {
    EXPECT_TRUE(line.contains("error")) << line.dump();
    // No credentials in the trail.
    EXPECT_EQ(line.dump().find(machine_), std::string::npos);
    EXPECT_EQ(line.dump().find(bob_), std::string::npos);
  }
  EXPECT_THAT(counted_, ElementsAre("server/register/denied", "server/register/unauthenticated",
                                    "service/unregister/denied", "token/create/unavailable"));
}

// Revocation through the API: admins only, audited, and the token is refused from then on.
TEST_F(DispatcherAuditTest, RevokedMachineTokensAreRefused) {
  pb::ListNamespaceRequest list;
  ASSERT_THAT(Call(kNamespaceApi, "ListNamespace", machine_, list, &Handlers::ListNamespace),
              IsOk());
  pb::RevokeRequest revoke;
  revoke.set_id("ci-42");
  EXPECT_THAT(Call(kTokenApi, "Revoke", bob_, revoke, &Handlers::Revoke),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(Call(kTokenApi, "Revoke", machine_, revoke, &Handlers::Revoke),
              StatusIs(absl::StatusCode::kPermissionDenied));
  absl::StatusOr<pb::RevokeResponse> revoked =
      Call(kTokenApi, "Revoke", alice_, revoke, &Handlers::Revoke);
  ASSERT_THAT(revoked, IsOk());
  EXPECT_EQ(revoked->revoked().id(), "ci-42");
  EXPECT_EQ(revoked->revoked().revoked_by(), "user:alice");
  EXPECT_THAT(Call(kNamespaceApi, "ListNamespace", machine_, list, &Handlers::ListNamespace),
              StatusIs(absl::StatusCode::kUnauthenticated));
  absl::StatusOr<pb::ListRevokedResponse> listed =
      Call(kTokenApi, "ListRevoked", alice_, pb::ListRevokedRequest{}, &Handlers::ListRevoked);
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->revoked_size(), 1);
  EXPECT_EQ(listed->revoked(0).id(), "ci-42");
  EXPECT_THAT(
      Call(kTokenApi, "ListRevoked", bob_, pb::ListRevokedRequest{}, &Handlers::ListRevoked),
      StatusIs(absl::StatusCode::kPermissionDenied));

  const std::vector<Json> lines = AuditLines();
  ASSERT_EQ(lines.size(), 3U) << log_.str();
  EXPECT_EQ(lines[2]["object"], "token");
  EXPECT_EQ(lines[2]["op"], "revoke");
  EXPECT_EQ(lines[2]["token_id"], "ci-42");
  EXPECT_EQ(lines[2]["who"], "alice");
  EXPECT_EQ(lines[2]["outcome"], "ok");
  EXPECT_EQ(lines[0]["outcome"], "denied");
}

}  // namespace
}  // namespace discovery::api
