#include "rest/json.h"

#include <algorithm>
#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

#include "common/format.h"
#include "common/status_macros.h"

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

// What protojson's EmitUnpopulated writes for a field that is not set (protobuf's printer omits
// it): [] and {} for lists and maps, null for a message, the zero of a scalar (64-bit integers
// are strings in JSON), an enum's first value by name.
OrderedJson Unpopulated(const FieldDescriptor& field) {
  if (field.is_map()) {
    return OrderedJson::object();
  }
  if (field.is_repeated()) {
    return OrderedJson::array();
  }
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return nullptr;
    case FieldDescriptor::CPPTYPE_STRING:
      return "";
    case FieldDescriptor::CPPTYPE_BOOL:
      return false;
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT64:
      return "0";
    case FieldDescriptor::CPPTYPE_ENUM:
      return field.default_value_enum()->name();
    default:
      return 0;
  }
}

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
// order (protobuf 3.21 puts some later fields first) and every unset field as protojson with
// EmitUnpopulated writes it. The printer omits unset fields: its option to print the scalar ones
// builds a tree of every message first, which was a third of the time of a list's answer. Oneof
// members stay omitted in both.
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
      if (field->containing_oneof() == nullptr) {
        rebuilt.emplace(key, Unpopulated(*field));
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

// The requests of the API nest two levels at most ({"labels":{"k":"v"}}); anything deeper is
// refused before a parser that recurses gets to see it.
constexpr int kMaxJsonDepth = 32;
// Parser messages quote the offending token, which may be most of the body.
constexpr size_t kMaxProblemLength = 200;

std::string Shortened(std::string text) {
  if (text.size() > kMaxProblemLength) {
    text.resize(kMaxProblemLength);
    text += "...";
  }
  return text;
}

// Checks RFC 8259 syntax strictly (protobuf 3.21's parser accepts single quotes, bare keys,
// trailing commas and raw control characters), nesting depth and duplicate keys (protojson,
// which the original used, refuses them; protobuf lets the last one win or merges them) in one
// pass, without building anything. The first problem found stops the parse.
class StrictJsonChecker {
 public:
  using Json = ::nlohmann::json;

  const std::string& problem() const { return problem_; }

  // Values need no checking; nlohmann calls these through the pointer, static or not.
  static bool null() { return true; }
  static bool boolean(bool /*value*/) { return true; }
  static bool number_integer(Json::number_integer_t /*value*/) { return true; }
  static bool number_unsigned(Json::number_unsigned_t /*value*/) { return true; }
  static bool number_float(Json::number_float_t /*value*/, const Json::string_t& /*text*/) {
    return true;
  }
  static bool string(Json::string_t& /*value*/) { return true; }
  static bool binary(Json::binary_t& /*value*/) { return true; }

  bool start_object(std::size_t /*elements*/) {
    object_keys_.emplace_back();
    return Enter();
  }
  bool key(Json::string_t& key) {
    if (!object_keys_.back().insert(key).second) {
      problem_ = Shortened(fmt::format("duplicate field \"{}\"", key));
      return false;
    }
    return true;
  }
  bool end_object() {
    object_keys_.pop_back();
    --depth_;
    return true;
  }
  bool start_array(std::size_t /*elements*/) { return Enter(); }
  bool end_array() {
    --depth_;
    return true;
  }

  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& error) {
    // "[json.exception.parse_error.101] parse error at line 1, column 9: syntax error while
    // parsing value - invalid literal; last read: '<token>'": the id is noise and the token
    // may be huge, the position and the reason are what a client needs.
    std::string_view text = error.what();
    if (const size_t id_end = text.find("] ");
        text.starts_with("[json.exception.") && id_end != std::string_view::npos) {
      text.remove_prefix(id_end + 2);
    }
    text = text.substr(0, text.find("; last read:"));
    problem_ = Shortened(std::string{text});
    return false;
  }

 private:
  bool Enter() {
    if (++depth_ > kMaxJsonDepth) {
      problem_ = fmt::format("JSON nested deeper than {} levels", kMaxJsonDepth);
      return false;
    }
    return true;
  }

  int depth_ = 0;
  // std::set, not a hash set: a body crafted for hash collisions cannot make it quadratic.
  std::vector<std::set<std::string>> object_keys_;
  std::string problem_;
};

std::string_view JsonTypeName(const nlohmann::json& value) {
  return value.is_boolean()  ? "a boolean"
         : value.is_number() ? "a number"
         : value.is_string() ? "a string"
         : value.is_array()  ? "an array"
         : value.is_object() ? "an object"
                             : "null";
}

std::string ShapeProblem(const nlohmann::json& value, const Descriptor* descriptor,
                         const std::string& path);

// The field of `descriptor` that protobuf's parser binds `key` to: by proto name or JSON name.
const FieldDescriptor* FieldNamed(const Descriptor* descriptor, const std::string& key) {
  if (const FieldDescriptor* field = descriptor->FindFieldByName(key); field != nullptr) {
    return field;
  }
  for (int i = 0; i < descriptor->field_count(); ++i) {
    if (descriptor->field(i)->json_name() == key) {
      return descriptor->field(i);
    }
  }
  return nullptr;
}

// A field value that is not a list or a map. Scalars are left to protobuf, which names the
// field and the value it cannot convert.
std::string SingularProblem(const nlohmann::json& value, const FieldDescriptor* field,
                            const std::string& path) {
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    return IsWellKnown(field->message_type()) ? ""
                                              : ShapeProblem(value, field->message_type(), path);
  }
  if (value.is_array() || value.is_object()) {
    return fmt::format("field \"{}\": want a single value, got {}", path, JsonTypeName(value));
  }
  return "";
}

// What protobuf 3.21's parser would wrongly accept about the JSON types of the fields of
// `descriptor` in `value`: it binds a scalar to a list ("namespaces":"a" as ["a"]), flattens
// nested lists ([["a"]] as ["a"]) and reads a field given under both its names twice. protojson
// refuses all of them. Returns "" when there is nothing to say; unknown fields are not looked at.
std::string ShapeProblem(const nlohmann::json& value, const Descriptor* descriptor,
                         const std::string& path) {
  if (value.is_null()) {
    return "";
  }
  if (!value.is_object()) {
    return path.empty()
               ? fmt::format("want a JSON object, got {}", JsonTypeName(value))
               : fmt::format("field \"{}\": want an object, got {}", path, JsonTypeName(value));
  }
  std::set<const FieldDescriptor*> seen;
  for (const auto& [key, member] : value.items()) {
    const FieldDescriptor* field = FieldNamed(descriptor, key);
    if (field == nullptr) {
      continue;
    }
    const std::string field_path = path.empty() ? key : fmt::format("{}.{}", path, key);
    if (!seen.insert(field).second) {
      return fmt::format("duplicate field \"{}\"", field_path);
    }
    if (member.is_null()) {
      continue;
    }
    std::string problem;
    if (field->is_map()) {
      if (!member.is_object()) {
        return fmt::format("field \"{}\": want an object, got {}", field_path,
                           JsonTypeName(member));
      }
      const FieldDescriptor* value_field = field->message_type()->map_value();
      for (const auto& [map_key, map_value] : member.items()) {
        problem =
            SingularProblem(map_value, value_field, fmt::format("{}.{}", field_path, map_key));
        if (!problem.empty()) {
          return problem;
        }
      }
    } else if (field->is_repeated()) {
      if (!member.is_array()) {
        return fmt::format("field \"{}\": want an array, got {}", field_path, JsonTypeName(member));
      }
      for (size_t i = 0; i < member.size() && problem.empty(); ++i) {
        problem = SingularProblem(member[i], field, fmt::format("{}[{}]", field_path, i));
      }
    } else {
      problem = SingularProblem(member, field, field_path);
    }
    if (!problem.empty()) {
      return Shortened(std::move(problem));
    }
  }
  return "";
}

}  // namespace

namespace json_internal {

absl::StatusOr<std::string> MessageToJsonAtOnce(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
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

}  // namespace json_internal

namespace {

// Whether `descriptor` is that of a list answer, which MessageToJson prints an element at a time.
bool IsListAnswer(const Descriptor& descriptor) {
  if (descriptor.field_count() == 0 || IsWellKnown(&descriptor)) {
    return false;
  }
  for (int i = 0; i < descriptor.field_count(); ++i) {
    const FieldDescriptor* field = descriptor.field(i);
    if (!field->is_repeated() || field->is_map() ||
        field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      return false;
    }
  }
  return true;
}

}  // namespace

ListJsonWriter::ListJsonWriter(const Descriptor& list) : list_(list) {}

void ListJsonWriter::OpenNextField() {
  if (field_ >= 0) {
    json_ += "],";
  }
  ++field_;
  json_ += OrderedJson(list_.field(field_)->json_name()).dump();
  json_ += ":[";
  field_empty_ = true;
}

absl::Status ListJsonWriter::Append(const google::protobuf::Message& part) {
  if (part.GetDescriptor() != &list_) {
    return absl::InternalError(fmt::format("could not encode the response: a {} in a list of {}",
                                           part.GetDescriptor()->full_name(), list_.full_name()));
  }
  const google::protobuf::Reflection& reflection = *part.GetReflection();
  for (int i = 0; i < list_.field_count(); ++i) {
    const FieldDescriptor* field = list_.field(i);
    const int size = reflection.FieldSize(part, field);
    if (size == 0) {
      continue;
    }
    if (i < field_) {
      return absl::InternalError(
          fmt::format("could not encode the response: elements of {} after those of a later field",
                      field->name()));
    }
    while (field_ < i) {
      OpenNextField();
    }
    for (int j = 0; j < size; ++j) {
      DISCOVERY_ASSIGN_OR_RETURN(
          const std::string element,
          json_internal::MessageToJsonAtOnce(reflection.GetRepeatedMessage(part, field, j)));
      if (!field_empty_) {
        json_ += ',';
      }
      json_ += element;
      field_empty_ = false;
    }
  }
  return absl::OkStatus();
}

std::string ListJsonWriter::Finish() && {
  while (field_ + 1 < list_.field_count()) {
    OpenNextField();
  }
  json_ += "]}";
  return std::move(json_);
}

// A list answer is printed an element at a time and joined as the whole message would print.
// Printed at once, a list of a million services (307 MB of JSON) took 42 s and 7 GB of memory
// beyond the list itself, in the printer's output re-read into a document to put its fields in
// order.
absl::StatusOr<std::string> MessageToJson(const google::protobuf::Message& message) {
  const Descriptor& descriptor = *message.GetDescriptor();
  if (!IsListAnswer(descriptor)) {
    return json_internal::MessageToJsonAtOnce(message);
  }
  ListJsonWriter writer(descriptor);
  DISCOVERY_RETURN_IF_ERROR(writer.Append(message));
  return std::move(writer).Finish();
}

absl::Status JsonToMessage(std::string_view body, google::protobuf::Message* message) {
  message->Clear();
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return absl::OkStatus();
  }
  const auto invalid = [](std::string_view problem) {
    return absl::InvalidArgumentError(fmt::format("invalid request body: {}", problem));
  };
  // nlohmann's lexer takes a NUL byte for the end of the input, so it would not look past one.
  // JSON has no place for a raw NUL, not even in a string.
  if (const size_t nul = body.find('\0'); nul != std::string_view::npos) {
    return invalid(fmt::format("NUL byte at offset {} (JSON needs \\u0000 in a string)", nul));
  }
  StrictJsonChecker checker;
  if (!nlohmann::json::sax_parse(body, &checker)) {
    return invalid(checker.problem().empty() ? "malformed JSON" : checker.problem());
  }
  // Safe to build now: the checker bounded its depth.
  const nlohmann::json parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return invalid("malformed JSON");
  }
  if (std::string problem = ShapeProblem(parsed, message->GetDescriptor(), ""); !problem.empty()) {
    return invalid(problem);
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(body.data(), body.size()), message, options);
  if (!status.ok()) {
    message->Clear();
    return invalid(Problem(status.message().ToString()));
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

http::Response TransportErrorResponse(int status, std::string_view message) {
  absl::StatusCode code = absl::StatusCode::kUnknown;
  if (status == 400) {
    code = absl::StatusCode::kInvalidArgument;
  } else if (status == 413 || status == 431 || status == 429) {
    code = absl::StatusCode::kResourceExhausted;
  } else if (status == 503) {
    code = absl::StatusCode::kUnavailable;
  }
  http::Response response = ErrorResponse(absl::Status(code, ToAbsl(message)));
  response.status = status;
  return response;
}

http::Response JsonResponse(std::string body) {
  http::Response response;
  response.headers.emplace_back("Content-Type", "application/json");
  response.body = std::move(body);
  return response;
}

}  // namespace discovery::rest
