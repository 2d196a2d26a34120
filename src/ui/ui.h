// The web UI (docs/decisions.md D48), served from memory by discoveryd:
//
//   GET /ui              301 to /ui/
//   GET /ui/             the page (index.html); the app reads the REST API with the bearer
//                        token the user signs in with, kept in the tab's sessionStorage
//   GET /ui/config.json  what the app needs to know of the server: the OIDC provider and the
//                        UI's public client id, or "oidc": null without OIDC
//   GET /ui/<asset>      app.js, app.css, oidc.js
//
// The assets are plain ES modules and CSS in src/ui/web, embedded at build time.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "http/server.h"

namespace discovery::ui {

struct UiOptions {
  // --oidc-endpoint and --oidc-ui-client-id; "Sign in" is offered only when both are set.
  std::string oidc_issuer;
  std::string oidc_client_id;
};

class WebUi {
 public:
  explicit WebUi(const UiOptions& options);

  // True for "/ui" and every path under "/ui/".
  static bool Handles(std::string_view path);

  // Answers a request for a path Handles accepts: 200 (or 304 for a current ETag) for a file,
  // 301 for "/ui", 404 text/plain for an unknown file, 405 with `Allow` for a method other
  // than GET and HEAD. Thread-safe.
  http::Response Serve(const http::Request& request) const;

  // The metric label of a path Handles accepts: "/ui/" or "/ui/config.json"; nullopt for
  // other paths. Bounded, so unknown files do not grow the label set.
  static std::optional<std::string_view> Route(std::string_view path);

 private:
  const std::string config_json_;
  const std::string content_security_policy_;
};

}  // namespace discovery::ui
