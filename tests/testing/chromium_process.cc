#include "testing/chromium_process.h"

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/websocket.hpp"

#include "testing/http_client.h"

namespace discovery::testing {
namespace {

namespace asio = ::boost::asio;
namespace beast = ::boost::beast;
namespace websocket = ::boost::beast::websocket;
using Json = ::nlohmann::json;

// The port Chromium wrote to <profile>/DevToolsActivePort; 0 while it has not.
int DevToolsPort(const std::string& profile) {
  std::ifstream file(profile + "/DevToolsActivePort");
  std::string line;
  int port = 0;
  if (std::getline(file, line) && absl::SimpleAtoi(line, &port)) {
    return port;
  }
  return 0;
}

}  // namespace

struct ChromiumProcess::Connection {
  asio::io_context io;
  websocket::stream<beast::tcp_stream> ws{io};

  // Runs the asynchronous operation `start` begins until it completes or `timeout` passes; on
  // timeout the socket is closed, which ends the operation.
  template <typename Start>
  absl::Status RunFor(absl::Duration timeout, const std::string& what, Start start) {
    bool done = false;
    beast::error_code result;
    start([&](beast::error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    io.restart();
    io.run_for(std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)));
    if (!done) {
      beast::error_code ignored;
      beast::get_lowest_layer(ws).socket().close(ignored);
      io.restart();
      io.run();
      return absl::DeadlineExceededError(
          absl::StrCat(what, ": no answer within ", absl::FormatDuration(timeout)));
    }
    if (result) {
      return absl::UnavailableError(absl::StrCat(what, ": ", result.message()));
    }
    return absl::OkStatus();
  }
};

ChromiumProcess::ChromiumProcess() = default;

ChromiumProcess::~ChromiumProcess() {
  connection_.reset();
  if (process_ != nullptr) {
    // SIGTERM lets Chromium take its helper processes down with it.
    (void)process_->Terminate(absl::Seconds(5));
  }
  std::error_code ignored;
  std::filesystem::remove_all(root_, ignored);
}

absl::StatusOr<std::unique_ptr<ChromiumProcess>> ChromiumProcess::Start(const std::string& url,
                                                                        ChromiumOptions options) {
  const absl::Time deadline = absl::Now() + options.start_timeout;
  std::unique_ptr<ChromiumProcess> chromium(new ChromiumProcess());
  absl::StatusOr<std::string> root = MakeTempDir("discovery-chromium");
  if (!root.ok()) {
    return root.status();
  }
  chromium->root_ = *root;
  const std::string profile = *root + "/profile";
  std::filesystem::create_directories(profile);
  Command command{
      .argv = {options.binary, "--headless=new", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
               "--disable-extensions", "--disable-background-networking", "--disable-sync",
               "--metrics-recording-only", "--mute-audio", "--window-size=1280,2000",
               "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
               "--user-data-dir=" + profile, url},
      // A home of its own, so nothing of the developer's profile or config is read, and a
      // TMPDIR of its own: Chromium leaves its singleton directories there when terminated.
      .env = {"HOME=" + *root, "TMPDIR=" + *root},
  };
  absl::StatusOr<std::unique_ptr<ChildProcess>> process =
      ChildProcess::Start(command, *root + "/chromium.log");
  if (!process.ok()) {
    return process.status();
  }
  chromium->process_ = *std::move(process);
  absl::Status status = chromium->Connect(deadline);
  if (status.ok()) {
    status = chromium->WaitForPage(url, deadline);
  }
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "chromium: ", status.message(), "\n--- chromium log tail ---\n", chromium->LogTail()));
  }
  return chromium;
}

absl::Status ChromiumProcess::Connect(absl::Time deadline) {
  const std::string profile = root_ + "/profile";
  // The page: /json/list names its WebSocket once the DevTools server is up and the page exists.
  std::string websocket_url;
  std::string last_problem = "DevToolsActivePort not written";
  while (websocket_url.empty()) {
    if (!process_->IsRunning()) {
      return absl::UnavailableError(
          absl::StrCat("exited (", process_->exit_status()->ToString(), ")"));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("no DevTools page: ", last_problem));
    }
    absl::SleepFor(absl::Milliseconds(100));
    const int port = DevToolsPort(profile);
    if (port == 0) {
      continue;
    }
    absl::StatusOr<HttpResult> list =
        HttpGet(absl::StrCat("http://127.0.0.1:", port, "/json/list"), absl::Seconds(2));
    if (!list.ok() || list->status != 200) {
      last_problem = list.ok() ? list->body : std::string{list.status().message()};
      continue;
    }
    const Json pages = Json::parse(list->body, nullptr, /*allow_exceptions=*/false);
    last_problem = "no page in " + list->body;
    if (!pages.is_array()) {
      continue;
    }
    for (const Json& page : pages) {
      if (page.value("type", "") == "page" && page.contains("webSocketDebuggerUrl")) {
        websocket_url = page["webSocketDebuggerUrl"].get<std::string>();
      }
    }
  }
  // ws://127.0.0.1:PORT/devtools/page/ID
  const std::string rest = websocket_url.substr(websocket_url.find("://") + 3);
  const std::string host_port = rest.substr(0, rest.find('/'));
  const std::string target = rest.substr(rest.find('/'));
  const std::string host = host_port.substr(0, host_port.rfind(':'));
  int port = 0;
  if (!absl::SimpleAtoi(host_port.substr(host_port.rfind(':') + 1), &port)) {
    return absl::InternalError("malformed DevTools URL " + websocket_url);
  }
  connection_ = std::make_unique<Connection>();
  Connection& c = *connection_;
  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(host), static_cast<uint16_t>(port));
  const absl::Duration left = std::max(deadline - absl::Now(), absl::Seconds(1));
  if (absl::Status status = c.RunFor(
          left, "connect to " + websocket_url,
          [&](auto handler) { beast::get_lowest_layer(c.ws).async_connect(endpoint, handler); });
      !status.ok()) {
    return status;
  }
  c.ws.read_message_max(64 << 20);
  return c.RunFor(left, "WebSocket handshake with " + websocket_url,
                  [&](auto handler) { c.ws.async_handshake(host_port, target, handler); });
}

absl::Status ChromiumProcess::WaitForPage(const std::string& url, absl::Time deadline) {
  // The page may still be on about:blank or loading; an evaluation in a context that a
  // navigation replaces fails, so this polls until `url` has loaded.
  const std::string wanted = url + " complete";
  std::string last = "nothing";
  while (absl::Now() < deadline) {
    absl::StatusOr<Json> state =
        Evaluate("location.href + ' ' + document.readyState", absl::Seconds(5));
    if (state.ok() && *state == Json(wanted)) {
      return absl::OkStatus();
    }
    last = state.ok() ? state->dump() : state.status().ToString();
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("page did not load ", url, "; last state: ", last));
}

absl::StatusOr<Json> ChromiumProcess::Call(const std::string& method, Json params,
                                           absl::Duration timeout) {
  if (connection_ == nullptr) {
    return absl::FailedPreconditionError("not connected");
  }
  Connection& c = *connection_;
  const absl::Time deadline = absl::Now() + timeout;
  const int id = next_id_++;
  const std::string request =
      Json{{"id", id}, {"method", method}, {"params", std::move(params)}}.dump();
  if (absl::Status status = c.RunFor(
          timeout, method, [&](auto handler) { c.ws.async_write(asio::buffer(request), handler); });
      !status.ok()) {
    return status;
  }
  while (true) {
    beast::flat_buffer buffer;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(method + ": no answer in time");
    }
    if (absl::Status status =
            c.RunFor(left, method, [&](auto handler) { c.ws.async_read(buffer, handler); });
        !status.ok()) {
      return status;
    }
    const Json message =
        Json::parse(beast::buffers_to_string(buffer.data()), nullptr, /*allow_exceptions=*/false);
    if (!message.is_object() || message.value("id", -1) != id) {
      continue;  // an event, or the answer to an earlier, timed-out command
    }
    if (message.contains("error")) {
      return absl::InternalError(absl::StrCat(method, ": ", message["error"].dump()));
    }
    return message.value("result", Json::object());
  }
}

absl::StatusOr<Json> ChromiumProcess::Evaluate(const std::string& expression,
                                               absl::Duration timeout) {
  absl::StatusOr<Json> result = Call("Runtime.evaluate",
                                     {{"expression", expression},
                                      {"awaitPromise", true},
                                      {"returnByValue", true},
                                      {"userGesture", true}},
                                     timeout);
  if (!result.ok()) {
    return result.status();
  }
  if (result->contains("exceptionDetails")) {
    const Json& details = (*result)["exceptionDetails"];
    std::string text = details.value("text", "exception");
    if (details.contains("exception")) {
      text += ": " + details["exception"].value("description",
                                                details["exception"].value("value", Json()).dump());
    }
    return absl::InternalError(text);
  }
  return result->value("result", Json::object()).value("value", Json());
}

absl::Status ChromiumProcess::Navigate(const std::string& url, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<Json> navigated = Call("Page.navigate", {{"url", url}}, timeout);
  if (!navigated.ok()) {
    return navigated.status();
  }
  if (navigated->contains("errorText")) {
    return absl::UnavailableError(
        absl::StrCat("navigating to ", url, ": ", (*navigated)["errorText"].dump()));
  }
  return WaitForPage(url, deadline);
}

absl::Status ChromiumProcess::PressKey(std::string_view key, bool shift) {
  struct KeyCode {
    std::string_view key;
    std::string_view code;
    int virtual_code;
    std::string_view text;
  };
  static constexpr std::array<KeyCode, 6> kKeys = {{
      {"Tab", "Tab", 9, ""},
      {"Enter", "Enter", 13, "\r"},
      {" ", "Space", 32, " "},
      {"Escape", "Escape", 27, ""},
      {"ArrowDown", "ArrowDown", 40, ""},
      {"ArrowUp", "ArrowUp", 38, ""},
  }};
  const KeyCode* found = nullptr;
  for (const KeyCode& candidate : kKeys) {
    if (candidate.key == key) {
      found = &candidate;
    }
  }
  if (found == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("no key code for \"", std::string(key), "\""));
  }
  Json down = {{"type", found->text.empty() ? "rawKeyDown" : "keyDown"},
               {"key", found->key},
               {"code", found->code},
               {"windowsVirtualKeyCode", found->virtual_code},
               {"nativeVirtualKeyCode", found->virtual_code},
               {"modifiers", shift ? 8 : 0}};
  if (!found->text.empty()) {
    down["text"] = found->text;
    down["unmodifiedText"] = found->text;
  }
  if (absl::StatusOr<Json> result = Call("Input.dispatchKeyEvent", down); !result.ok()) {
    return result.status();
  }
  Json up = {{"type", "keyUp"},
             {"key", found->key},
             {"code", found->code},
             {"windowsVirtualKeyCode", found->virtual_code},
             {"nativeVirtualKeyCode", found->virtual_code},
             {"modifiers", shift ? 8 : 0}};
  return Call("Input.dispatchKeyEvent", up).status();
}

absl::Status ChromiumProcess::Type(const std::string& text) {
  return Call("Input.insertText", {{"text", text}}).status();
}

absl::Status ChromiumProcess::Screenshot(const std::string& path) {
  // The page's content, not the window: a short page is not padded to the window's height.
  absl::StatusOr<Json> size = Evaluate(
      "[document.documentElement.scrollWidth, Math.ceil(Math.max(1, "
      "document.body.getBoundingClientRect().bottom + window.scrollY + 8))]");
  if (!size.ok()) {
    return size.status();
  }
  absl::StatusOr<Json> shot = Call(
      "Page.captureScreenshot",
      {{"format", "png"},
       {"captureBeyondViewport", true},
       {"clip", {{"x", 0}, {"y", 0}, {"width", (*size)[0]}, {"height", (*size)[1]}, {"scale", 1}}}},
      absl::Seconds(30));
  if (!shot.ok()) {
    return shot.status();
  }
  std::string png;
  if (!absl::Base64Unescape(shot->value("data", ""), &png) || png.empty()) {
    return absl::InternalError("Page.captureScreenshot answered no PNG");
  }
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << png;
  file.close();
  if (!file) {
    return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

std::string BrowserScript(std::string_view body) {
  static constexpr std::string_view kPrelude = R"js(
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const waitFor = async (what, condition, ms = 15000) => {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = condition();
    if (value) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}; page text: ` +
                      document.body.innerText.slice(0, 600));
    }
    await sleep(50);
  }
};
)js";
  return absl::StrCat("(async () => {", std::string(kPrelude), std::string(body), "})()");
}

std::string ChromiumProcess::LogTail(int lines) const {
  if (process_ == nullptr) {
    return "";
  }
  // Without a D-Bus (containers, CI) Chromium logs a complaint per attempt; they say nothing.
  std::vector<std::string> kept;
  std::istringstream log(process_->LogTail(lines * 10));
  for (std::string line; std::getline(log, line);) {
    if (line.find(":ERROR:dbus/") == std::string::npos) {
      kept.push_back(std::move(line));
    }
  }
  const size_t from = kept.size() > static_cast<size_t>(lines) ? kept.size() - lines : 0;
  return absl::StrJoin(kept.begin() + static_cast<std::ptrdiff_t>(from), kept.end(), "\n");
}

}  // namespace discovery::testing
