#include "http_client/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fmt/format.h"

#include "common/file.h"
#include "common/format.h"
#include "common/status_macros.h"

namespace discovery::http_client {
namespace {

// libcurl's options and infos take and give long.
using CurlLong = long;  // NOLINT(google-runtime-int)

// Debian's bundle of the system's trusted CAs (package ca-certificates), which libcurl uses by
// default; needed explicitly when an extra CA file is combined with it.
constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";

// curl_global_init is not thread-safe and must run before any other libcurl call.
CURLcode GlobalInit() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  return result;
}

struct EasyDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

// What the callbacks collect while the transfer runs.
struct Transfer {
  Response response;
  bool too_large = false;
};

std::size_t OnBody(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  if (transfer->response.body.size() + n > kMaxResponseBytes) {
    transfer->too_large = true;
    return 0;  // Anything but n aborts the transfer with CURLE_WRITE_ERROR.
  }
  transfer->response.body.append(data, n);
  return n;
}

std::string_view Trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  const std::size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) {
    return {};
  }
  return text.substr(begin, text.find_last_not_of(kSpace) - begin + 1);
}

std::size_t OnHeader(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  const std::string_view line(data, n);
  if (line.starts_with("HTTP/")) {
    // A new status line: headers of an interim response (100 Continue) are not the answer's.
    transfer->response.headers.clear();
    return n;
  }
  const std::size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    transfer->response.headers.emplace_back(std::string(Trim(line.substr(0, colon))),
                                            std::string(Trim(line.substr(colon + 1))));
  }
  return n;
}

absl::StatusOr<std::string> ReadCaFile(const std::string& path) {
  absl::StatusOr<std::string> content = ReadFile(path, {.what = "CA certificates"});
  if (!content.ok()) {
    return absl::InvalidArgumentError(content.status().message());
  }
  return content;
}

// The system's CAs followed by those of `extra`: CURLOPT_CAINFO names only one file.
absl::StatusOr<std::string> CaBundle(const std::string& extra) {
  DISCOVERY_ASSIGN_OR_RETURN(std::string added, ReadCaFile(extra));
  absl::StatusOr<std::string> system = ReadCaFile(kSystemCaBundle);
  // Without a system bundle (a minimal container) the extra file alone is still useful.
  std::string bundle = system.ok() ? *std::move(system) : std::string();
  if (!bundle.empty() && bundle.back() != '\n') {
    bundle += '\n';
  }
  bundle += added;
  return bundle;
}

absl::StatusCode CodeOf(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return absl::StatusCode::kDeadlineExceeded;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_BAD_FUNCTION_ARGUMENT:
      return absl::StatusCode::kInvalidArgument;
    default:
      return absl::StatusCode::kUnavailable;
  }
}

// Collects the first failing curl_easy_setopt so that Send checks once.
class Options {
 public:
  explicit Options(CURL* curl) : curl_(curl) {}

  template <typename T>
  void Set(CURLoption option, T value) {
    if (result_ == CURLE_OK) {
      result_ = curl_easy_setopt(curl_, option, value);
    }
  }
  CURLcode result() const { return result_; }

 private:
  CURL* curl_;
  CURLcode result_ = CURLE_OK;
};

}  // namespace

absl::StatusOr<Response> Send(const Request& request) {
  const std::string what = fmt::format("{} {}", request.method, request.url);
  if (const CURLcode init = GlobalInit(); init != CURLE_OK) {
    return absl::InternalError(
        fmt::format("{}: curl_global_init failed: {}", what, curl_easy_strerror(init)));
  }
  std::unique_ptr<CURL, EasyDeleter> curl(curl_easy_init());
  if (curl == nullptr) {
    return absl::InternalError(fmt::format("{}: curl_easy_init failed", what));
  }
  std::string ca_bundle;
  if (!request.ca_cert_file.empty()) {
    absl::StatusOr<std::string> bundle = CaBundle(request.ca_cert_file);
    if (!bundle.ok()) {
      return absl::Status(bundle.status().code(),
                          fmt::format("{}: {}", what, bundle.status().message()));
    }
    ca_bundle = *std::move(bundle);
  }

  std::unique_ptr<curl_slist, SlistDeleter> headers;
  auto add_header = [&headers](const std::string& line) {
    curl_slist* list = curl_slist_append(headers.get(), line.c_str());
    if (list != nullptr) {
      static_cast<void>(headers.release());
      headers.reset(list);
    }
    return list != nullptr;
  };
  for (const auto& [name, value] : request.headers) {
    // "Name;" is libcurl's spelling of a header with an empty value ("Name:" would remove it).
    if (!add_header(value.empty() ? name + ";" : fmt::format("{}: {}", name, value))) {
      return absl::InternalError(fmt::format("{}: out of memory", what));
    }
  }
  // No "Expect: 100-continue" round trip for larger bodies.
  if (!add_header("Expect:")) {
    return absl::InternalError(fmt::format("{}: out of memory", what));
  }

  Transfer transfer;
  std::array<char, CURL_ERROR_SIZE> error{};
  const auto timeout_ms =
      static_cast<CurlLong>(std::max<std::int64_t>(1, absl::ToInt64Milliseconds(request.timeout)));

  Options options(curl.get());
  options.Set(CURLOPT_URL, request.url.c_str());
  options.Set(CURLOPT_PROTOCOLS_STR, "http,https");
  options.Set(CURLOPT_FOLLOWLOCATION, CurlLong{0});
  // Signals (for DNS timeouts) are process-wide and unsafe with threads.
  options.Set(CURLOPT_NOSIGNAL, CurlLong{1});
  options.Set(CURLOPT_TIMEOUT_MS, timeout_ms);
  options.Set(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  options.Set(CURLOPT_ERRORBUFFER, error.data());
  options.Set(CURLOPT_WRITEFUNCTION, &OnBody);
  options.Set(CURLOPT_WRITEDATA, &transfer);
  options.Set(CURLOPT_HEADERFUNCTION, &OnHeader);
  options.Set(CURLOPT_HEADERDATA, &transfer);
  options.Set(CURLOPT_HTTPHEADER, headers.get());
  // Decline to download bodies that announce themselves as too large.
  options.Set(CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(kMaxResponseBytes));
  if (request.method == "HEAD") {
    options.Set(CURLOPT_NOBODY, CurlLong{1});
  } else if (!request.body.empty() || request.method == "POST") {
    options.Set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    options.Set(CURLOPT_POSTFIELDS, request.body.c_str());
    if (request.method != "POST") {
      options.Set(CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
  } else if (request.method != "GET") {
    options.Set(CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  if (request.basic_auth.has_value()) {
    options.Set(CURLOPT_HTTPAUTH, static_cast<CurlLong>(CURLAUTH_BASIC));
    options.Set(CURLOPT_USERNAME, request.basic_auth->first.c_str());
    options.Set(CURLOPT_PASSWORD, request.basic_auth->second.c_str());
  }
  if (!ca_bundle.empty()) {
    curl_blob blob{.data = ca_bundle.data(), .len = ca_bundle.size(), .flags = CURL_BLOB_COPY};
    options.Set(CURLOPT_CAINFO_BLOB, &blob);
  }
  if (options.result() != CURLE_OK) {
    return absl::InternalError(fmt::format("{}: configuring libcurl failed: {}", what,
                                           curl_easy_strerror(options.result())));
  }

  const CURLcode code = curl_easy_perform(curl.get());
  if (transfer.too_large || code == CURLE_FILESIZE_EXCEEDED) {
    return absl::ResourceExhaustedError(
        fmt::format("{}: the response is larger than {} bytes", what, kMaxResponseBytes));
  }
  if (code != CURLE_OK) {
    const std::string_view detail = error[0] != '\0' ? error.data() : curl_easy_strerror(code);
    return absl::Status(CodeOf(code), fmt::format("{}: {}", what, detail));
  }
  CurlLong status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  transfer.response.status = static_cast<int>(status);
  return std::move(transfer.response);
}

std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields) {
  constexpr std::string_view kHex = "0123456789ABCDEF";
  std::string out;
  auto escape = [&out, kHex](std::string_view text) {
    for (const char c : text) {
      const auto byte = static_cast<unsigned char>(c);
      if ((byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') ||
          (byte >= '0' && byte <= '9') || c == '-' || c == '.' || c == '_' || c == '~') {
        out += c;
      } else {
        out += '%';
        out += kHex[byte >> 4];
        out += kHex[byte & 0x0F];
      }
    }
  };
  for (const auto& [name, value] : fields) {
    if (!out.empty()) {
      out += '&';
    }
    escape(name);
    out += '=';
    escape(value);
  }
  return out;
}

}  // namespace discovery::http_client
