// Fuzzes the decoding of REST requests (rest/json.h, rest/url.h): the JSON body of every POST
// becomes its proto request, the query string of every GET and DELETE becomes parameters.
// The first byte picks what the rest of the input is decoded as. Invariants:
//   - malformed input is InvalidArgument `invalid request body: ...` and leaves the message
//     empty;
//   - a decoded message prints (MessageToJson, the answer encoder) to JSON that decodes to an
//     equal message and prints identically again;
//   - the decoded fields go through the checks the handlers apply (endpoint, selector, labels,
//     names, token lifetime) without crashing, and a token lifetime round-trips through Go's
//     duration format;
//   - a parsed query, re-encoded, parses back to the same parameters.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "fuzz_check.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/message_differencer.h"

#include "common/go_duration.h"
#include "model/endpoint.h"
#include "model/model.h"
#include "postfinance/discovery/v1/namespace_api.pb.h"
#include "postfinance/discovery/v1/server_api.pb.h"
#include "postfinance/discovery/v1/service_api.pb.h"
#include "postfinance/discovery/v1/token_api.pb.h"
#include "rest/json.h"
#include "rest/url.h"
#include "selector/selector.h"

namespace {

namespace pb = ::postfinance::discovery::v1;
using ::discovery::fuzz::Check;
using ::google::protobuf::Message;

void CheckInvalidArgument(const absl::Status& status) {
  Check(status.code() == absl::StatusCode::kInvalidArgument, "errors are InvalidArgument",
        status.message());
}

// The checks RegisterService applies to a decoded request, in the order the registry does.
void CheckService(const pb::RegisterServiceRequest& request) {
  discovery::Labels labels(request.labels().begin(), request.labels().end());
  (void)discovery::ValidateLabels(labels);
  (void)discovery::ValidateServiceName(request.name());
  (void)discovery::ValidateNamespaceName(request.namespace_());
  (void)discovery::selector::Selector::Parse(request.selector());
  const absl::StatusOr<discovery::Endpoint> endpoint =
      discovery::Endpoint::Parse(request.endpoint());
  if (endpoint.ok()) {
    (void)discovery::Validate(discovery::Service{.id = discovery::ServiceId(endpoint->String()),
                                                 .name = request.name(),
                                                 .namespace_name = request.namespace_(),
                                                 .endpoint = endpoint->String(),
                                                 .selector = request.selector(),
                                                 .labels = std::move(labels),
                                                 .description = request.description()});
  }
}

// TokenAPI/Create: the lifetime is Go duration text, which FormatGoDuration must reproduce.
void CheckToken(const pb::CreateRequest& request) {
  for (const std::string& ns : request.namespaces()) {
    (void)discovery::ValidateNamespaceName(ns);
  }
  const absl::StatusOr<absl::Duration> expires = discovery::ParseGoDuration(request.expires());
  if (!expires.ok()) {
    CheckInvalidArgument(expires.status());
    return;
  }
  const std::string printed = discovery::FormatGoDuration(*expires);
  const absl::StatusOr<absl::Duration> reparsed = discovery::ParseGoDuration(printed);
  Check(reparsed.ok() && *reparsed == *expires, "FormatGoDuration parses back", printed);
}

void CheckServer(const pb::RegisterServerRequest& request) {
  (void)discovery::ValidateServerName(request.name());
  for (const auto& [key, value] : request.labels()) {
    (void)discovery::selector::ValidateLabelKey(key);
    (void)discovery::selector::ValidateLabelValue(value);
  }
}

void FuzzBody(std::string_view body, Message& message) {
  const absl::Status decoded = discovery::rest::JsonToMessage(body, &message);
  if (!decoded.ok()) {
    CheckInvalidArgument(decoded);
    Check(absl::StartsWith(decoded.message(), "invalid request body: "), "body errors are prefixed",
          decoded.message());
    Check(message.ByteSizeLong() == 0, "a failed decode leaves the message empty", body);
    return;
  }
  const absl::StatusOr<std::string> printed = discovery::rest::MessageToJson(message);
  Check(printed.ok(), "a decoded message prints", printed.status().message());
  const std::unique_ptr<Message> again(message.New());
  const absl::Status redecoded = discovery::rest::JsonToMessage(*printed, again.get());
  Check(redecoded.ok(), "printed JSON decodes", *printed);
  Check(google::protobuf::util::MessageDifferencer::Equals(message, *again),
        "printed JSON decodes to the same message", *printed);
  const absl::StatusOr<std::string> reprinted = discovery::rest::MessageToJson(*again);
  Check(reprinted.ok() && *reprinted == *printed, "printing is deterministic", *printed);
}

// Percent-encodes everything but unreserved characters, so that any bytes survive a query.
std::string QueryEscape(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string escaped;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(byte) || c == '-' || c == '_' || c == '.' || c == '~') {
      escaped += c;
    } else {
      escaped += '%';
      escaped += kHex[byte >> 4];
      escaped += kHex[byte & 0xf];
    }
  }
  return escaped;
}

void FuzzUrl(std::string_view text) {
  (void)discovery::rest::PathSegments(text);
  const absl::StatusOr<discovery::rest::QueryParams> query = discovery::rest::ParseQuery(text);
  if (!query.ok()) {
    CheckInvalidArgument(query.status());
    return;
  }
  std::string encoded;
  for (const auto& [name, value] : *query) {
    encoded += encoded.empty() ? "" : "&";
    encoded += QueryEscape(name) + "=" + QueryEscape(value);
  }
  const absl::StatusOr<discovery::rest::QueryParams> reparsed =
      discovery::rest::ParseQuery(encoded);
  Check(reparsed.ok() && *reparsed == *query, "a re-encoded query parses back", encoded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  // Digits, so that the seed files stay readable: "2{\"name\":...}".
  switch (data[0] % 8) {
    case 0: {
      pb::RegisterNamespaceRequest request;
      FuzzBody(input, request);
      (void)discovery::ValidateNamespaceName(request.name());
      break;
    }
    case 1: {
      pb::RegisterServerRequest request;
      FuzzBody(input, request);
      CheckServer(request);
      break;
    }
    case 2: {
      pb::RegisterServiceRequest request;
      FuzzBody(input, request);
      CheckService(request);
      break;
    }
    case 3: {
      pb::CreateRequest request;
      FuzzBody(input, request);
      CheckToken(request);
      break;
    }
    // The answers' shapes: Timestamps, int64 as strings, nested and repeated messages.
    case 4: {
      pb::ListServiceResponse response;
      FuzzBody(input, response);
      break;
    }
    case 5: {
      pb::ListServerResponse response;
      FuzzBody(input, response);
      break;
    }
    case 6: {
      pb::InfoResponse response;
      FuzzBody(input, response);
      break;
    }
    default:
      FuzzUrl(input);
      break;
  }
  return 0;
}
