#include "ui/ui.h"

#include <string>
#include <string_view>
#include <utility>

#include "nlohmann/json.hpp"

#include "openapi/assets.h"
#include "ui/embedded_files.h"

namespace discovery::ui {
namespace {

constexpr std::string_view kPrefix = "/ui/";
constexpr std::string_view kConfigPath = "/ui/config.json";

const openapi::AssetTable& Assets() {
  static const auto* const assets = new openapi::AssetTable(EmbeddedFiles());
  return *assets;
}

// "scheme://host[:port]" of `url`; "" when it has none.
std::string Origin(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) {
    return "";
  }
  const size_t path = url.find_first_of("/?#", scheme + 3);
  return std::string{url.substr(0, path)};
}

// The page loads only its own files and talks only to this server and, for Sign in, the OIDC
// provider (its discovery document and token endpoint, on the issuer's origin).
std::string ContentSecurityPolicy(const UiOptions& options) {
  std::string connect = "'self'";
  if (!options.oidc_client_id.empty()) {
    if (const std::string origin = Origin(options.oidc_issuer); !origin.empty()) {
      connect += " " + origin;
    }
  }
  return "default-src 'self'; connect-src " + connect +
         "; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
}

std::string ConfigJson(const UiOptions& options) {
  nlohmann::json oidc = nullptr;
  if (!options.oidc_issuer.empty() && !options.oidc_client_id.empty()) {
    oidc = {{"issuer", options.oidc_issuer}, {"clientId", options.oidc_client_id}};
  }
  return nlohmann::json{{"oidc", oidc}}.dump(-1, ' ', false,
                                             nlohmann::json::error_handler_t::replace);
}

}  // namespace

WebUi::WebUi(const UiOptions& options)
    : config_json_(ConfigJson(options)), content_security_policy_(ContentSecurityPolicy(options)) {}

bool WebUi::Handles(std::string_view path) { return path == "/ui" || path.starts_with(kPrefix); }

std::optional<std::string_view> WebUi::Route(std::string_view path) {
  if (!Handles(path)) {
    return std::nullopt;
  }
  return path == kConfigPath ? kConfigPath : kPrefix;
}

http::Response WebUi::Serve(const http::Request& request) const {
  if (!Handles(request.path)) {
    return openapi::PlainText(404, "not found\n");
  }
  if (request.method != "GET" && request.method != "HEAD") {
    http::Response response = openapi::PlainText(405, "method not allowed\n");
    response.headers.emplace_back("Allow", "GET, HEAD");
    return response;
  }
  if (request.path == "/ui") {
    std::string location{kPrefix};
    if (!request.query.empty()) {
      location += "?" + request.query;
    }
    http::Response response = openapi::PlainText(301, "");
    response.headers.emplace_back("Location", std::move(location));
    return response;
  }
  if (request.path == kConfigPath) {
    return {.status = 200,
            .headers = {{"Content-Type", "application/json"}, {"Cache-Control", "no-cache"}},
            .body = config_json_};
  }
  std::string_view name{request.path};
  name.remove_prefix(kPrefix.size());
  if (name.empty()) {
    name = "index.html";
  }
  http::Response response = Assets().Serve(request, name);
  response.headers.emplace_back("Content-Security-Policy", content_security_policy_);
  return response;
}

}  // namespace discovery::ui
