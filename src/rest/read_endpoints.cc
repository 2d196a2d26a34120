#include <algorithm>
#include <array>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "fmt/format.h"

#include "api/handlers.h"
#include "common/format.h"
#include "common/status_macros.h"
#include "compress/gzip.h"
#include "readmodel/placed.h"
#include "rest/call.h"
#include "rest/json.h"
#include "rest/rest_api.h"

// The two reads that are more than one RPC over JSON: GET /v1/services, which pages, filters
// and sorts when asked to, and GET /v1/sd, which answers a pre-rendered body, gzipped when the
// client takes it, and 304 for a tag the client holds.
namespace discovery::rest {
namespace {

namespace pb = ::postfinance::discovery::v1;

// The query parameters that make GET /v1/services a filtered page (ListServices).
constexpr std::array<std::string_view, 12> kPageParams = {
    "offset",         "limit",           "filterName",   "filter_name",
    "filterEndpoint", "filter_endpoint", "filterServer", "filter_server",
    "filterSelector", "filter_selector", "sortBy",       "sort_by"};
// A page holds at most this many rows, so one request stays cheap whatever the registry holds.
constexpr int64_t kMaxPageLimit = 10000;

// A non-negative integer query parameter; `fallback` when absent.
absl::StatusOr<int64_t> CountParam(const Call& call, std::string_view name, int64_t fallback) {
  const std::vector<std::string_view> values = QueryValues(call.query, name);
  if (values.size() > 1) {
    return TooManyValues(name, values);
  }
  if (values.empty()) {
    return fallback;
  }
  int64_t value = 0;
  if (!absl::SimpleAtoi(ToAbsl(values.front()), &value) || value < 0) {
    return absl::InvalidArgumentError(fmt::format("invalid {} \"{}\": want a non-negative integer",
                                                  name, values.front().substr(0, 64)));
  }
  return value;
}

// The RPC request of GET /v1/sd/{server}/{namespace}.
absl::StatusOr<pb::ListTargetGroupRequest> HttpSdRequest(const Call& call) {
  pb::ListTargetGroupRequest request;
  DISCOVERY_RETURN_IF_ERROR(FillFromUrl(call, &request));
  // The README's Prometheus example passes `export-config`, which the original silently
  // ignored; it is honoured as an alias, and `config` wins when both are given.
  if (QueryValues(call.query, "config").empty()) {
    const std::vector<std::string_view> alias = QueryValues(call.query, "export-config");
    if (alias.size() > 1) {
      return TooManyValues("export-config", alias);
    }
    if (alias.size() == 1) {
      request.set_config(std::string{alias.front()});
    }
  }
  return request;
}

// A client holding either tag gets its 304, whichever encoding it asks for now.
bool IsNotModified(const Call& call, const readmodel::HttpSdBody& sd) {
  return NoneMatchHits(call.request, sd.etag()) || NoneMatchHits(call.request, sd.gzip_etag());
}

// The answer with `sd`; `gzipped` is its compressed body, needed only when the client takes
// gzip and has no current tag.
http::Response HttpSdAnswer(const Call& call, const readmodel::HttpSdBody& sd, bool gzip,
                            std::shared_ptr<const std::string> gzipped) {
  http::Response response;
  // Prometheus must revalidate every time; the ETag makes that a 304 without a body. Each
  // encoding has its own tag.
  response.headers = {{"ETag", gzip ? sd.gzip_etag() : sd.etag()},
                      {"Cache-Control", "no-cache"},
                      {"Vary", "Accept-Encoding"}};
  if (IsNotModified(call, sd)) {
    response.status = 304;
    return response;
  }
  response.headers.emplace_back("Content-Type", "application/json");
  if (gzip) {
    response.headers.emplace_back("Content-Encoding", "gzip");
    response.shared_body = std::move(gzipped);
  } else {
    response.shared_body = sd.json_buffer();
  }
  return response;
}

bool TakesGzip(const Call& call) {
  const std::optional<std::string_view> accept = call.request.Header("Accept-Encoding");
  return accept.has_value() && compress::AcceptsGzip(*accept);
}

// ServiceAPI/ListService's answer, printed a part of kPartRows rows at a time from the rows by
// reference: at a million services the whole message alone took 1.2 GB beyond the registry.
http::Response AllServices(const Call& call, const std::string& full_method,
                           const pb::ListServiceRequest& request) {
  constexpr size_t kPartRows = 1000;
  absl::StatusOr<api::ServiceListing> rows =
      call.dispatcher.Dispatch(full_method, Caller(call), request, &api::Handlers::ListServiceRows);
  if (!rows.ok()) {
    return ErrorResponse(rows.status());
  }
  ListJsonWriter writer(*pb::ListServiceResponse::descriptor());
  absl::Status printed;
  for (size_t first = 0; first < rows->size() && printed.ok(); first += kPartRows) {
    pb::ListServiceResponse part;
    rows->VisitRows(first, first + kPartRows,
                    [&part](api::ListedService row) { api::AddTo(part, std::move(row)); });
    printed = writer.Append(part);
  }
  if (!printed.ok()) {
    return ErrorResponse(printed);
  }
  return JsonResponse(std::move(writer).Finish());
}

}  // namespace

// GET /v1/services. Without any of kPageParams it is ServiceAPI/ListService, unchanged for the
// original's clients. With them it is a page of ListServiceStream's rows: filtered (filterName,
// filterEndpoint, filterServer as RE2, filterSelector as a label selector), sorted (sortBy),
// then `offset` rows skipped and at most `limit` (1..10000, default 1000) answered, served
// services in `services` and records that cannot be served in `invalidServices`, and the number
// of rows that matched in the header X-Total-Count.
http::Response ListServices(const Call& call) {
  static const std::string list_method = FullMethod(api::kServiceApi, "ListService");
  static const std::string stream_method = FullMethod(api::kServiceApi, "ListServiceStream");
  const bool paged = std::any_of(call.query.begin(), call.query.end(), [](const auto& param) {
    return std::find(std::begin(kPageParams), std::end(kPageParams), param.first) !=
           std::end(kPageParams);
  });
  if (!paged) {
    pb::ListServiceRequest request;
    if (absl::Status status = FillFromUrl(call, &request); !status.ok()) {
      return ErrorResponse(status);
    }
    return WithListETag(call, AllServices(call, list_method, request));
  }
  pb::ListServiceStreamRequest request;
  if (absl::Status status = FillFromUrl(call, &request); !status.ok()) {
    return ErrorResponse(status);
  }
  const absl::StatusOr<int64_t> offset = CountParam(call, "offset", 0);
  if (!offset.ok()) {
    return ErrorResponse(offset.status());
  }
  const absl::StatusOr<int64_t> limit = CountParam(call, "limit", 1000);
  if (!limit.ok()) {
    return ErrorResponse(limit.status());
  }
  if (*limit < 1 || *limit > kMaxPageLimit) {
    return ErrorResponse(absl::InvalidArgumentError(
        fmt::format("invalid limit {}: want 1 to {}", *limit, kMaxPageLimit)));
  }
  absl::StatusOr<api::ServiceListing> rows = call.dispatcher.Dispatch(
      stream_method, Caller(call), request, &api::Handlers::ListServiceStream);
  if (!rows.ok()) {
    return ErrorResponse(rows.status());
  }
  pb::ListServiceResponse page;
  const auto first = static_cast<size_t>(*offset);
  for (api::ListedService& row : rows->Rows(first, first + static_cast<size_t>(*limit))) {
    api::AddTo(page, std::move(row));
  }
  absl::StatusOr<std::string> json = MessageToJson(page);
  if (!json.ok()) {
    return ErrorResponse(json.status());
  }
  http::Response response = JsonResponse(*std::move(json));
  response.headers.emplace_back("X-Total-Count", std::to_string(rows->size()));
  return WithListETag(call, std::move(response));
}

// GET /v1/sd/{server}/{namespace}: the pre-rendered http_sd body of the registry, served with
// its ETag so that Prometheus' conditional requests cost nothing.
http::Response HttpSd(const Call& call) {
  static const std::string full_method = FullMethod(api::kServiceApi, "ListTargetGroup");
  absl::StatusOr<pb::ListTargetGroupRequest> request = HttpSdRequest(call);
  if (!request.ok()) {
    return ErrorResponse(request.status());
  }
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> body =
      call.dispatcher.Dispatch(full_method, Caller(call), *request, &api::Handlers::HttpSd);
  if (!body.ok()) {
    return ErrorResponse(body.status());
  }
  if (*body == nullptr) {
    return ErrorResponse(absl::InternalError("the registry returned no http_sd body"));
  }
  const readmodel::HttpSdBody& sd = **body;
  // For clients that ask for gzip (Prometheus 2.42 does not); compressed once per body version.
  const bool gzip = TakesGzip(call);
  return HttpSdAnswer(call, sd, gzip, gzip && !IsNotModified(call, sd) ? sd.Gzipped() : nullptr);
}

// HttpSd when everything it needs is in memory: the caller's token verified before, the body
// rendered and, for gzip, compressed. Anything else (including a malformed request, whose
// error HttpSd renders) is left to HttpSd.
std::optional<http::Response> HttpSdFromMemory(const Call& call) {
  static const std::string full_method = FullMethod(api::kServiceApi, "ListTargetGroup");
  absl::StatusOr<pb::ListTargetGroupRequest> request = HttpSdRequest(call);
  if (!request.ok()) {
    return std::nullopt;
  }
  const bool gzip = TakesGzip(call);
  std::shared_ptr<const std::string> gzipped;
  std::optional<absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>>> body =
      call.dispatcher.DispatchFromMemory(
          full_method, call.authorization, *request,
          [&](api::Handlers& handlers, const auth::Principal& principal,
              const pb::ListTargetGroupRequest& sd_request)
              -> absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> {
            absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> sd =
                handlers.CachedHttpSd(principal, sd_request);
            if (sd.ok() && *sd != nullptr && gzip && !IsNotModified(call, **sd)) {
              gzipped = (*sd)->GzippedIfReady();
              if (gzipped == nullptr) {
                return nullptr;  // not compressed yet: HttpSd compresses it
              }
            }
            return sd;
          });
  if (!body.has_value()) {
    return std::nullopt;
  }
  if (!body->ok()) {
    return ErrorResponse(body->status());
  }
  return HttpSdAnswer(call, ***body, gzip, std::move(gzipped));
}

}  // namespace discovery::rest
