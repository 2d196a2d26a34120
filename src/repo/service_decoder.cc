#include <array>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

#include "common/format.h"
#include "common/status_macros.h"
#include "repo/codec.h"

namespace discovery::repo {
namespace {

using Json = nlohmann::ordered_json;

// Decodes a service document straight from nlohmann's SAX events into a Service, without
// building a DOM first: on a load of a million records the DOM (a node and a string per field,
// then copied out) cost most of the start-up. It must answer exactly as the DOM decoder does
// (internal::DecodeServiceWithDom, which the tests compare it with): the same strict parse, a
// duplicate field counts as its last occurrence (the DOM keeps the last), null is absent, and
// of several bad fields the first in the DOM decoder's reading order is reported.
class ServiceSax {
 public:
  absl::StatusOr<Service> Decode(std::string_view json) {
    const bool parsed = Json::sax_parse(json.begin(), json.end(), this);
    if (!parsed || invalid_json_) {
      return absl::DataLossError("service document is not valid JSON");
    }
    if (!is_object_) {
      return absl::DataLossError("service document is not a JSON object");
    }
    // In the DOM decoder's reading order: the fields up to "modified", its timestamp, then
    // "ttl" and "expires", then the TTL's duration.
    for (int field = 0; field < kFieldCount; ++field) {
      if (field == kTtl && modified_.has_value() && !modified_->ok()) {
        break;
      }
      if (bad_[field]) {
        return absl::DataLossError(fmt::format("service document: field \"{}\" is not {}",
                                               kFieldNames[field], Expected(field)));
      }
    }
    if (modified_.has_value()) {
      if (!modified_->ok()) {
        return absl::DataLossError(
            fmt::format("service document: field \"modified\": {}", modified_->status().message()));
      }
      service_.modified = **modified_;
    }
    if (expires_.has_value() && !expires_->ok()) {
      return absl::DataLossError(
          fmt::format("service document: field \"expires\": {}", expires_->status().message()));
    }
    if (!ttl_text_.empty()) {
      DISCOVERY_ASSIGN_OR_RETURN(absl::Duration ttl, internal::ParseTtl(ttl_text_));
      service_.ttl = ttl;
      if (expires_.has_value()) {
        service_.expires = **expires_;
      }
    }
    return std::move(service_);
  }

  // nlohmann's SAX interface.
  bool null() {
    if (depth_ == 1) {
      Reset(field_);  // null is an absent field
    } else if (depth_ == 2) {
      BadItem();
    }
    return true;
  }
  bool boolean(bool /*value*/) { return Scalar(); }
  bool number_integer(Json::number_integer_t /*value*/) { return Scalar(); }
  bool number_unsigned(Json::number_unsigned_t /*value*/) { return Scalar(); }
  bool number_float(Json::number_float_t /*value*/, const std::string& /*text*/) {
    return Scalar();
  }
  bool binary(Json::binary_t& /*value*/) { return Scalar(); }
  // `value` and `name` are the lexer's own buffer. Copied, not moved: a moved-from buffer grows
  // again by doubling for the next token (a malloc, a copy and a free per step), and the string
  // taken from it keeps that doubled capacity for the life of the service. A copy is allocated
  // to its size once.
  bool string(std::string& value) {
    if (depth_ == 1) {
      Reset(field_);
      if (std::string* target = StringField(field_); target != nullptr) {
        *target = std::string(value);
      } else if (field_ == kModified) {
        if (!value.empty()) {
          modified_ = ParseTimestamp(value);
        }
      } else if (field_ == kExpires) {
        if (!value.empty()) {
          expires_ = ParseTimestamp(value);
        }
      } else if (field_ == kTtl) {
        ttl_text_ = value;
      } else if (field_ != kUnknown) {
        bad_[field_] = true;
      }
    } else if (depth_ == 2 && collecting_ == kLabels) {
      bad_labels_.erase(label_);
      service_.labels.insert_or_assign(label_, std::string(value));
    } else if (depth_ == 2 && collecting_ == kServers) {
      service_.servers.emplace_back(value);
    }
    return true;
  }
  bool start_object(std::size_t /*elements*/) {
    if (depth_ == 0) {
      is_object_ = true;
    }
    return StartContainer(kLabels);
  }
  bool key(std::string& name) {
    if (depth_ == 1 && is_object_) {
      field_ = FieldOf(name);
    } else if (depth_ == 2 && collecting_ == kLabels) {
      label_ = name;
    }
    return true;
  }
  bool end_object() { return End(); }
  bool start_array(std::size_t /*elements*/) { return StartContainer(kServers); }
  bool end_array() { return End(); }
  bool parse_error(std::size_t /*position*/, const std::string& /*token*/,
                   const nlohmann::detail::exception& /*error*/) {
    invalid_json_ = true;
    return false;
  }

 private:
  // In the DOM decoder's reading order, which decides which of several bad fields is reported.
  enum Field {
    kId,
    kName,
    kNamespace,
    kEndpoint,
    kLabels,
    kServers,
    kSelector,
    kDescription,
    kModified,
    kTtl,
    kExpires,
    kFieldCount,
    kUnknown = kFieldCount,
    kNone = kFieldCount,  // collecting_: nothing
  };
  static constexpr std::array<std::string_view, kFieldCount> kFieldNames = {
      "id",       "name",        "namespace", "endpoint", "labels", "servers",
      "selector", "description", "modified",  "ttl",      "expires"};

  static Field FieldOf(std::string_view name) {
    for (int field = 0; field < kFieldCount; ++field) {
      if (kFieldNames[field] == name) {
        return static_cast<Field>(field);
      }
    }
    return kUnknown;
  }

  static const char* Expected(int field) {
    switch (field) {
      case kLabels:
        return "an object of strings";
      case kServers:
        return "an array of strings";
      default:
        return "a string";
    }
  }

  std::string* StringField(Field field) {
    switch (field) {
      case kId:
        return &service_.id;
      case kName:
        return &service_.name;
      case kNamespace:
        return &service_.namespace_name;
      case kEndpoint:
        return &service_.endpoint;
      case kSelector:
        return &service_.selector;
      case kDescription:
        return &service_.description;
      default:
        return nullptr;
    }
  }

  // A later occurrence of a field replaces an earlier one, as in the DOM.
  void Reset(Field field) {
    if (field == kUnknown) {
      return;
    }
    bad_[field] = false;
    if (std::string* target = StringField(field); target != nullptr) {
      target->clear();
    } else if (field == kLabels) {
      service_.labels.clear();
      bad_labels_.clear();
    } else if (field == kServers) {
      service_.servers.clear();
    } else if (field == kModified) {
      modified_.reset();
    } else if (field == kExpires) {
      expires_.reset();
    } else if (field == kTtl) {
      ttl_text_.clear();
    }
  }

  bool Scalar() {
    if (depth_ == 1) {
      Reset(field_);
      if (field_ != kUnknown) {
        bad_[field_] = true;
      }
    } else if (depth_ == 2) {
      BadItem();
    }
    return true;
  }

  // A value inside the labels object or the servers array that is not a string. A label may
  // still be replaced by a later string under the same name.
  void BadItem() {
    if (collecting_ == kLabels) {
      service_.labels.erase(label_);
      bad_labels_.insert(std::move(label_));
    } else if (collecting_ == kServers) {
      bad_[kServers] = true;
    }
  }

  // An object or array opens: at the top of a field it is that field's value, which only
  // `container` (labels as an object, servers as an array) may have; one level further down it is
  // an item of labels or servers, which must be a string.
  bool StartContainer(Field container) {
    if (depth_ == 1) {
      Reset(field_);
      if (field_ == container) {
        collecting_ = container;
      } else if (field_ != kUnknown) {
        bad_[field_] = true;
      }
    } else if (depth_ == 2) {
      BadItem();
    }
    ++depth_;
    return true;
  }
  bool End() {
    --depth_;
    if (depth_ == 1 && collecting_ != kNone) {
      if (collecting_ == kLabels && !bad_labels_.empty()) {
        bad_[kLabels] = true;
      }
      collecting_ = kNone;
    }
    return true;
  }

  Service service_;
  // Parsed where it is read, without keeping the text; nullopt while absent or "".
  std::optional<absl::StatusOr<absl::Time>> modified_;
  std::optional<absl::StatusOr<absl::Time>> expires_;
  std::string ttl_text_;
  int depth_ = 0;
  bool is_object_ = false;
  bool invalid_json_ = false;
  Field field_ = kUnknown;
  Field collecting_ = kNone;
  std::string label_;
  std::set<std::string, std::less<>> bad_labels_;
  std::array<bool, kFieldCount> bad_{};
};

}  // namespace

absl::StatusOr<Service> DecodeService(std::string_view json) { return ServiceSax().Decode(json); }

}  // namespace discovery::repo
