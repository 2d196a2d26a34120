// Migrating from the Go original (docs/decisions.md D26, D27, D39): a real etcd holding a store
// written in the Go original's layout (keys <prefix>/{namespace,server}/v1/<name> and
// <prefix>/service/v1/<ns>/<id>, Go encoding/json documents, times in a local zone offset, the
// `servers` the original stored with each service), read by the real discoveryd
// (DISCOVERYD_BINARY).
//
// The records are those of the original's own tests (registry_test.go's fleet and services,
// service_test.go's endpoints, the exporter test's blackbox service, the README's records in
// src/repo/testdata) plus a batch written the way its code writes them: `servers` computed as
// the original does (CRC-64/XZ, jump hash over the name-sorted non-leaving candidates, R
// consecutive, sorted). The helper doing that here is checked against the placements the
// original's registry test expects.
//
// With --placement jump and the same --replicas every service's http_sd placement equals the
// stored `servers`; with rendezvous every target is served exactly once per replica among its
// candidates. A server the original accepted but this project refuses to register (a name like
// "host:9090") is listed, answered on http_sd and removable, and its services move.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "hash/crc64.h"
#include "hash/jump_hash.h"
#include "model/model.h"
#include "store/etcd/etcd_store.h"
#include "store/store.h"
#include "testing/discoveryd_process.h"
#include "testing/etcd_harness.h"
#include "testing/eventually.h"
#include "testing/http_client.h"
#include "testing/process.h"
#include "testing/status_matchers.h"

#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif
#ifndef DISCOVERY_SOURCE_DIR
#error "DISCOVERY_SOURCE_DIR must name the source tree"
#endif

namespace discovery::testing {
namespace {

using Json = ::nlohmann::json;
using OrderedJson = ::nlohmann::ordered_json;
using ::testing::Contains;
using ::testing::Not;

// The original's ServerState numbers.
constexpr int kLeaving = 0;
constexpr int kJoining = 1;
constexpr int kActive = 2;

struct GoServer {
  std::string name;
  std::map<std::string, std::string> labels;
  int state = kActive;
};

// A selector of the fixtures and which labels it matches (Kubernetes semantics, written out).
struct GoSelector {
  std::string text;
  std::function<bool(const std::map<std::string, std::string>&)> matches;
};

std::string Label(const std::map<std::string, std::string>& labels, const std::string& key) {
  auto it = labels.find(key);
  return it == labels.end() ? "" : it->second;
}

const std::vector<GoSelector>& Selectors() {
  static const auto* const selectors = new std::vector<GoSelector>{
      {"", [](const auto&) { return true; }},
      {"env=prod", [](const auto& l) { return Label(l, "env") == "prod"; }},
      {"env=test", [](const auto& l) { return Label(l, "env") == "test"; }},
      {"environment=test", [](const auto& l) { return Label(l, "environment") == "test"; }},
      {"env in (prod,test)",
       [](const auto& l) { return Label(l, "env") == "prod" || Label(l, "env") == "test"; }},
      // != also matches servers without the label.
      {"env!=test", [](const auto& l) { return Label(l, "env") != "test"; }},
  };
  return *selectors;
}

const GoSelector& SelectorOf(const std::string& text) {
  for (const GoSelector& selector : Selectors()) {
    if (selector.text == text) {
      return selector;
    }
  }
  ADD_FAILURE() << "no fixture selector " << text;
  return Selectors().front();
}

// The original's candidates (docs/decisions.md D27): matching servers that are not leaving, sorted
// by name.
std::vector<std::string> GoCandidates(const std::vector<GoServer>& servers,
                                      const std::string& selector) {
  std::vector<std::string> names;
  for (const GoServer& server : servers) {
    if (server.state != kLeaving && SelectorOf(selector).matches(server.labels)) {
      names.push_back(server.name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The `servers` the original stores (docs/decisions.md D27): a start index from the jump hash of
// the endpoint's CRC-64/XZ over the candidates, then `replicas` consecutive ones (wrapping),
// sorted.
std::vector<std::string> GoServers(const std::string& endpoint,
                                   const std::vector<std::string>& candidates, int replicas) {
  const size_t n = candidates.size();
  const size_t r = std::min(static_cast<size_t>(replicas), n);
  std::vector<std::string> chosen;
  if (n == 0) {
    return chosen;
  }
  const auto start =
      static_cast<size_t>(hash::JumpHash(hash::Crc64Xz(endpoint), static_cast<int32_t>(n)));
  for (size_t i = 0; i < r; ++i) {
    chosen.push_back(candidates[(start + i) % n]);
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

// Go's encoding/json of a server document (labels null when empty).
std::string GoServerDocument(const GoServer& server, const std::string& modified) {
  OrderedJson document;
  document["name"] = server.name;
  document["labels"] = server.labels.empty() ? OrderedJson() : OrderedJson(server.labels);
  document["state"] = server.state;
  document["modified"] = modified;
  return document.dump();
}

struct GoService {
  std::string name;
  std::string namespace_name;
  std::string endpoint;  // canonical
  std::string selector;
  std::map<std::string, std::string> labels;
  std::string description;
  std::vector<std::string> servers;  // as the original stored them
  std::string document;              // verbatim, when taken from a fixture file
};

// Go's encoding/json of a service document: fields in struct order, empty ones omitted except
// `modified`.
std::string GoServiceDocument(const GoService& service, const std::string& modified) {
  OrderedJson document;
  document["id"] = ServiceId(service.endpoint);
  document["name"] = service.name;
  document["namespace"] = service.namespace_name;
  document["endpoint"] = service.endpoint;
  if (!service.labels.empty()) {
    document["labels"] = service.labels;
  }
  if (!service.servers.empty()) {
    document["servers"] = service.servers;
  }
  if (!service.selector.empty()) {
    document["selector"] = service.selector;
  }
  if (!service.description.empty()) {
    document["description"] = service.description;
  }
  document["modified"] = modified;
  return document.dump();
}

std::string ReadSource(const std::string& relative) {
  std::ifstream in(std::string(DISCOVERY_SOURCE_DIR) + "/" + relative);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// A Go time as the original wrote it: RFC 3339 with trimmed nanoseconds, local zone offset.
std::string GoTime(int i) {
  return fmt::format("2021-03-{:02}T{:02}:{:02}:{:02}.{}+01:00", 1 + i % 28, i % 24, i % 60,
                     (i * 7) % 60, 1 + i % 9);
}

class MigrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(etcd_, SharedEtcdCluster());
    std::random_device random;
    std::uniform_int_distribution<int> letter(0, 25);
    prefix_ = "/migration-";  // the original's prefix rule: ^/[a-z-]+$
    for (int i = 0; i < 12; ++i) {
      prefix_ += static_cast<char>('a' + letter(random));
    }
    ASSERT_OK_AND_ASSIGN(store_, store::ConnectEtcdStore({.endpoints = etcd_->endpoints()}));
  }

  void TearDown() override {
    discoveryd_.reset();
    store_.reset();
  }

  void Put(const std::string& relative_key, const std::string& document) {
    ASSERT_THAT(store::Put(*store_, prefix_ + "/" + relative_key, document), IsOk());
  }
  void PutServer(const GoServer& server, int i) {
    Put("server/v1/" + server.name, GoServerDocument(server, GoTime(i)));
  }
  void PutService(const GoService& service, int i) {
    Put(fmt::format("service/v1/{}/{}", service.namespace_name, ServiceId(service.endpoint)),
        service.document.empty() ? GoServiceDocument(service, GoTime(i)) : service.document);
  }

  void StartDiscoveryd(const std::string& placement, int replicas) {
    discoveryd_.reset();
    DiscoverydOptions options{.binary = DISCOVERYD_BINARY};
    options.extra_args = {"--store=etcd", "--etcd-endpoints=" + etcd_->EndpointList(),
                          "--etcd-prefix=" + prefix_, "--placement=" + placement,
                          fmt::format("--replicas={}", replicas)};
    ASSERT_OK_AND_ASSIGN(discoveryd_, DiscoverydProcess::Start(options));
    ASSERT_OK_AND_ASSIGN(token_, discoveryd_->AdminToken());
  }

  absl::StatusOr<HttpResult> Rest(const std::string& method, const std::string& path) const {
    return HttpRequest(method, discoveryd_->http_url() + path, "",
                       {{"Authorization", "Bearer " + token_}});
  }
  Json RestJson(const std::string& path) const {
    absl::StatusOr<HttpResult> result = Rest("GET", path);
    EXPECT_THAT(result, IsOk());
    if (!result.ok()) {
      return {};
    }
    EXPECT_EQ(result->status, 200) << path << ": " << result->body;
    return Json::parse(result->body, nullptr, /*allow_exceptions=*/false);
  }

  // (namespace, endpoint) -> the servers whose http_sd (blackbox: the target is the endpoint)
  // lists it.
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> Served(
      const std::vector<std::string>& servers, const std::vector<std::string>& namespaces) const {
    std::map<std::pair<std::string, std::string>, std::vector<std::string>> served;
    for (const std::string& server : servers) {
      for (const std::string& ns : namespaces) {
        const Json groups = RestJson(fmt::format("/v1/sd/{}/{}?config=blackbox", server, ns));
        for (const Json& group : groups) {
          for (const Json& target : group.value("targets", Json::array())) {
            served[{ns, target.get<std::string>()}].push_back(server);
          }
        }
      }
    }
    for (auto& [key, names] : served) {
      std::sort(names.begin(), names.end());
    }
    return served;
  }

  EtcdCluster* etcd_ = nullptr;
  std::string prefix_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<DiscoverydProcess> discoveryd_;
  std::string token_;
};

TEST_F(MigrationTest, JumpKeepsTheStoredPlacementAndRendezvousServesEveryTargetOncePerReplica) {
  constexpr int kReplicas = 2;
  // registry_test.go's fleet (server1-3 env=prod, server4 env=test; server5 env=prod joined
  // later), a server stuck `joining` or `leaving` (docs/decisions.md D5), and the README's servers
  // as the original wrote them (src/repo/testdata).
  const std::vector<GoServer> servers = {
      {"server1", {{"env", "prod"}}, kActive},
      {"server2", {{"env", "prod"}}, kActive},
      {"server3", {{"env", "prod"}}, kActive},
      {"server4", {{"env", "test"}}, kActive},
      {"server5", {{"env", "prod"}}, kJoining},
      {"server6", {{"env", "prod"}}, kLeaving},
      {"prometheus1.example.com", {{"environment", "test"}}, kActive},
      {"prometheus2.example.com", {}, kJoining},
  };
  std::vector<std::string> server_names;
  for (size_t i = 0; i < servers.size(); ++i) {
    server_names.push_back(servers[i].name);
    if (servers[i].name.starts_with("prometheus")) {
      continue;  // written verbatim below
    }
    PutServer(servers[i], static_cast<int>(i));
  }
  Put("server/v1/prometheus1.example.com", ReadSource("src/repo/testdata/go_server_active.json"));
  Put("server/v1/prometheus2.example.com", ReadSource("src/repo/testdata/go_server_nolabels.json"));
  Put("namespace/v1/default", ReadSource("src/repo/testdata/go_namespace_default.json"));
  Put("namespace/v1/default-blackbox", ReadSource("src/repo/testdata/go_namespace_blackbox.json"));
  Put("namespace/v1/appl-blackbox",
      R"({"name":"appl-blackbox","export":2,"modified":"2021-02-05T09:00:18.5+01:00"})");
  const std::vector<std::string> namespaces = {"default", "default-blackbox", "appl-blackbox"};

  std::vector<GoService> services = {
      // registry_test.go
      {.name = "prod",
       .namespace_name = "default",
       .endpoint = "http://p.example.com/metrics",
       .selector = "env=prod"},
      {.name = "test",
       .namespace_name = "default",
       .endpoint = "http://t.example.com/metrics",
       .selector = "env=test"},
      // service_test.go (NewService, TestKey)
      {.name = "valid_url",
       .namespace_name = "default",
       .endpoint = "http://example.com/metrics?query=value"},
      {.name = "valid_url_with_port",
       .namespace_name = "default",
       .endpoint = "http://example.com:9999/metrics",
       .selector = "env in (prod,test)"},
      {.name = "key",
       .namespace_name = "default",
       .endpoint = "https://www.test.com:7002/metrics",
       .selector = "env!=test"},
      {.name = "key",
       .namespace_name = "default",
       .endpoint = "http://www.test.com/metrics",
       .selector = "env=prod"},
      // exporter_test.go's blackbox service
      {.name = "blackbox",
       .namespace_name = "appl-blackbox",
       .endpoint = "https://blackbox1.pnet.ch",
       .selector = "env=prod"},
      // The README's records, verbatim (src/repo/testdata).
      {.name = "example",
       .namespace_name = "default",
       .endpoint = "http://example.com/metrics",
       .selector = "environment=test",
       .document = ReadSource("src/repo/testdata/go_service_full.json")},
      {.name = "blackbox",
       .namespace_name = "default-blackbox",
       .endpoint = "http://blackbox.example.com",
       .selector = "environment=test",
       .document = ReadSource("src/repo/testdata/go_service_minimal.json")},
  };
  // A fleet registered the way the original's code writes it.
  for (int i = 0; i < 60; ++i) {
    GoService service;
    service.name = fmt::format("job{}", i % 7);
    service.namespace_name = namespaces[i % 3 == 2 ? 2 : 0];
    service.endpoint = i % 2 == 0 ? fmt::format("http://node-{}.example.com:9100/metrics", i)
                                  : fmt::format("https://10.0.{}.1:8443/probe?module=http_2xx", i);
    service.selector = Selectors()[i % Selectors().size()].text;
    if (i % 4 != 0) {
      service.labels = {{"team", fmt::format("t{}", i % 4)}};
    }
    if (i % 5 == 0) {
      service.description = "node <exporter> & more";
    }
    services.push_back(std::move(service));
  }
  for (size_t i = 0; i < services.size(); ++i) {
    GoService& service = services[i];
    service.servers =
        GoServers(service.endpoint, GoCandidates(servers, service.selector), kReplicas);
    if (!service.document.empty()) {
      // The fixture's own `servers` is what the original computed for this fleet.
      EXPECT_EQ(Json::parse(service.document)["servers"].get<std::vector<std::string>>(),
                service.servers)
          << service.endpoint;
    }
    PutService(service, static_cast<int>(i));
  }
  // The helper places as the original: registry_test.go expects these with replicas 2.
  EXPECT_EQ(services[0].servers, (std::vector<std::string>{"server2", "server3"}));
  EXPECT_EQ(services[1].servers, (std::vector<std::string>{"server4"}));

  // --placement jump with the same --replicas: http_sd places every service on exactly the
  // servers the original stored.
  StartDiscoveryd("jump", kReplicas);
  const Json listed = RestJson("/v1/services");
  EXPECT_EQ(listed["services"].size(), services.size()) << listed.dump();
  EXPECT_TRUE(listed.value("invalidServices", Json::array()).empty()) << listed.dump();
  EXPECT_EQ(RestJson("/v1/servers")["servers"].size(), servers.size());
  auto served = Served(server_names, namespaces);
  size_t moved = 0;
  for (const GoService& service : services) {
    EXPECT_EQ(served[std::make_pair(service.namespace_name, service.endpoint)], service.servers)
        << service.namespace_name << " " << service.endpoint << " selector '" << service.selector
        << "'\n"
        << discoveryd_->LogTail();
  }
  EXPECT_EQ(served.size(), services.size());

  // --placement rendezvous: a one-time reshuffle, but every target is still served by exactly
  // `replicas` distinct servers among its candidates (or all of them when fewer).
  ASSERT_THAT(discoveryd_->Stop(), IsOk());
  StartDiscoveryd("rendezvous", kReplicas);
  served = Served(server_names, namespaces);
  for (const GoService& service : services) {
    const std::vector<std::string> candidates = GoCandidates(servers, service.selector);
    const std::vector<std::string>& on =
        served[std::make_pair(service.namespace_name, service.endpoint)];
    EXPECT_EQ(on.size(), std::min<size_t>(kReplicas, candidates.size())) << service.endpoint;
    EXPECT_EQ(std::set<std::string>(on.begin(), on.end()).size(), on.size()) << service.endpoint;
    for (const std::string& server : on) {
      EXPECT_THAT(candidates, Contains(server)) << service.endpoint;
    }
    if (on != service.servers) {
      ++moved;
    }
  }
  EXPECT_EQ(served.size(), services.size());
  // The cost of the reshuffle, for the README's migration table.
  std::cout << "rendezvous moved " << moved << " of " << services.size()
            << " services off the servers the original stored\n";

  // Back to jump: the original's placement again, nothing of it was lost.
  ASSERT_THAT(discoveryd_->Stop(), IsOk());
  StartDiscoveryd("jump", kReplicas);
  served = Served(server_names, namespaces);
  for (const GoService& service : services) {
    EXPECT_EQ(served[std::make_pair(service.namespace_name, service.endpoint)], service.servers)
        << service.endpoint;
  }
}

// Item 3: the original registered servers under any non-empty name; one named like "host:9090"
// (this project refuses ':' when registering) stays manageable.
TEST_F(MigrationTest, ServerNamedLikeHostPortIsListedServedAndRemovable) {
  constexpr const char* kOdd = "host:9090";
  constexpr const char* kOther = "edge.example.com";
  const std::vector<GoServer> servers = {{kOdd, {{"env", "prod"}}, kActive},
                                         {kOther, {{"env", "prod"}}, kActive}};
  for (size_t i = 0; i < servers.size(); ++i) {
    PutServer(servers[i], static_cast<int>(i));
  }
  Put("namespace/v1/default", ReadSource("src/repo/testdata/go_namespace_default.json"));
  std::set<std::string> all;
  std::set<std::string> on_odd;
  for (int i = 0; i < 12; ++i) {
    GoService service{.name = "node",
                      .namespace_name = "default",
                      .endpoint = fmt::format("http://edge-{}.example.com:9100/metrics", i),
                      .selector = "env=prod"};
    service.servers = GoServers(service.endpoint, GoCandidates(servers, service.selector), 1);
    all.insert(service.endpoint);
    if (service.servers == std::vector<std::string>{kOdd}) {
      on_odd.insert(service.endpoint);
    }
    PutService(service, i);
  }
  ASSERT_FALSE(on_odd.empty());
  ASSERT_NE(on_odd.size(), all.size());

  StartDiscoveryd("jump", 1);
  // Listed.
  std::vector<std::string> listed;
  const Json before = RestJson("/v1/servers");
  for (const Json& server : before["servers"]) {
    listed.push_back(server["name"].get<std::string>());
  }
  EXPECT_THAT(listed, Contains(kOdd));
  // Answered on http_sd with the services the original placed on it.
  auto targets = [&](const std::string& server) {
    std::set<std::string> found;
    for (const Json& group : RestJson(fmt::format("/v1/sd/{}/default?config=blackbox", server))) {
      for (const Json& target : group["targets"]) {
        found.insert(target.get<std::string>());
      }
    }
    return found;
  };
  EXPECT_EQ(targets(kOdd), on_odd) << discoveryd_->LogTail();
  // Removable; its services move to the other server.
  ASSERT_OK_AND_ASSIGN(HttpResult removed, Rest("DELETE", fmt::format("/v1/servers/{}", kOdd)));
  EXPECT_EQ(removed.status, 200) << removed.body;
  listed.clear();
  const Json after = RestJson("/v1/servers");
  for (const Json& server : after["servers"]) {
    listed.push_back(server["name"].get<std::string>());
  }
  EXPECT_THAT(listed, Not(Contains(kOdd)));
  EXPECT_EQ(targets(kOther), all);
  EXPECT_TRUE(targets(kOdd).empty());
}

// Item 4: --etcd-auto-sync-interval keeps the member list as the original's client did. Two
// discoveryd are given only member 0 of a 3-member cluster, one syncing every second and one
// with syncing off; after member 0 is stopped the first keeps writing and reading through the
// members it learned, the second cannot write.
TEST(EtcdAutoSyncTest, LearnsTheMembersAndOutlivesTheOneItWasGiven) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EtcdCluster> etcd, EtcdCluster::Start({.members = 3}));
  auto start = [&](const std::string& interval) {
    DiscoverydOptions options{.binary = DISCOVERYD_BINARY};
    options.extra_args = {"--store=etcd", "--etcd-endpoints=" + etcd->endpoints()[0],
                          "--etcd-auto-sync-interval=" + interval, "--etcd-request-timeout=3s"};
    return DiscoverydProcess::Start(options);
  };
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DiscoverydProcess> syncing, start("1s"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DiscoverydProcess> fixed, start("0s"));
  ASSERT_OK_AND_ASSIGN(const std::string token, syncing->AdminToken());
  auto rest = [&](const DiscoverydProcess& discoveryd, const std::string& method,
                  const std::string& path, const std::string& body) {
    return HttpRequest(method, discoveryd.http_url() + path, body,
                       {{"Authorization", "Bearer " + token}});
  };
  // The syncing one logs the endpoints it learned: every member's address.
  auto learned_all = [&] {
    const std::string log = syncing->LogTail(400);
    const std::vector<std::string>& endpoints = etcd->endpoints();
    return std::all_of(endpoints.begin(), endpoints.end(), [&log](const std::string& endpoint) {
      const std::string address = endpoint.substr(endpoint.find("://") + 3);
      return log.find("etcd endpoints from the member list") != std::string::npos &&
             log.find(address) != std::string::npos;
    });
  };
  ASSERT_TRUE(Eventually(learned_all, absl::Seconds(30))) << syncing->LogTail();
  EXPECT_EQ(fixed->LogTail(400).find("etcd endpoints from the member list"), std::string::npos);

  ASSERT_THAT(etcd->Stop(0), IsOk());
  ASSERT_THAT(etcd->WaitForLeader(absl::Seconds(30)), IsOk());

  // Writes and reads go on through members 1 and 2 (a call in flight while member 0 went away
  // may fail once; the client retries it).
  int attempts = 0;
  EXPECT_TRUE(Eventually(
      [&] {
        ++attempts;
        absl::StatusOr<HttpResult> result =
            rest(*syncing, "POST", "/v1/servers", R"({"name":"after-stop"})");
        return result.ok() && result->status == 200;
      },
      absl::Seconds(60)))
      << syncing->LogTail();
  EXPECT_TRUE(Eventually(
      [&] {
        absl::StatusOr<HttpResult> result = rest(*syncing, "GET", "/v1/servers", "");
        return result.ok() && result->status == 200 &&
               result->body.find("after-stop") != std::string::npos;
      },
      absl::Seconds(30)));
  absl::StatusOr<HttpResult> ready = HttpGet(syncing->http_url() + "/readyz");
  ASSERT_THAT(ready, IsOk());
  EXPECT_EQ(ready->status, 200) << ready->body;
  std::cout << "writes through the learned members after " << attempts << " attempt(s)\n";

  // Without syncing the only endpoint is gone: the write is refused (503/504), not lost.
  absl::StatusOr<HttpResult> refused =
      rest(*fixed, "POST", "/v1/servers", R"({"name":"fixed-after-stop"})");
  ASSERT_THAT(refused, IsOk());
  EXPECT_THAT(refused->status, ::testing::AnyOf(503, 504)) << refused->body;
}

// The store flag: the original always used etcd, at localhost:2379 unless told otherwise. Here
// the embedded store is the default; --store=etcd without endpoints still means localhost:2379.
TEST(StoreFlagTest, EmbeddedByDefaultAndEtcdAtLocalhost2379) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DiscoverydProcess> embedded,
                       DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY}));
  EXPECT_TRUE(std::filesystem::exists(embedded->data_dir() + "/discovery.db"));
  embedded.reset();

  // Only meaningful where nothing serves localhost:2379 (a developer's etcd would answer).
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(2379);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool listening = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  if (listening) {
    GTEST_SKIP() << "something listens on localhost:2379";
  }
  ASSERT_OK_AND_ASSIGN(const std::string dir, MakeTempDir("store-flag"));
  ASSERT_OK_AND_ASSIGN(
      CommandResult result,
      RunCommand(
          {.argv = {DISCOVERYD_BINARY, "--store=etcd", "--etcd-dial-timeout=1s", "server",
                    "--token-secret=x", "--grpc-listen=127.0.0.1:0", "--http-listen=127.0.0.1:0"},
           .env = {"HOME=" + dir},
           .working_dir = dir},
          absl::Seconds(60), /*merge_stderr=*/true));
  std::filesystem::remove_all(dir);
  EXPECT_FALSE(result.status.success()) << result.out;
  EXPECT_THAT(result.out, ::testing::HasSubstr("localhost:2379"));
}

// README's "Prometheus and node_exporter" prints the example files the end-to-end tests load
// (prometheus_http_sd_test, cli_e2e_test SystemdRecipe) verbatim, so the two cannot drift.
TEST(ReadmeTest, PrintsTheTestedExamplesVerbatim) {
  const std::string readme = ReadSource("README.md");
  for (const std::string file :
       {"prometheus-http-sd.yml", "node_exporter.service", "node_exporter.default"}) {
    const std::string example = ReadSource("packaging/examples/" + file);
    ASSERT_FALSE(example.empty()) << file;
    EXPECT_NE(readme.find("\n" + example + "```\n"), std::string::npos)
        << "README.md does not show packaging/examples/" << file << ":\n"
        << example;
  }
}

}  // namespace
}  // namespace discovery::testing
