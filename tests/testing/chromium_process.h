// Headless Chromium (Debian's `chromium`) as a child process, driven over the Chrome DevTools
// Protocol: for browser tests of what discoveryd serves (the Swagger UI and the web UI). The
// browser runs with a throw-away profile, no sandbox (tests run as root in CI) and its DevTools
// endpoint on a free loopback port; its output goes to a log whose tail goes into every error.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

#include "testing/process.h"

namespace discovery::testing {

struct ChromiumOptions {
  std::string binary = "/usr/bin/chromium";
  // Start and connect must finish within this.
  absl::Duration start_timeout = absl::Seconds(20);
};

// One browser with one page. Not thread-safe: drive it from the test thread. Destroying it
// stops the browser and removes its profile.
class ChromiumProcess {
 public:
  // Starts Chromium showing `url` and connects to that page's DevTools WebSocket. Unavailable
  // with the log tail when Chromium exits or does not offer its page within start_timeout.
  static absl::StatusOr<std::unique_ptr<ChromiumProcess>> Start(const std::string& url,
                                                                ChromiumOptions options = {});

  ~ChromiumProcess();
  ChromiumProcess(const ChromiumProcess&) = delete;
  ChromiumProcess& operator=(const ChromiumProcess&) = delete;

  // Sends the DevTools command `method` with `params` and returns its `result`. Fails with the
  // protocol's error message (Internal), DeadlineExceeded when no answer arrives within
  // `timeout` (the connection is unusable afterwards), Unavailable when the connection fails.
  // Events arriving meanwhile are dropped.
  absl::StatusOr<nlohmann::json> Call(const std::string& method, nlohmann::json params,
                                      absl::Duration timeout = absl::Seconds(10));

  // Evaluates the JavaScript `expression` in the page, awaiting it when it is a promise, and
  // returns its value (JSON-serialisable values only). A thrown exception or rejected promise
  // fails with Internal and its text.
  absl::StatusOr<nlohmann::json> Evaluate(const std::string& expression,
                                          absl::Duration timeout = absl::Seconds(20));

  // Loads `url` in the page and waits until it has loaded (as Start does).
  absl::Status Navigate(const std::string& url, absl::Duration timeout = absl::Seconds(20));

  // Presses and releases `key` as a keyboard does, so the page's default actions run (focus
  // moves on "Tab", a focused button is clicked on "Enter"): "Tab", "Enter", " ", "Escape",
  // "ArrowDown", ...; `shift` holds Shift (Shift+Tab). InvalidArgument for a key it does not
  // know.
  absl::Status PressKey(std::string_view key, bool shift = false);

  // Types `text` into the focused element (Input.insertText).
  absl::Status Type(const std::string& text);

  // Writes a PNG of the page's content, also beyond the viewport, to `path`.
  absl::Status Screenshot(const std::string& path);

  // The last `lines` lines of Chromium's stdout and stderr.
  std::string LogTail(int lines = 30) const;

 private:
  struct Connection;
  ChromiumProcess();
  absl::Status Connect(absl::Time deadline);
  absl::Status WaitForPage(const std::string& url, absl::Time deadline);

  std::string root_;  // temp dir: profile/, chromium.log
  std::unique_ptr<ChildProcess> process_;
  std::unique_ptr<Connection> connection_;
  int next_id_ = 1;
};

// `body` (JavaScript statements, may `await` and `return`) as an async function expression for
// Evaluate, with two helpers in scope:
//   sleep(ms)
//   waitFor(what, condition, ms = 15000): polls `condition()` until it is truthy and returns its
//     value; throws after `ms` with `what` and the start of the page's text, so a failure says
//     what the page showed.
std::string BrowserScript(std::string_view body);

}  // namespace discovery::testing
