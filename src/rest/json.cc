#include "rest/json.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

#include "common/format.h"

namespace discovery::rest {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
// Keeps keys in insertion order, so the rebuilt objects keep declaration order.
using OrderedJson = ::nlohmann::ordered_json;

// Well-known types (Timestamp, Duration, wrappers, Struct ...) have their own JSON forms,
// which protobuf's printer already produces; they are left as printed.
bool IsWellKnown(const Descriptor* descriptor) {
  return descriptor->file()->package() == "google.protobuf";
}

OrderedJson Canonical(OrderedJson printed, const Descriptor* descriptor);

// protobuf 3.21 prints map entries in hash order; protojson sorts them. Keys are sorted as
// strings, which is protojson's order for the string-keyed maps of our API.
OrderedJson SortedMap(OrderedJson printed, const FieldDescriptor* value_field) {
  if (!printed.is_object()) {
    return printed;
  }
  std::vector<std::pair<std::string, OrderedJson>> entries;
  entries.reserve(printed.size());
  for (auto it = printed.begin(); it != printed.end(); ++it) {
    entries.emplace_back(it.key(), std::move(it.value()));
  }
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  OrderedJson sorted = OrderedJson::object();
  for (auto& [key, value] : entries) {
    sorted.emplace(std::move(key), value_field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE
                                       ? Canonical(std::move(value), value_field->message_type())
                                       : std::move(value));
  }
  return sorted;
}

// Rebuilds the printer's rendering of a message in protojson's shape: fields in declaration
// order (protobuf 3.21 puts some later fields first) and unset message fields as null (the
// printer omits them; protojson with EmitUnpopulated writes null). Oneof members stay omitted
// in both.
OrderedJson Canonical(OrderedJson printed, const Descriptor* descriptor) {
  if (IsWellKnown(descriptor) || !printed.is_object()) {
    return printed;
  }
  OrderedJson rebuilt = OrderedJson::object();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    const std::string& key = field->json_name();
    const auto it = printed.find(key);
    const bool is_message = field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
    if (it == printed.end()) {
      if (is_message && !field->is_repeated() && field->containing_oneof() == nullptr) {
        rebuilt.emplace(key, nullptr);
      }
      continue;
    }
    OrderedJson value = std::move(*it);
    if (field->is_map()) {
      value = SortedMap(std::move(value), field->message_type()->map_value());
    } else if (is_message && field->is_repeated() && value.is_array()) {
      for (OrderedJson& element : value) {
        element = Canonical(std::move(element), field->message_type());
      }
    } else if (is_message) {
      value = Canonical(std::move(value), field->message_type());
    }
    rebuilt.emplace(key, std::move(value));
  }
  return rebuilt;
}

// What protobuf's parser says, first line only: later lines quote the body around the
// offending position, which is noise in an error message.
std::string Problem(std::string_view message) {
  message = message.substr(0, message.find('\n'));
  while (!message.empty() && (message.front() == ':' || message.front() == ' ')) {
    message.remove_prefix(1);
  }
  while (!message.empty() && message.back() == ' ') {
    message.remove_suffix(1);
  }
  return message.empty() ? "malformed JSON" : std::string{message};
}

// A header value may not hold control characters (CR/LF would split the header); non-ASCII is
// replaced too, as obs-text is read differently by different clients. The quotes and
// backslashes of a quoted-string are escaped.
std::string QuotedHeaderText(std::string_view text) {
  std::string quoted;
  quoted.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += c;
    } else if (byte < 0x20 || byte >= 0x7f) {
      quoted += '?';
    } else {
      quoted += c;
    }
  }
  return quoted;
}

}  // namespace

absl::StatusOr<std::string> MessageToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string printed;
  const auto status = google::protobuf::util::MessageToJsonString(message, &printed, options);
  if (!status.ok()) {
    return absl::InternalError(
        fmt::format("could not encode the response: {}", status.message().ToString()));
  }
  OrderedJson parsed = OrderedJson::parse(printed, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return absl::InternalError("could not encode the response: protobuf printed invalid JSON");
  }
  return Canonical(std::move(parsed), message.GetDescriptor())
      .dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
}

absl::Status JsonToMessage(std::string_view body, google::protobuf::Message* message) {
  message->Clear();
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return absl::OkStatus();
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(body.data(), body.size()), message, options);
  if (!status.ok()) {
    message->Clear();
    return absl::InvalidArgumentError(
        fmt::format("invalid request body: {}", Problem(status.message().ToString())));
  }
  return absl::OkStatus();
}

int HttpStatusFromCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:  // Unknown, Internal, DataLoss and numbers outside the enum.
      return 500;
  }
}

http::Response ErrorResponse(const absl::Status& status) {
  OrderedJson body = OrderedJson::object();
  body["code"] = static_cast<int>(status.code());
  body["message"] = ToStd(status.message());
  body["details"] = OrderedJson::array();
  http::Response response;
  response.status = HttpStatusFromCode(status.code());
  response.headers.emplace_back("Content-Type", "application/json");
  if (status.code() == absl::StatusCode::kUnauthenticated) {
    response.headers.emplace_back(
        "WWW-Authenticate", fmt::format(R"(Bearer error="invalid_token", error_description="{}")",
                                        QuotedHeaderText(ToStd(status.message()))));
  }
  response.body =
      body.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
  return response;
}

http::Response JsonResponse(std::string body) {
  http::Response response;
  response.headers.emplace_back("Content-Type", "application/json");
  response.body = std::move(body);
  return response;
}

}  // namespace discovery::rest
