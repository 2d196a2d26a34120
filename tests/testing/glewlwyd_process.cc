#include "testing/glewlwyd_process.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

#include "testing/http_client.h"
#include "testing/process.h"

namespace discovery::testing {
namespace {

using Json = ::nlohmann::json;

// How often Start retries with a new port when another process took it first.
constexpr int kStartAttempts = 3;
constexpr const char* kDatabaseScript = "/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz";
constexpr const char* kConfigSample = "/usr/share/doc/glewlwyd/glewlwyd.conf.sample.gz";
constexpr const char* kZcat = "/usr/bin/zcat";
constexpr const char* kSqlite = "/usr/bin/sqlite3";
constexpr const char* kOpenssl = "/usr/bin/openssl";
constexpr const char* kWebapp = "/usr/share/glewlwyd/webapp";
constexpr const char* kWebappConfig = "/etc/glewlwyd/config-2.7.json/config.json";
// The administrator of the package's initial database (scope g_admin).
constexpr const char* kAdminUser = "admin";
constexpr const char* kAdminPassword = "password";
// The plugin instance's name: the OIDC endpoints live under /api/<name>.
constexpr const char* kPluginName = "oidc";
constexpr const char* kScope = "discovery";
constexpr int64_t kRefreshTokenSeconds = int64_t{14} * 24 * 3600;  // 14 days
constexpr int64_t kCodeSeconds = 600;

// Runs a helper command (zcat, sqlite3, openssl) in `dir`; Internal with its output unless it
// succeeds.
absl::StatusOr<std::string> Run(std::vector<std::string> argv, const std::string& dir) {
  const std::string name = argv[0];
  absl::StatusOr<CommandResult> result =
      RunCommand({.argv = std::move(argv), .working_dir = dir}, absl::Seconds(30));
  if (!result.ok()) {
    return result.status();
  }
  if (!result->status.success()) {
    return absl::InternalError(fmt::format("{} failed ({}): {}{}", name, result->status.ToString(),
                                           result->err, result->out));
  }
  return std::move(result->out);
}

absl::Status WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out.flush()) {
    return absl::InternalError("cannot write " + path);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  if (!in) {
    return absl::InternalError("cannot read " + path);
  }
  return content.str();
}

// The package's sample config with what a test server needs changed: the database path,
// plain-HTTP cookies for 127.0.0.1, the port and external URL, a loopback bind address, and the
// login page's files (MakeWebapp). The sample's secure_connection_* lines stay: glewlwyd refuses
// to start without them.
absl::StatusOr<std::string> RenderConfig(const std::string& sample, const std::string& db_path,
                                         const std::string& webapp_parent, int port) {
  std::istringstream in(sample);
  std::string out;
  std::string line;
  int replaced = 0;
  while (std::getline(in, line)) {
    if (line.starts_with("port=")) {
      line = fmt::format("port={}", port);
      ++replaced;
    } else if (line.starts_with("#bind_address=")) {
      line = "bind_address=\"127.0.0.1\"";
      ++replaced;
    } else if (line.starts_with("external_url=")) {
      line = fmt::format("external_url=\"http://127.0.0.1:{}\"", port);
      ++replaced;
    } else if (line.starts_with("cookie_domain=")) {
      line = "cookie_domain=\"127.0.0.1\"";
      ++replaced;
    } else if (line.starts_with("cookie_secure=")) {
      line = "cookie_secure=0";
      ++replaced;
    } else if (absl::StrContains(line, "/var/cache/glewlwyd/glewlwyd.db")) {
      line = fmt::format("  path = \"{}\"", db_path);
      ++replaced;
    } else if (line.starts_with("static_files_path=")) {
      line = fmt::format("static_files_path=\"{}/webapp/\"", webapp_parent);
      ++replaced;
    }
    out += line;
    out += '\n';
  }
  if (replaced != 7) {
    return absl::InternalError(
        fmt::format("{} changed: {} of 7 settings found to replace", kConfigSample, replaced));
  }
  return out;
}

// The login page's files (static_files_path): a copy of the package's webapp/ (glewlwyd serves
// no symlink that leads out of its directory), whose config.json is a symlink into /etc that
// the package leaves dangling (it points at a directory), with the config.json of
// /etc/glewlwyd/config-2.7.json/ in its place. Without it the login page never gets past
// "Loading...".
absl::Status MakeWebapp(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  for (const auto& entry : std::filesystem::directory_iterator(kWebapp, error)) {
    if (entry.path().filename() == "config.json") {
      continue;
    }
    std::filesystem::copy(entry.path(), dir + "/" + entry.path().filename().string(),
                          std::filesystem::copy_options::recursive, error);
    if (error) {
      return absl::InternalError(
          fmt::format("copying {} into {}: {}", entry.path().string(), dir, error.message()));
    }
  }
  if (error) {
    return absl::InternalError(fmt::format("reading {}: {}", kWebapp, error.message()));
  }
  std::filesystem::copy_file(kWebappConfig, dir + "/config.json", error);
  if (error) {
    return absl::InternalError(
        fmt::format("{} -> {}/config.json: {}", kWebappConfig, dir, error.message()));
  }
  return absl::OkStatus();
}

// application/x-www-form-urlencoded: everything but unreserved characters percent-encoded.
std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields) {
  const auto escape = [](std::string_view text) {
    std::string out;
    for (const char c : text) {
      const auto u = static_cast<unsigned char>(c);
      if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || c == '-' ||
          c == '.' || c == '_' || c == '~') {
        out += c;
      } else {
        out += fmt::format("%{:02X}", u);
      }
    }
    return out;
  };
  std::string body;
  for (const auto& [name, value] : fields) {
    if (!body.empty()) {
      body += '&';
    }
    body += escape(name) + "=" + escape(value);
  }
  return body;
}

}  // namespace

GlewlwydProcess::GlewlwydProcess(GlewlwydOptions options, std::string root)
    : options_(std::move(options)), root_(std::move(root)), log_path_(root_ + "/glewlwyd.log") {}

GlewlwydProcess::~GlewlwydProcess() {
  // SIGKILL: a SIGTERM costs glewlwyd 1.5 s to shut down, and nothing of it is kept.
  process_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(root_, ignored);
}

absl::StatusOr<std::unique_ptr<GlewlwydProcess>> GlewlwydProcess::Start(GlewlwydOptions options) {
  if (options.token_lifetime < absl::Seconds(1)) {
    return absl::InvalidArgumentError(fmt::format("token_lifetime {} is below glewlwyd's 1 s",
                                                  absl::FormatDuration(options.token_lifetime)));
  }
  absl::StatusOr<std::string> root = MakeTempDir("discovery-glewlwyd");
  if (!root.ok()) {
    return root.status();
  }
  std::unique_ptr<GlewlwydProcess> glewlwyd(
      new GlewlwydProcess(std::move(options), *std::move(root)));
  const std::string& dir = glewlwyd->root_;

  // The database: the package's schema and initial data (admin user, database backends).
  absl::StatusOr<std::string> script = Run({kZcat, kDatabaseScript}, dir);
  if (!script.ok()) {
    return script.status();
  }
  if (absl::Status written = WriteFile(dir + "/init.sql", *script); !written.ok()) {
    return written;
  }
  if (absl::StatusOr<std::string> db =
          Run({kSqlite, "-bail", "glewlwyd.db", ".read init.sql"}, dir);
      !db.ok()) {
    return db.status();
  }
  // The OIDC signing key (PKCS#8 PEM) and its public key.
  for (std::vector<std::string> argv :
       {std::vector<std::string>{kOpenssl, "genrsa", "-out", "oidc.key", "2048"},
        std::vector<std::string>{kOpenssl, "rsa", "-in", "oidc.key", "-pubout", "-out",
                                 "oidc.pub"}}) {
    if (absl::StatusOr<std::string> done = Run(std::move(argv), dir); !done.ok()) {
      return done.status();
    }
  }
  absl::StatusOr<std::string> config_template = Run({kZcat, kConfigSample}, dir);
  if (!config_template.ok()) {
    return config_template.status();
  }
  if (absl::Status webapp = MakeWebapp(dir + "/webapp"); !webapp.ok()) {
    return webapp;
  }

  absl::Status status;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    absl::StatusOr<std::vector<int>> port = FreePorts(1);
    if (!port.ok()) {
      return port.status();
    }
    glewlwyd->port_ = (*port)[0];
    status = glewlwyd->Launch(*config_template);
    // Another process can take the free port before glewlwyd binds it; a new port fixes that.
    if (status.ok() || glewlwyd->IsRunning() ||
        !absl::StrContains(glewlwyd->LogTail(10), "Address already in use")) {
      break;
    }
  }
  if (!status.ok()) {
    return status;
  }
  if (absl::Status configured = glewlwyd->Configure(); !configured.ok()) {
    return configured;
  }
  return glewlwyd;
}

std::string GlewlwydProcess::url() const { return fmt::format("http://127.0.0.1:{}", port_); }

std::string GlewlwydProcess::issuer() const { return fmt::format("{}/api/{}", url(), kPluginName); }

std::string GlewlwydProcess::token_endpoint() const { return issuer() + "/token"; }

bool GlewlwydProcess::IsRunning() const { return process_ != nullptr && process_->IsRunning(); }

absl::Status GlewlwydProcess::Launch(const std::string& config_template) {
  absl::StatusOr<std::string> config =
      RenderConfig(config_template, root_ + "/glewlwyd.db", root_, port_);
  if (!config.ok()) {
    return config.status();
  }
  if (absl::Status written = WriteFile(root_ + "/glewlwyd.conf", *config); !written.ok()) {
    return written;
  }
  // Runs in the foreground and logs to the console (log_mode="console"), i.e. to the log file.
  Command command{.argv = {options_.binary, "-c", root_ + "/glewlwyd.conf"}, .working_dir = root_};
  absl::StatusOr<std::unique_ptr<ChildProcess>> process = ChildProcess::Start(command, log_path_);
  if (!process.ok()) {
    return process.status();
  }
  process_ = *std::move(process);

  const absl::Time deadline = absl::Now() + options_.start_timeout;
  std::string last_answer = "no answer";
  while (true) {
    if (!process_->IsRunning()) {
      return absl::UnavailableError(
          fmt::format("glewlwyd on {} exited during startup ({}); log tail:\n{}", url(),
                      process_->exit_status()->ToString(), LogTail()));
    }
    absl::StatusOr<HttpResult> answer = HttpGet(url() + "/config", absl::Seconds(2));
    if (answer.ok() && answer->status == 200) {
      return absl::OkStatus();
    }
    last_answer = answer.ok() ? fmt::format("{} {}", answer->status, answer->body)
                              : std::string{answer.status().message()};
    if (absl::Now() >= deadline) {
      return absl::UnavailableError(
          fmt::format("glewlwyd on {} not answering within {} (last: {}); log tail:\n{}", url(),
                      absl::FormatDuration(options_.start_timeout), last_answer, LogTail()));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

absl::StatusOr<Json> GlewlwydProcess::Admin(const std::string& method, const std::string& path,
                                            const Json& body) const {
  const std::string target = url() + "/api" + path;
  HttpHeaders headers = {{"Cookie", admin_cookie_}};
  if (!body.is_null()) {
    headers.emplace_back("Content-Type", "application/json");
  }
  absl::StatusOr<HttpResult> answer =
      HttpRequest(method, target, body.is_null() ? "" : body.dump(), headers);
  if (!answer.ok()) {
    return answer.status();
  }
  if (answer->status != 200) {
    return absl::InternalError(fmt::format("glewlwyd admin API: {} {}: {} {}; log tail:\n{}",
                                           method, target, answer->status, answer->body,
                                           LogTail(10)));
  }
  if (answer->body.empty()) {
    return Json();
  }
  Json parsed = Json::parse(answer->body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return absl::InternalError(
        fmt::format("glewlwyd admin API: {} {}: not JSON: {}", method, target, answer->body));
  }
  return parsed;
}

absl::Status GlewlwydProcess::Configure() {
  // Log in as the administrator; the session cookie authorizes the admin API.
  const std::string login_url = url() + "/api/auth/";
  absl::StatusOr<HttpResult> login = HttpRequest(
      "POST", login_url, Json{{"username", kAdminUser}, {"password", kAdminPassword}}.dump(),
      {{"Content-Type", "application/json"}});
  if (!login.ok()) {
    return login.status();
  }
  const std::optional<std::string> cookie = login->Header("Set-Cookie");
  if (login->status != 200 || !cookie.has_value()) {
    return absl::InternalError(fmt::format("glewlwyd admin login: POST {}: {} {}; log tail:\n{}",
                                           login_url, login->status, login->body, LogTail(10)));
  }
  admin_cookie_ = cookie->substr(0, cookie->find(';'));  // "GLEWLWYD2_SESSION_ID=..."

  // The database user backend learns the multi-valued property "roles" (stored one row per
  // value, answered as a JSON array). A PUT only stores parameters: the reset makes the running
  // instance use them.
  absl::StatusOr<Json> backend = Admin("GET", "/mod/user/database");
  if (!backend.ok()) {
    return backend.status();
  }
  Json backend_update = {{"display_name", (*backend)["display_name"]},
                         {"parameters", (*backend)["parameters"]},
                         {"order_rank", (*backend)["order_rank"]},
                         {"readonly", (*backend)["readonly"]}};
  backend_update["parameters"]["data-format"]["roles"] = {{"multiple", true},
                                                          {"read", true},
                                                          {"write", true},
                                                          {"profile-read", true},
                                                          {"profile-write", false}};
  if (absl::StatusOr<Json> r = Admin("PUT", "/mod/user/database", backend_update); !r.ok()) {
    return r.status();
  }
  if (absl::StatusOr<Json> r = Admin("PUT", "/mod/user/database/reset"); !r.ok()) {
    return r.status();
  }

  // The OIDC plugin, signing with the RSA key (RS256).
  absl::StatusOr<std::string> key = ReadFile(root_ + "/oidc.key");
  if (!key.ok()) {
    return key.status();
  }
  absl::StatusOr<std::string> public_key = ReadFile(root_ + "/oidc.pub");
  if (!public_key.ok()) {
    return public_key.status();
  }
  const auto claim = [](const std::string& name, const std::string& user_property) {
    return Json{{"name", name},       {"user-property", user_property},
                {"type", "string"},   {"mandatory", true},
                {"on-demand", false}, {"scope", Json::array()}};
  };
  Json plugin = {{"module", "oidc"},
                 {"name", kPluginName},
                 {"display_name", "OpenID Connect"},
                 {"parameters",
                  {{"iss", issuer()},
                   {"jwt-type", "rsa"},
                   {"jwt-key-size", "256"},
                   {"key", *key},
                   {"cert", *public_key},
                   {"access-token-duration", absl::ToInt64Seconds(options_.token_lifetime)},
                   {"refresh-token-duration", kRefreshTokenSeconds},
                   {"code-duration", kCodeSeconds},
                   {"refresh-token-rolling", true},
                   {"allow-non-oidc", true},
                   {"auth-type-code-enabled", true},
                   {"auth-type-token-enabled", true},
                   {"auth-type-id-token-enabled", true},
                   {"auth-type-none-enabled", true},
                   {"auth-type-password-enabled", true},
                   {"auth-type-client-enabled", true},
                   {"auth-type-refresh-enabled", true},
                   {"pkce-allowed", true},
                   {"pkce-required-public-client", true},
                   {"pkce-method-plain-allowed", false},
                   {"scope", Json::array()},
                   // Mandatory claims are in every ID token (and /userinfo answer).
                   {"claims", Json::array({claim("roles", "roles"),
                                           claim("preferred_username", "username")})}}}};
  if (options_.roles_in_access_tokens) {
    // Access tokens carry the roles too, comma-joined into one string.
    plugin["parameters"]["additional-parameters"] =
        Json::array({{{"user-parameter", "roles"}, {"token-parameter", "roles"}}});
  }
  if (absl::StatusOr<Json> r = Admin("POST", "/mod/plugin/", plugin); !r.ok()) {
    return r.status();
  }

  if (absl::StatusOr<Json> r = Admin("POST", "/scope/",
                                     {{"name", kScope},
                                      {"display_name", "Discovery"},
                                      {"description", "discovery registry"},
                                      {"password_required", false},
                                      {"scheme", Json::object()}});
      !r.ok()) {
    return r.status();
  }
  for (const OidcUser& user : options_.users) {
    const Json body = {{"username", user.username},
                       {"name", user.username},
                       {"email", user.username + "@example.test"},
                       {"password", user.password},
                       {"scope", Json::array({"openid", kScope})},
                       {"roles", user.roles},
                       {"enabled", true}};
    if (absl::StatusOr<Json> r = Admin("POST", "/user/", body); !r.ok()) {
      return r.status();
    }
  }
  // token_endpoint_auth_method is required: without it glewlwyd 2.7.5 refuses the client at the
  // token endpoint (403 for client_credentials, 500 for the password grant).
  const Json client = {
      {"client_id", options_.client_id},
      {"name", options_.client_id},
      {"confidential", true},
      {"password", options_.client_secret},
      {"token_endpoint_auth_method", Json::array({"client_secret_basic", "client_secret_post"})},
      {"redirect_uri", Json::array({"http://127.0.0.1/callback"})},
      {"authorization_type", Json::array({"password", "refresh_token", "client_credentials"})},
      {"scope", Json::array({"openid", kScope})},
      {"enabled", true}};
  if (absl::StatusOr<Json> r = Admin("POST", "/client/", client); !r.ok()) {
    return r.status();
  }
  return absl::OkStatus();
}

absl::Status GlewlwydProcess::AddPublicClient(const std::string& client_id,
                                              const std::string& redirect_uri) {
  const Json client = {{"client_id", client_id},
                       {"name", client_id},
                       {"confidential", false},
                       {"token_endpoint_auth_method", Json::array({"none"})},
                       {"redirect_uri", Json::array({redirect_uri})},
                       {"authorization_type", Json::array({"code"})},
                       {"scope", Json::array({"openid", kScope})},
                       {"enabled", true}};
  return Admin("POST", "/client/", client).status();
}

absl::StatusOr<Json> GlewlwydProcess::TokenRequest(
    const std::vector<std::pair<std::string, std::string>>& fields) const {
  // client_secret_basic as curl -u sends it (id and secret are not form-encoded first).
  const std::string credentials =
      absl::Base64Escape(options_.client_id + ":" + options_.client_secret);
  absl::StatusOr<HttpResult> answer =
      HttpRequest("POST", token_endpoint(), FormEncode(fields),
                  {{"Content-Type", "application/x-www-form-urlencoded"},
                   {"Authorization", "Basic " + credentials}});
  if (!answer.ok()) {
    return answer.status();
  }
  const std::string grant = fields.empty() ? "" : fields[0].second;
  if (answer->status == 400 || answer->status == 401 || answer->status == 403) {
    return absl::PermissionDeniedError(
        fmt::format("glewlwyd refused grant_type={}: {} {}", grant, answer->status, answer->body));
  }
  Json parsed = Json::parse(answer->body, nullptr, /*allow_exceptions=*/false);
  if (answer->status != 200 || !parsed.is_object() || !parsed.contains("access_token")) {
    return absl::InternalError(fmt::format("glewlwyd grant_type={}: POST {}: {} {}; log tail:\n{}",
                                           grant, token_endpoint(), answer->status, answer->body,
                                           LogTail(10)));
  }
  return parsed;
}

absl::StatusOr<Json> GlewlwydProcess::PasswordGrant(const std::string& username,
                                                    const std::string& password,
                                                    const std::string& scope) const {
  return TokenRequest({{"grant_type", "password"},
                       {"username", username},
                       {"password", password},
                       {"scope", scope}});
}

absl::StatusOr<Json> GlewlwydProcess::RefreshGrant(const std::string& refresh_token) const {
  return TokenRequest({{"grant_type", "refresh_token"}, {"refresh_token", refresh_token}});
}

absl::StatusOr<Json> GlewlwydProcess::Userinfo(const std::string& access_token) const {
  absl::StatusOr<HttpResult> answer =
      HttpRequest("GET", issuer() + "/userinfo", "", {{"Authorization", "Bearer " + access_token}});
  if (!answer.ok()) {
    return answer.status();
  }
  if (answer->status != 200) {
    return absl::PermissionDeniedError(
        fmt::format("glewlwyd refused userinfo: {} {}", answer->status, answer->body));
  }
  Json parsed = Json::parse(answer->body, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) {
    return absl::InternalError(fmt::format("glewlwyd userinfo: not JSON: {}", answer->body));
  }
  return parsed;
}

std::string GlewlwydProcess::LogTail(int lines) const { return TailFile(log_path_, lines); }

}  // namespace discovery::testing
