// End-to-end tests of docs/decisions.md D44, through the real `discovery` (DISCOVERY_BINARY) and
// `discoveryd` (DISCOVERYD_BINARY): what an operator used to kubectl, consul and etcdctl expects of
// them. Safe destructive commands, a taken port refused, errors on one line with what to do and the
// documented exit codes (2 for usage errors, 1 for every other failure).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "testing/discoveryd_process.h"
#include "testing/http_client.h"
#include "testing/process.h"
#include "testing/status_matchers.h"

#ifndef DISCOVERY_BINARY
#error "DISCOVERY_BINARY must name the discovery executable"
#endif
#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif

namespace discovery::testing {
namespace {

using ::testing::AllOf;
using ::testing::AnyOf;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path) << content;
}

// The last line of `text` without its newline.
std::string LastLine(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  return lines.empty() ? "" : lines.back();
}

class CliOperatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(discoveryd_, DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY}));
    ASSERT_OK_AND_ASSIGN(home_, MakeTempDir("discovery-operator-home"));
    ASSERT_OK_AND_ASSIGN(admin_token_, discoveryd_->AdminToken());
    ASSERT_THAT(
        RunCommand({.argv = {"/bin/mkdir", "-p", home_ + "/.config/discovery"}}, absl::Seconds(5)),
        IsOk());
    WriteFile(ConfigPath(),
              fmt::format("address: {}\ninsecure: true\n", discoveryd_->grpc_address()));
    WriteFile(TokenPath(), "machine_token: " + admin_token_ + "\n");
  }

  void TearDown() override {
    RunCommand({.argv = {"/bin/rm", "-rf", home_}}, absl::Seconds(10)).IgnoreError();
  }

  std::string ConfigPath() const { return home_ + "/.config/discovery/config.yaml"; }
  std::string TokenPath() const { return home_ + "/.config/discovery/.token"; }

  // This test's home (config and token file), no DISCOVERY_* variable of the developer's, `env`.
  std::vector<std::string> Environment(const std::vector<std::string>& env) const {
    std::vector<std::string> result = {"HOME=" + home_, "TMPDIR=" + home_};
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry(*e);
      if (entry.starts_with("DISCOVERY_")) {
        result.emplace_back(entry.substr(0, entry.find('=')));
      }
    }
    result.insert(result.end(), env.begin(), env.end());
    return result;
  }

  CommandResult Run(const char* binary, std::vector<std::string> args,
                    const std::vector<std::string>& env = {}) {
    args.insert(args.begin(), binary);
    absl::StatusOr<CommandResult> result =
        RunCommand({.argv = std::move(args), .env = Environment(env), .working_dir = home_},
                   absl::Seconds(90));
    EXPECT_THAT(result, IsOk());
    return result.ok() ? *std::move(result) : CommandResult{};
  }
  CommandResult Discovery(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    return Run(DISCOVERY_BINARY, std::move(args), env);
  }
  CommandResult Discoveryd(std::vector<std::string> args,
                           const std::vector<std::string>& env = {}) {
    return Run(DISCOVERYD_BINARY, std::move(args), env);
  }

  std::unique_ptr<DiscoverydProcess> discoveryd_;
  std::string home_;
  std::string admin_token_;
};

// Expects `result` to have failed with exit code `code` and exactly the line `message` on stderr.
void ExpectFailure(const CommandResult& result, int code, const std::string& message) {
  EXPECT_EQ(result.status.code, code) << result.status.ToString() << "\n" << result.err;
  EXPECT_EQ(result.err, message + "\n");
  EXPECT_THAT(result.out, IsEmpty());
}

// Point 1: `default` is never deleted, a namespace with services only with --force.
TEST_F(CliOperatorTest, NamespaceUnregisterRefusesDefaultAndNeedsForceForServices) {
  ASSERT_TRUE(Discovery({"server", "register", "prom"}).status.success());
  ASSERT_TRUE(
      Discovery({"service", "register", "node", "-e", "http://a:9100/metrics"}).status.success());
  ExpectFailure(Discovery({"namespace", "unregister", "default"}), 1,
                "discovery: refusing to unregister namespace default: services registered "
                "without --namespace go there");
  ExpectFailure(Discovery({"namespace", "unregister", "--force", "default"}), 1,
                "discovery: refusing to unregister namespace default: services registered "
                "without --namespace go there");
  EXPECT_THAT(Discovery({"service", "list", "--no-headers"}).out, HasSubstr("http://a:9100"));

  ASSERT_TRUE(Discovery({"namespace", "register", "web"}).status.success());
  ASSERT_TRUE(Discovery({"service", "register", "shop", "-n", "web", "-e",
                         "http://shop1/metrics,http://shop2/metrics"})
                  .status.success());
  ExpectFailure(Discovery({"namespace", "unregister", "web"}), 1,
                "discovery: namespace web still holds 2 services; unregister them first, or pass "
                "--force to unregister the namespace with all of them");
  EXPECT_THAT(Discovery({"namespace", "list"}).out, HasSubstr("web"));
  CommandResult result = Discovery({"namespace", "unregister", "web", "--force"});
  EXPECT_TRUE(result.status.success()) << result.err;
  EXPECT_THAT(result.err, AllOf(HasSubstr("namespace unregistered"), HasSubstr("2")));
  EXPECT_THAT(Discovery({"namespace", "list"}).out, Not(HasSubstr("web")));
  EXPECT_THAT(Discovery({"service", "list", "--no-headers"}).out, Not(HasSubstr("shop")));

  // An empty namespace goes without --force.
  ASSERT_TRUE(Discovery({"namespace", "register", "empty"}).status.success());
  result = Discovery({"namespace", "unregister", "empty"});
  EXPECT_TRUE(result.status.success()) << result.err;
  ExpectFailure(Discovery({"namespace", "unregister", "empty"}), 1,
                "discovery: cannot unregister namespace empty: could not unregister namespace "
                "empty in store: namespace empty not found");

  // The server refuses too, for clients that do not ask first (REST, the original's Go CLI).
  absl::StatusOr<HttpResult> deleted =
      HttpRequest("DELETE", discoveryd_->http_url() + "/v1/namespaces/default", "",
                  {{"Authorization", "Bearer " + admin_token_}});
  ASSERT_THAT(deleted, IsOk());
  EXPECT_GE(deleted->status, 400);
  EXPECT_THAT(deleted->body, HasSubstr("namespace default cannot be unregistered"));
  EXPECT_THAT(Discovery({"service", "list", "--no-headers"}).out, HasSubstr("http://a:9100"));
}

// Point 2: a second discoveryd on a taken gRPC address fails at start instead of sharing it.
TEST_F(CliOperatorTest, ATakenGrpcPortIsAnErrorAtStart) {
  ASSERT_OK_AND_ASSIGN(std::string data_dir, MakeTempDir("discovery-second-data"));
  ASSERT_OK_AND_ASSIGN(std::vector<int> ports, FreePorts(1));
  const CommandResult second =
      Discoveryd({"server", "--log-format=text", "--data-dir=" + data_dir,
                  "--grpc-listen=" + discoveryd_->grpc_address(),
                  fmt::format("--http-listen=127.0.0.1:{}", ports[0]), "--token-secret=other"});
  EXPECT_EQ(second.status.code, 1) << second.status.ToString() << "\n" << second.err;
  EXPECT_EQ(
      LastLine(second.err),
      fmt::format("discoveryd: cannot listen for gRPC on {}: the address is in use by another "
                  "process, or not one of this host",
                  discoveryd_->grpc_address()));
  EXPECT_TRUE(discoveryd_->IsRunning());
  RunCommand({.argv = {"/bin/rm", "-rf", data_dir}}, absl::Seconds(10)).IgnoreError();
}

// Point 3: `discoveryd token create` signs with an existing secret only, and says where it looked.
TEST_F(CliOperatorTest, TokenCreateNeverCreatesASecret) {
  ASSERT_OK_AND_ASSIGN(std::string data_dir, MakeTempDir("discovery-no-secret"));
  ExpectFailure(
      Discoveryd({"--data-dir", data_dir, "token", "create", "admin", "--admin"}), 1,
      fmt::format("discoveryd: no token secret in {}/token-secret: pass the server's --data-dir or "
                  "its --token-secret (`discoveryd server` creates <data-dir>/token-secret at its "
                  "first start)",
                  data_dir));
  EXPECT_FALSE(std::ifstream(data_dir + "/token-secret").good());
  // The default data dir of a user without one: nothing is created there either.
  const std::string default_dir = home_ + "/.local/share/discovery";
  ExpectFailure(Discoveryd({"token", "create", "admin", "--admin"}, {"XDG_DATA_HOME"}), 1,
                fmt::format("discoveryd: no token secret in {}/token-secret: pass the server's "
                            "--data-dir or its --token-secret (`discoveryd server` creates "
                            "<data-dir>/token-secret at its first start)",
                            default_dir));
  EXPECT_FALSE(std::ifstream(default_dir + "/token-secret").good());

  // Its help shows the flags it inherits.
  const CommandResult help = Discoveryd({"token", "create", "--help"});
  EXPECT_TRUE(help.status.success());
  EXPECT_THAT(help.out, AllOf(HasSubstr("GLOBAL OPTIONS"), HasSubstr("--data-dir"),
                              HasSubstr("--token-secret"), HasSubstr("--expires")));
  RunCommand({.argv = {"/bin/rm", "-rf", data_dir}}, absl::Seconds(10)).IgnoreError();
}

// Point 7: unregister defaults the namespace as register does, needs something to unregister, and
// succeeds for what is already gone (ExecStopPost runs it after every stop).
TEST_F(CliOperatorTest, ServiceUnregisterDefaultsTheNamespaceAndToleratesWhatIsGone) {
  ASSERT_TRUE(Discovery({"server", "register", "prom"}).status.success());
  CommandResult result = Discovery({"service", "register", "node", "-e", "http://a:9100/metrics"});
  ASSERT_TRUE(result.status.success()) << result.err;
  result = Discovery({"service", "unregister", "http://a:9100/metrics"});
  EXPECT_TRUE(result.status.success()) << result.err;
  EXPECT_THAT(result.err, HasSubstr("service unregistered"));
  EXPECT_THAT(Discovery({"service", "list", "--no-headers"}).out, IsEmpty());

  result = Discovery({"service", "unregister", "http://a:9100/metrics"});
  EXPECT_TRUE(result.status.success()) << result.err;
  EXPECT_THAT(result.err, HasSubstr("service not registered, nothing to unregister"));

  ExpectFailure(Discovery({"service", "unregister"}), 2,
                "discovery: service unregister needs endpoint URLs or service IDs "
                "($DISCOVERY_ENDPOINTS), or -u; see --help");
  // -u that finds nothing is a success.
  result = Discovery({"service", "unregister", "-u"});
  EXPECT_TRUE(result.status.success()) << result.err;
  EXPECT_THAT(result.err, HasSubstr("no unresolved services found"));
}

// Point 4: a typo names what was not understood and the closest command or flag; every usage
// error exits 2, every other failure 1.
TEST_F(CliOperatorTest, TyposAreNamedWithTheClosestCommandOrFlagAndExitTwo) {
  ExpectFailure(Discovery({"servr", "list"}), 2,
                "discovery: unknown command \"servr\" for `discovery`; did you mean `discovery "
                "server`?");
  ExpectFailure(Discovery({"service", "lsit"}), 2,
                "discovery: unknown command \"lsit\" for `discovery service`; did you mean "
                "`discovery service list`?");
  ExpectFailure(Discovery({"service", "list", "--outptu", "json"}), 2,
                "discovery: unknown flag --outptu for `discovery service list`; did you mean "
                "--output?");
  ExpectFailure(Discovery({"service", "list", "--insecrue"}), 2,
                "discovery: unknown flag --insecrue for `discovery service list`; did you mean "
                "--insecure?");
  ExpectFailure(Discovery({"service"}), 2,
                "discovery: `discovery service` needs a command: list, register, unregister, "
                "import; see `discovery service --help`");
  ExpectFailure(Discovery({"service", "register", "-e", "http://a:1/m"}), 2,
                "discovery: name is required; see `discovery service register --help`");
  ExpectFailure(Discovery({"service", "list", "--sort-by", "size"}), 2,
                "discovery: --sort-by: size not in {endpoint,date}; see `discovery service list "
                "--help`");
  ExpectFailure(Discoveryd({"token", "craete", "x"}), 2,
                "discoveryd: unknown command \"craete\" for `discoveryd token`; did you mean "
                "`discoveryd token create`?");
  // A failure that is not about the command line exits 1.
  ExpectFailure(Discovery({"service", "register", "node", "-n", "nowhere", "-e", "http://a:1/m"}),
                1,
                "discovery: cannot register http://a:1/m in namespace nowhere: could not register "
                "service http://a:1/m: namespace nowhere "
                "not found");
}

// A TCP port whose connections the kernel accepts but nobody reads from: a server that never
// answers.
class SilentServer {
 public:
  SilentServer() : fd_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    // NOLINTBEGIN(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    if (fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&address), length) == 0 &&
        listen(fd_, 64) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
      port_ = ntohs(address.sin_port);
    }
    // NOLINTEND(cppcoreguidelines-pro-type-reinterpret-cast)
  }
  ~SilentServer() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;
  SilentServer(SilentServer&&) = delete;
  SilentServer& operator=(SilentServer&&) = delete;

  std::string address() const { return fmt::format("127.0.0.1:{}", port_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Point 5: errors name the address and the likely cause; a one-shot command ends within
// --deadline, its retries included, whatever --timeout each call has.
TEST_F(CliOperatorTest, ASilentServerIsNamedAndTheDeadlineBoundsRetries) {
  SilentServer silent;
  ASSERT_NE(silent.port(), 0);
  const std::string no_answer = fmt::format(
      "no answer from {} within 2s (--timeout): the server accepts connections but does not "
      "respond; is it discoveryd's gRPC port, and is it overloaded?",
      silent.address());
  ExpectFailure(Discovery({"namespace", "list", "-a", silent.address(), "--timeout", "2s"}), 1,
                "discovery: " + no_answer);

  // Each retry is logged; the last failure is the one line of the command's own.
  const CommandResult result = Discovery({"service", "register", "node", "-e", "http://a:1/m", "-a",
                                          silent.address(), "--timeout", "2s", "--deadline", "3s"});
  EXPECT_EQ(result.status.code, 1) << result.err;
  // The last call ran out of --timeout, or of what was left of --deadline after the jittered wait.
  const std::string cannot = "discovery: cannot register http://a:1/m in namespace default: ";
  EXPECT_THAT(LastLine(result.err),
              AnyOf(Eq(cannot + no_answer),
                    Eq(cannot + fmt::format("no answer from {} before the command's --deadline: "
                                            "the server accepts connections but does not respond; "
                                            "is it discoveryd's gRPC port, and is it overloaded?",
                                            silent.address()))));
  // With 2 s per call and 3 s in all there is room for one retry at most (the first wait is at
  // least 500 ms), where the default deadline-free schedule makes three.
  const std::vector<std::string> lines = absl::StrSplit(result.err, '\n', absl::SkipEmpty());
  EXPECT_LE(lines.size(), 2U) << result.err;

  ExpectFailure(Discovery({"namespace", "list", "-a", "127.0.0.1:1", "--timeout", "2s"}), 1,
                "discovery: cannot connect to 127.0.0.1:1: connection refused; is discoveryd "
                "running there (--address)?");
}

// Point 6: a plaintext server without --insecure is one line with the hint; gRPC's own log lines
// ("E1204 ... Handshake failed") stay off the terminal.
TEST_F(CliOperatorTest, TlsToAPlaintextServerIsOneLineWithTheHint) {
  WriteFile(ConfigPath(), fmt::format("address: {}\n", discoveryd_->grpc_address()));
  ExpectFailure(Discovery({"namespace", "list"}), 1,
                fmt::format("discovery: TLS handshake with {} failed: a plaintext server needs "
                            "--insecure, a certificate of a private CA --ca-cert",
                            discoveryd_->grpc_address()));
  // Even at gRPC's most verbose, its lines go through our logging (-d shows them), not stderr raw.
  const CommandResult verbose = Discovery({"namespace", "list"}, {"GRPC_VERBOSITY=DEBUG"});
  EXPECT_EQ(verbose.status.code, 1);
  EXPECT_EQ(verbose.err, fmt::format("discovery: TLS handshake with {} failed: a plaintext server "
                                     "needs --insecure, a certificate of a private CA --ca-cert\n",
                                     discoveryd_->grpc_address()));
}

// Point 10: --version reports this build: the project's version, the commit it was built from
// and the build date, each binary under its own name.
TEST_F(CliOperatorTest, VersionComesFromTheBuild) {
  // The revision this build was configured at (not HEAD now: a commit made after the build must
  // not fail it), which must be a commit of this repository.
  const std::string built = DISCOVERY_BUILD_REVISION;
  ASSERT_THAT(built, MatchesRegex("[0-9a-f]{40}"));
  const absl::StatusOr<CommandResult> git = RunCommand(
      {.argv = {"/usr/bin/git", "-C", DISCOVERY_SOURCE_DIR, "cat-file", "-e", built + "^{commit}"}},
      absl::Seconds(10));
  ASSERT_THAT(git, IsOk());
  ASSERT_TRUE(git->status.success()) << built << " is no commit of this repository: " << git->err;
  const std::string revision = built.substr(0, 8);
  for (const auto& [binary, name] :
       {std::pair{DISCOVERY_BINARY, "discovery"}, std::pair{DISCOVERYD_BINARY, "discoveryd"}}) {
    const CommandResult result = Run(binary, {"--version"});
    ASSERT_TRUE(result.status.success()) << result.err;
    EXPECT_THAT(result.out, MatchesRegex(fmt::format(R"({}, version {} \(revision: {}\)
  build date:       [0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}Z
  compiler:         g\+\+ [0-9.]+
)",
                                                     name, DISCOVERY_PROJECT_VERSION, revision)));
  }
}

// Point 12: a port TCP cannot address is refused; a standard namespace takes only what Prometheus
// can scrape (http, https), a blackbox one any scheme; a token for an unknown namespace is made
// with a warning.
TEST_F(CliOperatorTest, EndpointsPrometheusCannotScrapeAreRefused) {
  ASSERT_TRUE(Discovery({"server", "register", "prom"}).status.success());
  ExpectFailure(
      Discovery({"service", "register", "node", "-e", "http://a:65536/metrics"}), 1,
      "discovery: cannot register http://a:65536/metrics in namespace default: service "
      "with endpoint http://a:65536/metrics is invalid: 'http://a:65536/metrics' is not a "
      "valid url: port 65536 is out of range (at most 65535)");
  ExpectFailure(Discovery({"service", "register", "files", "-e", "ftp://files.example.com/"}), 1,
                "discovery: cannot register ftp://files.example.com/ in namespace default: service "
                "with endpoint ftp://files.example.com/ is invalid: namespace default is exported "
                "as standard, where Prometheus scrapes http and https only; use a blackbox "
                "namespace for ftp probes");
  ASSERT_TRUE(Discovery({"namespace", "register", "-e", "blackbox", "probes"}).status.success());
  CommandResult result =
      Discovery({"service", "register", "files", "-n", "probes", "-e", "ftp://files.example.com/"});
  EXPECT_TRUE(result.status.success()) << result.err;
  result = Discovery({"service", "register", "node", "-e", "https://a:65535/metrics"});
  EXPECT_TRUE(result.status.success()) << result.err;

  result = Discovery({"token", "create", "-n", "probes,nowhere", "ci"});
  EXPECT_TRUE(result.status.success()) << result.err;
  EXPECT_THAT(result.out, MatchesRegex(R"([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+
)"));
  EXPECT_THAT(result.err,
              AllOf(HasSubstr("namespace nowhere does not exist; the token is valid for it once it "
                              "is registered"),
                    Not(HasSubstr("namespace probes"))));
}

// Point 8: a token file may hold just the JWT; token info says whether a token is admin and lists
// namespaces as YAML; --expires is the expiry flag of both binaries (--expiry still works).
TEST_F(CliOperatorTest, TokenFilesInfoAndExpiryFlag) {
  WriteFile(TokenPath(), admin_token_ + "\n");
  CommandResult result = Discovery({"namespace", "list", "--no-headers"});
  EXPECT_TRUE(result.status.success()) << result.err;
  EXPECT_THAT(result.out, StartsWith("default "));

  result = Discovery({"token", "info", admin_token_});
  ASSERT_TRUE(result.status.success()) << result.err;
  EXPECT_EQ(result.out, "id: admin\nadmin: true\nnamespaces: []\nexpiry: never\n");

  for (const std::string flag : {"--expires", "--expiry"}) {
    result = Discovery({"token", "create", "ci", "-n", "default", flag, "1h"});
    ASSERT_TRUE(result.status.success()) << flag << ": " << result.err;
    const std::string token = result.out.substr(0, result.out.find('\n'));
    result = Discovery({"token", "info", token});
    ASSERT_TRUE(result.status.success()) << result.err;
    EXPECT_THAT(result.out, MatchesRegex("id: ci\nadmin: false\nnamespaces: \\[default\\]\n"
                                         "expiry: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\+00:00\n"));
  }
  result = Discoveryd({"token", "create", "ci", "--namespaces", "default", "--expires", "1h",
                       "--token-secret", "s"});
  EXPECT_TRUE(result.status.success()) << result.err;
}

// Point 13: what the alert DiscoveryReplicaNotReady reads (packaging/prometheus).
TEST_F(CliOperatorTest, MetricsSayWhetherTheReplicaIsReady) {
  absl::StatusOr<HttpResult> metrics = HttpRequest("GET", discoveryd_->http_url() + "/metrics");
  ASSERT_THAT(metrics, IsOk());
  EXPECT_THAT(metrics->body, HasSubstr("\ndiscovery_ready 1\n"));
}

// Point 9: a key of the CLI's own file that is no flag is an error naming the file and line;
// discoveryd does not read that per-user file.
TEST_F(CliOperatorTest, UnknownConfigKeysAreErrorsAndDiscoverydIgnoresTheUserFile) {
  WriteFile(ConfigPath(), fmt::format("insecure: true\nadress: {}\n", discoveryd_->grpc_address()));
  ExpectFailure(Discovery({"namespace", "list"}), 2,
                fmt::format(R"(discovery: {}:2: unknown key "adress"; did you mean "address"?)",
                            ConfigPath()));
  EXPECT_TRUE(Discovery({"--show-config"}).status.success());

  const CommandResult shown = Discoveryd({"--show-config"});
  EXPECT_TRUE(shown.status.success()) << shown.err;
  EXPECT_THAT(shown.err, AllOf(HasSubstr("discovery.yaml"), HasSubstr("/etc/discovery/config.yaml"),
                               Not(HasSubstr(ConfigPath()))));
}

// Point 11: json and yaml show the same fields, empty ones too; -o's help says what the numbers
// and the csv separator mean.
TEST_F(CliOperatorTest, JsonAndYamlShowTheSameFields) {
  ASSERT_TRUE(Discovery({"server", "register", "prom"}).status.success());
  ASSERT_TRUE(
      Discovery({"service", "register", "node", "-e", "http://a:9100/metrics"}).status.success());
  const CommandResult json = Discovery({"service", "list", "-o", "json"});
  ASSERT_TRUE(json.status.success()) << json.err;
  EXPECT_THAT(json.out, AllOf(HasSubstr(R"("labels": {})"), HasSubstr(R"("description": "")"),
                              HasSubstr(R"("selector": "")")));
  const CommandResult yaml = Discovery({"service", "list", "-o", "yaml"});
  ASSERT_TRUE(yaml.status.success()) << yaml.err;
  EXPECT_THAT(yaml.out, AllOf(HasSubstr("labels: {}"), HasSubstr(R"(description: "")"),
                              HasSubstr(R"(selector: "")")));
  const CommandResult servers = Discovery({"server", "list", "-o", "json"});
  EXPECT_THAT(servers.out, HasSubstr(R"("labels": {})"));

  const CommandResult help = Discovery({"service", "list", "--help"});
  EXPECT_THAT(help.out, AllOf(HasSubstr("fields separated by ';'"), HasSubstr("2 active"),
                              HasSubstr("1 standard")));
}

// The line of `key` in the "Settings:" part of --show-config's `text`, its columns joined by one
// space: "address 127.0.0.1:3001 file /home/u/.config/discovery/config.yaml".
std::string Setting(const std::string& text, const std::string& key) {
  const std::size_t settings = text.find("\nSettings:\n");
  if (settings == std::string::npos) {
    return "";
  }
  for (const std::string& line :
       std::vector<std::string>(absl::StrSplit(text.substr(settings), '\n', absl::SkipEmpty()))) {
    const std::vector<std::string> columns = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (!columns.empty() && columns.front() == key) {
      return absl::StrJoin(columns, " ");
    }
  }
  return "";
}

// Point 9: ./discovery.yaml is read by both programs, so it may hold the keys of either; a key
// that neither knows is an error naming the file, the line and the closest key.
TEST_F(CliOperatorTest, SharedConfigFilesRefuseKeysNeitherProgramKnows) {
  const std::string shared = home_ + "/discovery.yaml";
  WriteFile(shared, "grpc-listen: localhost:1\ntimeout: 30s\nadress: localhost:2\n");
  ExpectFailure(
      Discovery({"namespace", "list"}), 2,
      fmt::format(R"(discovery: {}:3: unknown key "adress"; did you mean "address"?)", shared));
  ExpectFailure(
      Discoveryd({"token", "create", "ci", "--admin", "--token-secret", "s3cret"}), 2,
      fmt::format(R"(discoveryd: {}:3: unknown key "adress"; did you mean "address"?)", shared));

  // grpc-listen is discoveryd's, timeout discovery's: each program accepts the other's key.
  WriteFile(shared, "grpc-listen: localhost:1\ntimeout: 30s\n");
  const CommandResult listed = Discovery({"namespace", "list"});
  EXPECT_EQ(listed.status.code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr("default"));
  const CommandResult created =
      Discoveryd({"token", "create", "ci", "--admin", "--token-secret", "s3cret"});
  EXPECT_EQ(created.status.code, 0) << created.err;
  EXPECT_THAT(created.out, StartsWith("eyJ"));
}

// Point 9: --show-config lists every setting with its effective value and where it came from,
// secrets redacted.
TEST_F(CliOperatorTest, ShowConfigSaysWhereEachValueComesFrom) {
  const CommandResult shown =
      Discovery({"--show-config", "--deadline", "45s", "--oidc-client-secret", "hunter2"},
                {"DISCOVERY_TIMEOUT=7s"});
  EXPECT_EQ(shown.status.code, 0) << shown.err;
  EXPECT_THAT(shown.err, StartsWith("Configuration files:\n"));
  EXPECT_EQ(Setting(shown.err, "deadline"), "deadline 45s flag");
  EXPECT_EQ(Setting(shown.err, "oidc-client-secret"), "oidc-client-secret ***** flag");
  EXPECT_EQ(Setting(shown.err, "timeout"), "timeout 7s environment DISCOVERY_TIMEOUT");
  EXPECT_EQ(Setting(shown.err, "address"),
            fmt::format("address {} file {}", discoveryd_->grpc_address(), ConfigPath()));
  EXPECT_EQ(Setting(shown.err, "insecure"), fmt::format("insecure true file {}", ConfigPath()));
  EXPECT_EQ(Setting(shown.err, "token-path"), "token-path ~/.config/discovery/.token default");
  EXPECT_EQ(Setting(shown.err, "debug"), "debug false default");
  EXPECT_THAT(shown.err, Not(HasSubstr("hunter2")));

  // The flag beats the environment, the environment the file.
  const std::string shared = home_ + "/discovery.yaml";
  WriteFile(shared, "grpc-listen: localhost:1\nhttp-listen: localhost:2\nreplicas: 3\n");
  const CommandResult daemon =
      Discoveryd({"server", "--show-config", "--replicas", "2"},
                 {"DISCOVERY_TOKEN_SECRET=s3cret", "DISCOVERY_HTTP_LISTEN=localhost:4"});
  EXPECT_EQ(daemon.status.code, 0) << daemon.err;
  EXPECT_EQ(Setting(daemon.err, "replicas"), "replicas 2 flag");
  EXPECT_EQ(Setting(daemon.err, "http-listen"),
            "http-listen localhost:4 environment DISCOVERY_HTTP_LISTEN");
  EXPECT_EQ(Setting(daemon.err, "grpc-listen"),
            fmt::format("grpc-listen localhost:1 file {}", shared));
  EXPECT_EQ(Setting(daemon.err, "token-secret"),
            "token-secret ***** environment DISCOVERY_TOKEN_SECRET");
  EXPECT_EQ(Setting(daemon.err, "placement"), "placement rendezvous default");
  EXPECT_THAT(daemon.err, Not(HasSubstr("s3cret")));
}

}  // namespace
}  // namespace discovery::testing
