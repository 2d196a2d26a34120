// The REST codecs (JSON bodies, URLs, routes, gateway statuses) on their own, and the API
// under random requests.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "api/dispatcher.h"
#include "api/handlers.h"
#include "auth/authenticator.h"
#include "auth/authorizer.h"
#include "auth/machine_token.h"
#include "compress/gzip.h"
#include "postfinance/discovery/v1/namespace_api.pb.h"
#include "postfinance/discovery/v1/server_api.pb.h"
#include "postfinance/discovery/v1/service_api.pb.h"
#include "postfinance/discovery/v1/token_api.pb.h"
#include "registry/registry.h"
#include "rest/json.h"
#include "rest/rest_api.h"
#include "rest/rest_test_fixture.h"
#include "rest/url.h"
#include "testing/api_stack.h"
#include "testing/status_matchers.h"

namespace discovery::rest {
namespace {

// protobuf 3.21's parser alone accepts all of these; protojson, which the original used,
// refuses them, and a deep nesting must not reach a recursive parser.
TEST(RestJsonTest, BodiesAreCheckedStrictly) {
  using std::string_literals::operator""s;  // "\0"s keeps its NUL
  pb::RegisterServerRequest server;
  pb::CreateRequest token;
  const auto server_error = [&server](const std::string& body) {
    return JsonToMessage(body, &server);
  };
  const auto token_error = [&token](const std::string& body) {
    return JsonToMessage(body, &token);
  };
  const auto invalid = [](const std::string& message) {
    return StatusIs(absl::StatusCode::kInvalidArgument, "invalid request body: " + message);
  };

  EXPECT_THAT(server_error(std::string(100000, '[')), invalid("JSON nested deeper than 32 levels"));
  EXPECT_THAT(server_error(R"({"x":)" + std::string(33, '[') + std::string(33, ']') + "}"),
              invalid("JSON nested deeper than 32 levels"));
  EXPECT_THAT(server_error(R"({"x":)" + std::string(31, '[') + std::string(31, ']') + "}"), IsOk());
  EXPECT_THAT(server_error(R"({"name":"a","name":"b"})"), invalid(R"(duplicate field "name")"));
  EXPECT_THAT(server_error(R"({"labels":{"k":"1","k":"2"}})"), invalid(R"(duplicate field "k")"));
  EXPECT_THAT(server_error(R"({"labels":{"a":"1"},"labels":{"b":"2"}})"),
              invalid(R"(duplicate field "labels")"));
  EXPECT_THAT(server_error("{\"name\":\"a\0\"}"s),
              invalid(R"(NUL byte at offset 10 (JSON needs \u0000 in a string))"));
  EXPECT_THAT(server_error("{}\0{}"s),
              invalid(R"(NUL byte at offset 2 (JSON needs \u0000 in a string))"));
  EXPECT_THAT(server_error("{'name':'a'}"),
              invalid("parse error at line 1, column 2: syntax error while parsing object key - "
                      "invalid literal"));
  EXPECT_THAT(server_error(R"({"name":"a",})"),
              invalid("parse error at line 1, column 13: syntax error while parsing object key - "
                      "unexpected '}'; expected string literal"));
  EXPECT_THAT(server_error("{\"name\":\"\x01\"}"),
              invalid("parse error at line 1, column 10: syntax error while parsing value - "
                      "invalid string: control character U+0001 (SOH) must be escaped to "
                      "\\u0001"));
  EXPECT_THAT(server_error("[]"), invalid("want a JSON object, got an array"));
  EXPECT_THAT(server_error(R"({"labels":["a"]})"),
              invalid(R"(field "labels": want an object, got an array)"));
  EXPECT_THAT(server_error(R"({"labels":{"a":{"b":"c"}}})"),
              invalid(R"(field "labels.a": want a single value, got an object)"));
  EXPECT_THAT(server_error(R"({"name":["a"]})"),
              invalid(R"(field "name": want a single value, got an array)"));
  EXPECT_THAT(token_error(R"({"namespaces":"default"})"),
              invalid(R"(field "namespaces": want an array, got a string)"));
  EXPECT_THAT(token_error(R"({"namespaces":[["default"]]})"),
              invalid(R"(field "namespaces[0]": want a single value, got an array)"));
  // The token in a parser message may be most of the body; the message stays short.
  const absl::Status long_number = server_error(R"({"x":)" + std::string(100000, '9') + "}");
  EXPECT_THAT(long_number, StatusIs(absl::StatusCode::kInvalidArgument,
                                    StartsWith("invalid request body: number overflow parsing")));
  EXPECT_LE(long_number.message().size(), 240U);

  // Still accepted: null for any field, unknown fields of any shape, both names of a field.
  EXPECT_THAT(token_error(R"({"id":null,"namespaces":null,"x":[[{"y":[]}]]})"), IsOk());
  EXPECT_THAT(token_error(R"({"id":"a","namespaces":["b","c"],"expires":"1h"})"), IsOk());
  EXPECT_EQ(token.namespaces_size(), 2);
}

TEST(RestJsonTest, TransportErrorsHaveTheGatewayShape) {
  const http::Response too_large = TransportErrorResponse(413, "request body too large");
  EXPECT_EQ(too_large.status, 413);
  EXPECT_EQ(too_large.body, R"({"code":8,"message":"request body too large","details":[]})");
  EXPECT_THAT(HeaderOf(too_large, "Content-Type"), Optional(std::string("application/json")));
  EXPECT_EQ(TransportErrorResponse(431, "x").body, R"({"code":8,"message":"x","details":[]})");
  EXPECT_EQ(TransportErrorResponse(429, "x").body, R"({"code":8,"message":"x","details":[]})");
  EXPECT_EQ(TransportErrorResponse(503, "x").body, R"({"code":14,"message":"x","details":[]})");
  const http::Response malformed = TransportErrorResponse(400, "malformed HTTP request: bad field");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(malformed.body,
            R"({"code":3,"message":"malformed HTTP request: bad field","details":[]})");
  EXPECT_EQ(TransportErrorResponse(418, "x").status, 418);
  EXPECT_EQ(TransportErrorResponse(418, "x").body, R"({"code":2,"message":"x","details":[]})");
}

TEST(RestRouteTest, NamesThePatternForMetrics) {
  EXPECT_EQ(RestApi::Route("/v1/servers"), "/v1/servers");
  EXPECT_EQ(RestApi::Route("/v1/servers/p1"), "/v1/servers/{name}");
  EXPECT_EQ(RestApi::Route("/v1/namespaces/x"), "/v1/namespaces/{name}");
  EXPECT_EQ(RestApi::Route("/v1/services/default"), "/v1/services/{namespace}");
  EXPECT_EQ(RestApi::Route("/v1/tokens"), "/v1/tokens");
  EXPECT_EQ(RestApi::Route("/v1/tokens/abc"), "/v1/tokens/{token}");
  EXPECT_EQ(RestApi::Route("/v1/sd/a%2Fb/c"), "/v1/sd/{server}/{namespace}");
  EXPECT_EQ(RestApi::Route("/v1/sd/a/b/c"), std::nullopt);
  EXPECT_EQ(RestApi::Route("/v1/servers/%zz"), std::nullopt);
  EXPECT_EQ(RestApi::Route(""), std::nullopt);
}

TEST(RestJsonTest, UnsetMessagesAreNullAndMapsSorted) {
  postfinance::discovery::v1::RegisterServiceResponse empty;
  EXPECT_THAT(MessageToJson(empty), IsOkAndHolds(std::string(R"({"service":null})")));
  postfinance::discovery::v1::RegisterServiceResponse response;
  auto& labels = *response.mutable_service()->mutable_labels();
  for (const char* key : {"b", "a", "\xc3\xa9", "B", "aa", "<&>"}) {
    labels[key] = "v";
  }
  response.mutable_service()->add_servers("s");
  EXPECT_THAT(MessageToJson(response),
              IsOkAndHolds(std::string(
                  R"({"service":{"id":"","name":"","endpoint":"","namespace":"","selector":"",)"
                  R"("servers":["s"],"labels":{"<&>":"v","B":"v","a":"v","aa":"v","b":"v",)"
                  "\"\xc3\xa9\":\"v\"},\"description\":\"\",\"modified\":null,\"ttl\":null,"
                  "\"expires\":null}}")));
}

// Protobuf's printer leaves unset fields out; every one of them is printed as protojson with
// EmitUnpopulated prints it, which is what the printer's always_print_primitive_fields gives for
// scalars, lists and maps, and null for messages: for every message of the API, empty and with
// its message fields set to empty messages.
TEST(RestJsonTest, UnsetFieldsArePrintedAsProtojsonPrintsThem) {
  using google::protobuf::Descriptor;
  using google::protobuf::FieldDescriptor;
  using google::protobuf::Message;
  const auto printed_with_defaults = [](const Message& message) {
    google::protobuf::util::JsonPrintOptions options;
    options.always_print_primitive_fields = true;
    std::string printed;
    EXPECT_TRUE(google::protobuf::util::MessageToJsonString(message, &printed, options).ok());
    return nlohmann::json::parse(printed);
  };
  // Ours has every key the printer's has, with the same value, and null for the rest.
  std::function<void(const nlohmann::json&, const nlohmann::json&, const std::string&)>
      expect_like =
          [&](const nlohmann::json& ours, const nlohmann::json& theirs, const std::string& path) {
            if (ours.is_array() && theirs.is_array() && ours.size() == theirs.size()) {
              for (size_t i = 0; i < ours.size(); ++i) {
                expect_like(ours[i], theirs[i], path + "[" + std::to_string(i) + "]");
              }
              return;
            }
            if (!ours.is_object() || !theirs.is_object()) {
              EXPECT_EQ(ours, theirs) << path;
              return;
            }
            for (const auto& [key, value] : ours.items()) {
              if (theirs.contains(key)) {
                expect_like(value, theirs.at(key), absl::StrCat(path, ".", key));
              } else {
                EXPECT_TRUE(value.is_null()) << path << "." << key << " = " << value;
              }
            }
            for (const auto& [key, value] : theirs.items()) {
              EXPECT_TRUE(ours.contains(key)) << path << "." << key;
            }
          };
  int messages = 0;
  for (const google::protobuf::FileDescriptor* file :
       {pb::ListServiceResponse::descriptor()->file(), pb::ListServerResponse::descriptor()->file(),
        pb::ListNamespaceResponse::descriptor()->file(),
        pb::CreateResponse::descriptor()->file()}) {
    for (int i = 0; i < file->message_type_count(); ++i) {
      const Descriptor* descriptor = file->message_type(i);
      SCOPED_TRACE(descriptor->full_name());
      std::unique_ptr<Message> message(
          google::protobuf::MessageFactory::generated_factory()->GetPrototype(descriptor)->New());
      for (bool nested : {false, true}) {
        if (nested) {
          for (int f = 0; f < descriptor->field_count(); ++f) {
            const FieldDescriptor* field = descriptor->field(f);
            if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !field->is_repeated()) {
              message->GetReflection()->MutableMessage(message.get(), field);
            } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !field->is_map()) {
              message->GetReflection()->AddMessage(message.get(), field);
            }
          }
        }
        ASSERT_OK_AND_ASSIGN(const std::string ours, MessageToJson(*message));
        expect_like(nlohmann::json::parse(ours), printed_with_defaults(*message), "");
        ++messages;
      }
    }
  }
  EXPECT_GT(messages, 20);
}

// A list answer is printed a service at a time: what the whole message printed at once would be.
TEST(RestJsonTest, AListIsPrintedAsTheWholeMessageWouldBe) {
  postfinance::discovery::v1::ListServiceResponse list;
  EXPECT_THAT(MessageToJson(list),
              IsOkAndHolds(std::string(R"({"services":[],"invalidServices":[]})")));
  for (int i = 0; i < 3; ++i) {
    postfinance::discovery::v1::Service& service = *list.add_services();
    service.set_id(absl::StrCat("id", i));
    service.set_endpoint("http://h\xc3\xa9:9100/\"metrics\"");
    for (const char* key : {"b", "a", "\xc3\xa9", "B"}) {
      (*service.mutable_labels())[key] = absl::StrCat(key, i);
    }
    service.add_servers("s1");
    service.mutable_modified()->set_seconds(1612447990 + i);
  }
  list.add_invalid_services()->set_reason("not JSON");
  const absl::StatusOr<std::string> at_once = json_internal::MessageToJsonAtOnce(list);
  ASSERT_THAT(at_once, IsOk());
  EXPECT_THAT(MessageToJson(list), IsOkAndHolds(*at_once));
  postfinance::discovery::v1::ListServerResponse servers;
  servers.add_servers()->set_name("p1");
  servers.add_servers()->set_name("p2");
  EXPECT_THAT(MessageToJson(servers), IsOkAndHolds(*json_internal::MessageToJsonAtOnce(servers)));
}

// A list answer printed from parts, as REST prints a list of a million services: every split of
// its elements into parts prints what the whole message prints.
TEST(RestJsonTest, AListPrintedFromPartsIsTheWholeMessage) {
  postfinance::discovery::v1::ListServiceResponse list;
  for (int i = 0; i < 5; ++i) {
    postfinance::discovery::v1::Service& service = *list.add_services();
    service.set_id(absl::StrCat("id", i));
    (*service.mutable_labels())[absl::StrCat("k", i)] = "v";
  }
  for (int i = 0; i < 2; ++i) {
    list.add_invalid_services()->set_reason(absl::StrCat("bad ", i));
  }
  ASSERT_OK_AND_ASSIGN(const std::string whole, json_internal::MessageToJsonAtOnce(list));
  // The elements in order, each a one-element part; joined into parts of `size`.
  std::vector<postfinance::discovery::v1::ListServiceResponse> elements;
  for (const auto& service : list.services()) {
    *elements.emplace_back().add_services() = service;
  }
  for (const auto& invalid : list.invalid_services()) {
    *elements.emplace_back().add_invalid_services() = invalid;
  }
  for (size_t size = 1; size <= elements.size() + 1; ++size) {
    SCOPED_TRACE(size);
    ListJsonWriter writer(*pb::ListServiceResponse::descriptor());
    for (size_t first = 0; first < elements.size(); first += size) {
      postfinance::discovery::v1::ListServiceResponse part;
      for (size_t i = first; i < std::min(first + size, elements.size()); ++i) {
        part.MergeFrom(elements[i]);
      }
      ASSERT_THAT(writer.Append(part), IsOk());
    }
    EXPECT_EQ(std::move(writer).Finish(), whole);
  }
  // Empty parts and none at all.
  ListJsonWriter empty(*pb::ListServiceResponse::descriptor());
  ASSERT_THAT(empty.Append(postfinance::discovery::v1::ListServiceResponse()), IsOk());
  EXPECT_EQ(std::move(empty).Finish(), R"({"services":[],"invalidServices":[]})");

  // Elements of a field after those of a later one, or a part of another type: an error, not
  // an answer with its fields out of place.
  ListJsonWriter out_of_order(*pb::ListServiceResponse::descriptor());
  ASSERT_THAT(out_of_order.Append(elements.back()), IsOk());
  EXPECT_THAT(out_of_order.Append(elements.front()),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("after those of a later field")));
  ListJsonWriter other_type(*pb::ListServiceResponse::descriptor());
  EXPECT_THAT(other_type.Append(postfinance::discovery::v1::ListServerResponse()),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("ListServerResponse")));
}

TEST(RestJsonTest, HttpStatusFollowsGrpcGateway) {
  const std::vector<std::pair<absl::StatusCode, int>> table = {
      {absl::StatusCode::kOk, 200},
      {absl::StatusCode::kCancelled, 499},
      {absl::StatusCode::kUnknown, 500},
      {absl::StatusCode::kInvalidArgument, 400},
      {absl::StatusCode::kDeadlineExceeded, 504},
      {absl::StatusCode::kNotFound, 404},
      {absl::StatusCode::kAlreadyExists, 409},
      {absl::StatusCode::kPermissionDenied, 403},
      {absl::StatusCode::kResourceExhausted, 429},
      {absl::StatusCode::kFailedPrecondition, 400},
      {absl::StatusCode::kAborted, 409},
      {absl::StatusCode::kOutOfRange, 400},
      {absl::StatusCode::kUnimplemented, 501},
      {absl::StatusCode::kInternal, 500},
      {absl::StatusCode::kUnavailable, 503},
      {absl::StatusCode::kDataLoss, 500},
      {absl::StatusCode::kUnauthenticated, 401},
      {static_cast<absl::StatusCode>(42), 500},
  };
  for (const auto& [code, status] : table) {
    EXPECT_EQ(HttpStatusFromCode(code), status) << static_cast<int>(code);
  }
}

TEST(RestJsonTest, ErrorBodiesAndChallengesAreSafe) {
  const http::Response response =
      ErrorResponse(absl::UnauthenticatedError("bad \"token\"\r\nX-Injected: 1 \xff"));
  EXPECT_EQ(response.status, 401);
  EXPECT_THAT(HeaderOf(response, "WWW-Authenticate"),
              Optional(std::string(R"(Bearer error="invalid_token", )"
                                   R"(error_description="bad \"token\"??X-Injected: 1 ?")")));
  EXPECT_EQ(response.body,
            "{\"code\":16,\"message\":\"bad \\\"token\\\"\\r\\nX-Injected: 1 \xef\xbf\xbd\","
            "\"details\":[]}");
  EXPECT_FALSE(HeaderOf(ErrorResponse(absl::NotFoundError("x")), "WWW-Authenticate"));
}

TEST(RestUrlTest, QueryParsingFollowsGo) {
  absl::StatusOr<QueryParams> query = ParseQuery("a=1&&b=x+y%2B&a=2&c&=e&d=");
  ASSERT_THAT(query, IsOk());
  EXPECT_THAT(*query, ElementsAre(std::pair<std::string, std::string>("a", "1"),
                                  std::pair<std::string, std::string>("b", "x y+"),
                                  std::pair<std::string, std::string>("a", "2"),
                                  std::pair<std::string, std::string>("c", ""),
                                  std::pair<std::string, std::string>("", "e"),
                                  std::pair<std::string, std::string>("d", "")));
  EXPECT_THAT(ParseQuery("a=%4"), StatusIs(absl::StatusCode::kInvalidArgument,
                                           std::string(R"(invalid URL escape "%4")")));
  EXPECT_THAT(ParseQuery("a=%\x01z"), StatusIs(absl::StatusCode::kInvalidArgument,
                                               std::string(R"(invalid URL escape "%\x01z")")));
  EXPECT_THAT(PercentDecode("a+b%20", /*plus_is_space=*/false), IsOkAndHolds(std::string("a+b ")));
  EXPECT_THAT(PathSegments("/v1/a%2Fb/"), IsOkAndHolds(ElementsAre("v1", "a/b", "")));
}

// Random requests never crash the API and never produce a 5xx: every answer is a client
// error or a success with a JSON body.
TEST_F(RestTest, RandomRequestsAreAnsweredWithoutServerErrors) {
  ASSERT_NO_FATAL_FAILURE(RegisterReadmeExample());
  using std::string_literals::operator""s;  // "\0"s keeps its NUL
  std::mt19937 random(20240601);  // NOLINT(cert-msc32-c,cert-msc51-cpp): reproducible on purpose
  const std::vector<std::string> methods = {"GET",  "POST", "DELETE", "PUT",
                                            "HEAD", "",     "get",    "\x01"};
  const std::vector<std::string> path_pieces = {"/",
                                                "v1",
                                                "servers",
                                                "services",
                                                "namespaces",
                                                "tokens",
                                                "sd",
                                                "default",
                                                "%",
                                                "%2F",
                                                "%zz",
                                                "..",
                                                "",
                                                "%00",
                                                "p1",
                                                "prometheus1.example.com",
                                                "?",
                                                "&",
                                                "=",
                                                "id",
                                                "namespace",
                                                "config",
                                                "export-config",
                                                "blackbox",
                                                "+",
                                                ";",
                                                "\xff",
                                                "\r\n",
                                                "{",
                                                "%C3%A9",
                                                "default-blackbox",
                                                "whoami",
                                                "limit",
                                                "offset",
                                                "-1",
                                                "99999999999999999999",
                                                "filterSelector",
                                                "filterName",
                                                "("};
  const std::vector<std::string> body_pieces = {"{",
                                                "}",
                                                "[",
                                                "]",
                                                "\"name\"",
                                                ":",
                                                ",",
                                                "\"labels\"",
                                                "\"x\"",
                                                "1",
                                                "-1e999",
                                                "null",
                                                "true",
                                                "\"\\u",
                                                "\xff",
                                                "\"namespace\"",
                                                "\"endpoint\"",
                                                "\"http://a/m\"",
                                                "\"export\"",
                                                "2",
                                                " ",
                                                "\"selector\"",
                                                "\"!=(\"",
                                                "\"expires\"",
                                                "\"namespaces\"",
                                                "\"id\"",
                                                "\0"s,
                                                R"("\ud800")"};
  const std::vector<std::optional<std::string>> credentials = {admin_,   machine_,  std::nullopt,
                                                               "Bearer", "Basic x", "Bearer a.b.c"};
  auto pick = [&random](const auto& pieces) {
    return pieces[std::uniform_int_distribution<size_t>(0, pieces.size() - 1)(random)];
  };
  for (int i = 0; i < 3000; ++i) {
    std::string target = i % 3 == 0 ? "/v1/" : "/";
    const int path_length = std::uniform_int_distribution<int>(0, 6)(random);
    for (int j = 0; j < path_length; ++j) {
      target += pick(path_pieces);
      target += j % 2 == 0 ? "/" : "";
    }
    std::string body;
    const int body_length = std::uniform_int_distribution<int>(0, 12)(random);
    for (int j = 0; j < body_length; ++j) {
      body += pick(body_pieces);
    }
    if (i % 10 == 0) {
      body.clear();
      for (int j = 0; j < 40; ++j) {
        body += static_cast<char>(std::uniform_int_distribution<int>(0, 255)(random));
      }
    }
    std::string method = pick(methods);
    if (i % 4 == 1) {
      // Well-formed requests with odd values, to reach the handlers and the registry.
      static const std::vector<std::string> targets = {"/v1/servers", "/v1/services",
                                                       "/v1/namespaces", "/v1/tokens"};
      static const std::vector<std::string> values = {"",
                                                      "a",
                                                      "default",
                                                      "p1",
                                                      "http://x/m",
                                                      "https://[::1]:9/p?q=1",
                                                      "a=b",
                                                      "!=(",
                                                      "zone in (a,b)",
                                                      "-1h",
                                                      "1h",
                                                      "\0"s,
                                                      "\xc3\xa9",
                                                      "a/b",
                                                      "ftp://x",
                                                      "http://",
                                                      "environment=test",
                                                      "default-blackbox",
                                                      "__name__",
                                                      "9999999h"};
      OrderedJson request = {{"name", pick(values)},
                             {"endpoint", pick(values)},
                             {"namespace", pick(values)},
                             {"selector", pick(values)},
                             {"id", pick(values)},
                             {"expires", pick(values)},
                             {"namespaces", {pick(values)}},
                             {"export", std::uniform_int_distribution<int>(-1, 3)(random)},
                             {"labels", {{pick(values), pick(values)}}}};
      if (i % 8 == 1) {
        // Mostly valid services, so that placement and http_sd see odd names and labels too.
        request["namespace"] = "";
        request["selector"] = "";
      }
      method = "POST";
      target = i % 8 == 1 ? "/v1/services" : pick(targets);
      body = request.dump();
    }
    const http::Response response = Send(method, target, body, pick(credentials));
    ASSERT_GE(response.status, 200) << method << " " << target << " " << body;
    ASSERT_LT(response.status, 500)
        << method << " " << target << " " << body << " -> " << response.body;
    if (response.status != 304) {
      EXPECT_FALSE(Json::parse(response.body, nullptr, false).is_discarded()) << response.body;
    }
  }
}

}  // namespace
}  // namespace discovery::rest
