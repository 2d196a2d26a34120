#include "rest/call.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "fmt/format.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

#include "common/format.h"
#include "hash/fnv1a.h"
#include "rest/rest_api.h"

namespace discovery::rest {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;

// Skips the optional weakness indicator: If-None-Match compares weakly (RFC 9110 §13.1.2).
std::string_view Opaque(std::string_view tag) {
  return tag.starts_with("W/") ? tag.substr(2) : tag;
}

}  // namespace

std::vector<std::string_view> QueryValues(const QueryParams& query, std::string_view name) {
  std::vector<std::string_view> values;
  for (const auto& [key, value] : query) {
    if (key == name) {
      values.push_back(value);
    }
  }
  return values;
}

absl::Status TooManyValues(std::string_view field, const std::vector<std::string_view>& values) {
  std::string joined;
  for (const std::string_view value : values) {
    joined += joined.empty() ? "" : ", ";
    joined += value;
  }
  return absl::InvalidArgumentError(
      fmt::format("too many values for field \"{}\": {}", field, joined));
}

absl::Status FillFromUrl(const Call& call, Message* message) {
  const Descriptor* descriptor = message->GetDescriptor();
  const Reflection* reflection = message->GetReflection();
  for (size_t i = 0; i < call.param_names.size(); ++i) {
    const FieldDescriptor* field = descriptor->FindFieldByName(std::string{call.param_names[i]});
    if (field == nullptr || field->is_repeated() ||
        field->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
      // The route table names string fields only; the tests exercise every route.
      return absl::InternalError(fmt::format("route parameter {} is not a string field of {}",
                                             call.param_names[i], descriptor->full_name()));
    }
    reflection->SetString(message, field, call.param_values[i]);
  }
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    // The GET and DELETE requests of the API have string fields only, so nothing else needs
    // converting from query text.
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
      continue;
    }
    bool is_path_param = false;
    for (const std::string_view name : call.param_names) {
      is_path_param = is_path_param || name == field->name();
    }
    if (is_path_param) {
      continue;
    }
    std::vector<std::string_view> values;
    for (const auto& [key, value] : call.query) {
      if (key == field->name() || key == field->json_name()) {
        values.push_back(value);
      }
    }
    if (field->is_repeated()) {
      for (const std::string_view value : values) {
        reflection->AddString(message, field, std::string{value});
      }
    } else if (values.size() > 1) {
      return TooManyValues(field->name(), values);
    } else if (values.size() == 1) {
      reflection->SetString(message, field, std::string{values.front()});
    }
  }
  return absl::OkStatus();
}

api::CallerInfo Caller(const Call& call) {
  return {
      .authorization = call.authorization, .peer = call.peer, .forwarded_for = call.forwarded_for};
}

// Every If-None-Match header counts (a list may be split over several); entity tags are quoted
// strings, which may themselves hold commas.
bool NoneMatchHits(const http::Request& request, std::string_view etag) {
  const std::string_view wanted = Opaque(etag);
  for (const auto& [name, value] : request.headers) {
    if (!absl::EqualsIgnoreCase(ToAbsl(name), "If-None-Match")) {
      continue;
    }
    std::string_view rest = value;
    while (!rest.empty()) {
      const size_t start = rest.find_first_not_of(" \t,");
      if (start == std::string_view::npos) {
        break;
      }
      rest.remove_prefix(start);
      // A quoted tag ends at its closing quote; anything else (e.g. "*") at the next comma.
      const size_t open =
          rest.starts_with("W/\"") ? 2 : (rest.front() == '"' ? 0 : std::string_view::npos);
      size_t end = std::min(rest.find(','), rest.size());
      if (open != std::string_view::npos) {
        const size_t closing = rest.find('"', open + 1);
        end = closing == std::string_view::npos ? rest.size() : closing + 1;
      }
      std::string_view tag = rest.substr(0, end);
      rest.remove_prefix(end);
      while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) {
        tag.remove_suffix(1);
      }
      if (tag == "*" || Opaque(tag) == wanted) {
        return true;
      }
    }
  }
  return false;
}

// A 200 answer of a GET gets a weak ETag of its JSON, and a client that holds it a 304 without
// a body: a poller (the web UI) pays one request and no transfer while nothing changes. Weak,
// because the daemon may gzip the body on the way out (the JSON, not its bytes, is what the tag
// names), so compression stays its business.
http::Response WithListETag(const Call& call, http::Response response) {
  if (response.status != 200) {
    return response;
  }
  const std::string etag = fmt::format("W/\"{:016x}\"", hash::Fnv1a64(response.body));
  if (NoneMatchHits(call.request, etag)) {
    response.status = 304;
    response.body.clear();
    response.headers = {};
  }
  response.headers.emplace_back("ETag", etag);
  response.headers.emplace_back("Cache-Control", "no-cache");
  return response;
}

}  // namespace discovery::rest
