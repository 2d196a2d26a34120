// Proto3 JSON and error responses the way grpc-gateway v2's default marshaler produces them
// (docs/decisions.md D29), so REST clients of the Go original read our answers unchanged.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"

#include "http/server.h"

namespace discovery::rest {

// `message` as compact proto3 JSON: lowerCamelCase names, fields in declaration order, every
// field present (unpopulated scalars as "", 0, false; repeated as []; maps as {}; unset message
// fields as null), int64 as JSON strings, Timestamps in RFC 3339 with `Z`, map keys sorted
// bytewise. Internal when protobuf cannot print the message (e.g. a Timestamp out of range).
// Thread-safe.
absl::StatusOr<std::string> MessageToJson(const google::protobuf::Message& message);

// Prints a list answer (a message whose every field is a repeated message, such as
// ListServiceResponse) from parts holding some of its elements each, so that an answer of a
// million services needs neither the whole message nor a copy of every row at once: the parts
// appended in order print the bytes MessageToJson prints for the message holding all of their
// elements. A part's elements must not belong to a field declared before one an earlier part
// had elements in.
class ListJsonWriter {
 public:
  // `list` must be the descriptor of a list answer.
  explicit ListJsonWriter(const google::protobuf::Descriptor& list);

  // Appends every element of `part` (a message of the writer's type) after those appended so far.
  absl::Status Append(const google::protobuf::Message& part);
  // The whole answer, which the writer gives away.
  std::string Finish() &&;

 private:
  // Closes the open field and opens the next one.
  void OpenNextField();

  const google::protobuf::Descriptor& list_;
  std::string json_ = "{";
  int field_ = -1;  // the open field, in declaration order; -1 before the first
  bool field_empty_ = true;
};

namespace json_internal {
// MessageToJson printing the whole message at once, as it does for all but list answers (for
// the test that the two agree).
absl::StatusOr<std::string> MessageToJsonAtOnce(const google::protobuf::Message& message);
}  // namespace json_internal

// Replaces `*message` by the request in `body`: proto field names and lowerCamelCase names are
// both accepted, unknown fields are ignored. An empty or all-whitespace body is the empty
// request, as grpc-gateway treats an empty body (io.EOF). The body must be strict RFC 8259
// JSON, as protojson wants it: InvalidArgument `invalid request body: <problem>` for malformed
// JSON (with its position), NUL bytes, nesting deeper than 32 levels, duplicate keys (also a
// field given under both its names), a non-object, a list or object where a single value
// belongs, a single value for a list or map, wrong value types and invalid UTF-8. <problem>
// quotes at most about 200 bytes of the body. Thread-safe.
absl::Status JsonToMessage(std::string_view body, google::protobuf::Message* message);

// grpc-gateway's HTTPStatusFromCode: 400 for InvalidArgument, FailedPrecondition and
// OutOfRange, 401, 403, 404, 409 for AlreadyExists and Aborted, 429, 499 for Cancelled, 501,
// 503, 504, 500 for Unknown, Internal, DataLoss and anything unknown; 200 for OK.
int HttpStatusFromCode(absl::StatusCode code);

// The error answer for a non-OK `status`: the mapped HTTP status, Content-Type
// application/json and the body {"code":<gRPC code number>,"message":"...","details":[]}.
// Unauthenticated also gets `WWW-Authenticate: Bearer error="invalid_token",
// error_description="<message>"` (RFC 6750; the original sent the bare message), with bytes
// that may not appear in a header value replaced by '?'.
http::Response ErrorResponse(const absl::Status& status);

// What the HTTP server answers by itself (an http::ErrorRenderer) in the shape of
// ErrorResponse, so that a REST client reads every error alike: 400 with code 3
// (InvalidArgument), 413 and 431 with code 8 (ResourceExhausted), other statuses with code 2
// (Unknown). The HTTP status stays `status`.
http::Response TransportErrorResponse(int status, std::string_view message);

// A 200 answer with Content-Type application/json and `body`.
http::Response JsonResponse(std::string body);

}  // namespace discovery::rest
