// Keeps openapi.json honest: its paths and operations must be exactly the routes RestApi serves
// (plus /metrics, /healthz, /readyz of the daemon), each operation must name its RPC and use
// that RPC's request and response messages, every schema must match its proto message field by
// field in the JSON mapping rest/json.h produces, and every documented example must both satisfy
// its schema and, sent to a real RestApi, get a served answer that satisfies the schema.
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "fmt/format.h"
#include "fmt/ranges.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "api/dispatcher.h"
#include "api/handlers.h"
#include "auth/authenticator.h"
#include "auth/authorizer.h"
#include "auth/machine_token.h"
#include "openapi/docs.h"
#include "registry/registry.h"
#include "rest/rest_api.h"
#include "testing/api_stack.h"
#include "testing/status_matchers.h"

namespace discovery::openapi {
namespace {

using ::discovery::testing::IsOk;
using ::google::protobuf::Descriptor;
using ::google::protobuf::DescriptorPool;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::MethodDescriptor;
using Json = ::nlohmann::json;

constexpr std::string_view kProtoPackage = "postfinance.discovery.v1.";

// The reference to the schema `name` of components/schemas.
std::string SchemaRef(std::string_view name) {
  return fmt::format("#/components/schemas/{}", name);
}
// Served by the daemon itself (server/daemon.cc), not by RestApi.
const std::set<std::pair<std::string, std::string>> kDaemonOperations = {
    {"/metrics", "GET"}, {"/healthz", "GET"}, {"/readyz", "GET"}};
const std::set<std::string> kHttpMethods = {"get",  "put",     "post",  "delete",
                                            "head", "options", "patch", "trace"};

const Json& Doc() {
  static const auto* const doc = new Json(Json::parse(Document()));
  return *doc;
}

std::string Upper(std::string text) {
  for (char& c : text) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return text;
}

std::string Lower(std::string text) {
  for (char& c : text) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return text;
}

// What a "$ref" points to; only local references are used.
const Json& Resolve(const Json& node) {
  if (!node.is_object() || !node.contains("$ref")) {
    return node;
  }
  const std::string ref = node.at("$ref").get<std::string>();
  EXPECT_TRUE(ref.starts_with("#/")) << ref;
  return Resolve(Doc().at(Json::json_pointer(ref.substr(1))));
}

// Validates `value` against `schema`, for the subset of OpenAPI 3.0 schema keywords that
// openapi.json uses; a keyword outside it is an error, so the validator cannot silently pass
// what it does not understand.
void Validate(const Json& schema_or_ref, const Json& value, const std::string& where,
              std::vector<std::string>* errors) {
  static const std::set<std::string> keywords = {
      "type",  "format",     "description",          "example",  "enum",   "nullable",
      "items", "properties", "additionalProperties", "required", "pattern"};
  const Json& schema = Resolve(schema_or_ref);
  for (const auto& [keyword, unused] : schema.items()) {
    if (!keywords.contains(keyword)) {
      errors->push_back(fmt::format("{}: schema keyword {} is not understood", where, keyword));
    }
  }
  if (value.is_null() && schema.value("nullable", false)) {
    return;
  }
  auto fail = [&](const std::string& what) {
    errors->push_back(where + ": " + what + ", got " + value.dump());
  };
  const std::string type = schema.value("type", "");
  if (schema.contains("enum") &&
      std::find(schema["enum"].begin(), schema["enum"].end(), value) == schema["enum"].end()) {
    fail("not one of " + schema["enum"].dump());
  }
  if (type == "object") {
    if (!value.is_object()) {
      return fail("expected an object");
    }
    const Json properties = schema.value("properties", Json::object());
    for (const Json& name : schema.value("required", Json::array())) {
      if (!value.contains(name.get<std::string>())) {
        fail("misses required " + name.get<std::string>());
      }
    }
    for (const auto& [key, item] : value.items()) {
      if (properties.contains(key)) {
        Validate(properties[key], item, fmt::format("{}.{}", where, key), errors);
      } else if (!schema.contains("additionalProperties")) {
        continue;
      } else if (schema["additionalProperties"].is_boolean()) {
        if (!schema["additionalProperties"].get<bool>()) {
          fail("has undocumented property " + key);
        }
      } else {
        Validate(schema["additionalProperties"], item, fmt::format("{}.{}", where, key), errors);
      }
    }
  } else if (type == "array") {
    if (!value.is_array()) {
      return fail("expected an array");
    }
    for (size_t i = 0; i < value.size(); ++i) {
      Validate(schema.at("items"), value[i], where + "[" + std::to_string(i) + "]", errors);
    }
  } else if (type == "string") {
    if (!value.is_string()) {
      return fail("expected a string");
    }
    const std::string text = value.get<std::string>();
    const std::string format = schema.value("format", "");
    static const std::regex date_time(
        R"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z)");
    if (format == "date-time" && !std::regex_match(text, date_time)) {
      fail("not an RFC 3339 UTC time");
    }
    if (format == "int64" && !std::regex_match(text, std::regex("-?[0-9]+"))) {
      fail("not an int64 in a string");
    }
    if (schema.contains("pattern") &&
        !std::regex_search(text, std::regex(schema["pattern"].get<std::string>()))) {
      fail("does not match " + schema["pattern"].get<std::string>());
    }
  } else if (type == "integer") {
    if (!value.is_number_integer()) {
      fail("expected an integer");
    }
  } else if (type == "boolean") {
    if (!value.is_boolean()) {
      fail("expected a boolean");
    }
  } else {
    errors->push_back(where + ": schema type '" + type + "' is not understood");
  }
}

std::vector<std::string> Validated(const Json& schema, const Json& value,
                                   const std::string& where) {
  std::vector<std::string> errors;
  Validate(schema, value, where, &errors);
  return errors;
}

struct DocOperation {
  std::string path;
  std::string method;  // upper case
  const Json* operation;
};

std::vector<DocOperation> DocOperations() {
  std::vector<DocOperation> operations;
  for (const auto& [path, item] : Doc().at("paths").items()) {
    for (const auto& [method, operation] : item.items()) {
      EXPECT_TRUE(kHttpMethods.contains(method)) << path << " has " << method;
      operations.push_back({.path = path, .method = Upper(method), .operation = &operation});
    }
  }
  return operations;
}

const MethodDescriptor* RpcOf(std::string_view rpc) {
  // "/postfinance.discovery.v1.ServerAPI/ListServer" ->
  // "postfinance.discovery.v1.ServerAPI.ListServer"
  std::string name{rpc.substr(1)};
  std::replace(name.begin(), name.end(), '/', '.');
  return DescriptorPool::generated_pool()->FindMethodByName(name);
}

// "ServerAPI_ListServer" for "/postfinance.discovery.v1.ServerAPI/ListServer".
std::string OperationIdOf(std::string_view rpc) {
  const MethodDescriptor* method = RpcOf(rpc);
  return method == nullptr ? "" : method->service()->name() + "_" + method->name();
}

std::set<std::string> ParamNames(const Json& operation, std::string_view in) {
  std::set<std::string> names;
  for (const Json& parameter : operation.value("parameters", Json::array())) {
    if (parameter.at("in") == in) {
      names.insert(parameter.at("name").get<std::string>());
    }
  }
  return names;
}

std::set<std::string> PatternParams(std::string_view pattern) {
  std::set<std::string> names;
  size_t open = pattern.find('{');
  while (open != std::string_view::npos) {
    const size_t close = pattern.find('}', open);
    names.insert(std::string{pattern.substr(open + 1, close - open - 1)});
    open = pattern.find('{', close);
  }
  return names;
}

const Json& JsonSchemaOf(const Json& body_or_response) {
  return Resolve(body_or_response).at("content").at("application/json").at("schema");
}

TEST(OpenApiDocumentTest, IsOpenApi3WithBearerAuth) {
  EXPECT_THAT(Doc().at("openapi").get<std::string>(), ::testing::StartsWith("3.0."));
  EXPECT_EQ(Doc().at("components").at("securitySchemes").at("bearerAuth"),
            Json::parse(R"({"type":"http","scheme":"bearer","bearerFormat":"JWT",
                "description":"A machine token or an OIDC ID/access token, sent as `Authorization: Bearer <token>`."})"));
  EXPECT_EQ(Doc().at("security"), Json::parse(R"([{"bearerAuth":[]}])"));
}

TEST(OpenApiDocumentTest, OperationsAreExactlyTheServedRoutes) {
  std::set<std::pair<std::string, std::string>> served = kDaemonOperations;
  for (const rest::RestApi::Operation& operation : rest::RestApi::Operations()) {
    served.emplace(std::string{operation.pattern}, std::string{operation.method});
  }
  std::set<std::pair<std::string, std::string>> documented;
  for (const DocOperation& operation : DocOperations()) {
    documented.emplace(operation.path, operation.method);
  }
  for (const auto& [path, method] : served) {
    EXPECT_TRUE(documented.contains({path, method})) << method << " " << path << " is served but "
                                                     << "not in src/openapi/openapi.json";
  }
  for (const auto& [path, method] : documented) {
    EXPECT_TRUE(served.contains({path, method}))
        << method << " " << path << " is in src/openapi/openapi.json but not served";
  }
}

TEST(OpenApiDocumentTest, EachRestOperationDocumentsItsRpc) {
  std::map<std::pair<std::string, std::string>, const Json*> documented;
  for (const DocOperation& operation : DocOperations()) {
    documented[{operation.path, operation.method}] = operation.operation;
  }
  for (const rest::RestApi::Operation& route : rest::RestApi::Operations()) {
    const std::string where = fmt::format("{} {}", route.method, route.pattern);
    SCOPED_TRACE(where);
    const auto it = documented.find({std::string{route.pattern}, std::string{route.method}});
    ASSERT_NE(it, documented.end());
    const Json& operation = *it->second;
    const MethodDescriptor* rpc = RpcOf(route.rpc);
    ASSERT_NE(rpc, nullptr) << route.rpc;
    EXPECT_EQ(operation.value("operationId", ""), OperationIdOf(route.rpc));
    EXPECT_FALSE(operation.contains("security")) << "the API needs the global bearer auth";

    // Path parameters: exactly the pattern's, all required.
    EXPECT_EQ(ParamNames(operation, "path"), PatternParams(route.pattern));
    for (const Json& parameter : operation.value("parameters", Json::array())) {
      if (parameter.at("in") == "path") {
        EXPECT_TRUE(parameter.value("required", false)) << parameter.dump();
      }
    }
    // The request: the JSON body for POST, else the URL: every string field of the request
    // that is not a path parameter is a query parameter (rest/call.cc's FillFromUrl).
    const Descriptor* input = rpc->input_type();
    if (route.method == "POST") {
      ASSERT_TRUE(operation.contains("requestBody"));
      EXPECT_EQ(operation["requestBody"]["content"]["application/json"]["schema"]["$ref"],
                SchemaRef(input->name()));
      EXPECT_EQ(ParamNames(operation, "query"), std::set<std::string>());
    } else {
      EXPECT_FALSE(operation.contains("requestBody"));
      std::set<std::string> query;
      for (int i = 0; i < input->field_count(); ++i) {
        const FieldDescriptor* field = input->field(i);
        if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING &&
            !PatternParams(route.pattern).contains(field->name())) {
          query.insert(field->json_name());
        }
      }
      if (rpc->name() == "ListTargetGroup") {
        query.insert("export-config");  // the alias of `config`
      }
      if (rpc->name() == "ListService") {
        // The page of ListServiceStream's rows (rest_api.h).
        query.insert({"filterName", "filterEndpoint", "filterServer", "filterSelector", "sortBy",
                      "offset", "limit"});
      }
      EXPECT_EQ(ParamNames(operation, "query"), query);
    }
    // The answer: the response message, but http_sd answers the bare target group array.
    const Json& responses = operation.at("responses");
    ASSERT_TRUE(responses.contains("200"));
    const Json& ok_schema = JsonSchemaOf(responses["200"]);
    const Descriptor* output = rpc->output_type();
    if (rpc->name() == "ListTargetGroup") {
      const FieldDescriptor* groups = output->FindFieldByName("targetgroups");
      ASSERT_NE(groups, nullptr);
      EXPECT_EQ(ok_schema,
                Json({{"type", "array"},
                      {"items", {{"$ref", SchemaRef(groups->message_type()->name())}}}}));
    } else {
      EXPECT_EQ(ok_schema, Json({{"$ref", SchemaRef(output->name())}}));
    }
    // Errors: grpc-gateway's body, and 401 (every route needs a token).
    ASSERT_TRUE(responses.contains("401"));
    ASSERT_TRUE(responses.contains("default"));
    for (const auto& [code, response] : responses.items()) {
      if (code != "200" && code != "304") {
        EXPECT_EQ(JsonSchemaOf(response), Json({{"$ref", SchemaRef("Error")}})) << code;
      }
    }
  }
}

TEST(OpenApiDocumentTest, DaemonOperationsNeedNoToken) {
  for (const auto& [path, method] : kDaemonOperations) {
    const Json& operation = Doc().at("paths").at(path).at(Lower(method));
    EXPECT_EQ(operation.at("security"), Json::array()) << path;
    EXPECT_TRUE(operation.at("responses").contains("200")) << path;
  }
}

// The JSON schema of one proto field as rest/json.h prints it.
Json ExpectedFieldSchema(const FieldDescriptor* field) {
  auto scalar = [](const FieldDescriptor* f) -> Json {
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        return {{"type", "string"}};
      case FieldDescriptor::CPPTYPE_INT32:
        return {{"type", "integer"}, {"format", "int32"}};
      case FieldDescriptor::CPPTYPE_INT64:
        return {{"type", "string"}, {"format", "int64"}};
      case FieldDescriptor::CPPTYPE_BOOL:
        return {{"type", "boolean"}};
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (f->message_type()->full_name() == "google.protobuf.Timestamp") {
          return {{"type", "string"}, {"format", "date-time"}};
        }
        if (f->message_type()->full_name() == "google.protobuf.Duration") {
          return {{"type", "string"}};  // protobuf JSON: seconds with an "s" ("60s")
        }
        return {{"$ref", SchemaRef(f->message_type()->name())}};
      default:
        return {{"type", std::string("unmapped ") + f->cpp_type_name()}};
    }
  };
  if (field->is_map()) {
    return {{"type", "object"},
            {"additionalProperties", scalar(field->message_type()->map_value())}};
  }
  if (field->is_repeated()) {
    return {{"type", "array"}, {"items", scalar(field)}};
  }
  return scalar(field);
}

// `schema` without what only documents (description, example, enum, string formats, ...).
Json Structural(const Json& schema) {
  Json result = Json::object();
  for (const auto& [keyword, value] : schema.items()) {
    // int32, int64 and date-time say how the value is printed; uri and uuid only document.
    const bool printed_format = keyword == "format" && value != "uri" && value != "uuid";
    if (keyword == "type" || keyword == "$ref" || printed_format) {
      result[keyword] = value;
    } else if (keyword == "items" || keyword == "additionalProperties") {
      result[keyword] = value.is_object() ? Structural(value) : value;
    }
  }
  return result;
}

TEST(OpenApiDocumentTest, SchemasMatchTheProtoMessages) {
  for (const auto& [name, schema] : Doc().at("components").at("schemas").items()) {
    SCOPED_TRACE(name);
    if (name == "Error") {
      EXPECT_EQ(Structural(schema),
                Json::parse(R"({"type":"object","additionalProperties":false})"));
      EXPECT_EQ(schema.at("required"), Json::parse(R"(["code","message","details"])"));
      continue;
    }
    const Descriptor* message = DescriptorPool::generated_pool()->FindMessageTypeByName(
        fmt::format("{}{}", kProtoPackage, name));
    ASSERT_NE(message, nullptr) << "no proto message " << name;
    EXPECT_EQ(schema.at("type"), "object");
    std::set<std::string> fields;
    const Json properties = schema.value("properties", Json::object());
    for (int i = 0; i < message->field_count(); ++i) {
      const FieldDescriptor* field = message->field(i);
      fields.insert(field->json_name());
      ASSERT_TRUE(properties.contains(field->json_name())) << field->json_name();
      EXPECT_EQ(Structural(properties[field->json_name()]), ExpectedFieldSchema(field))
          << field->json_name();
    }
    std::set<std::string> documented;
    for (const auto& [property, unused] : properties.items()) {
      documented.insert(property);
    }
    EXPECT_EQ(documented, fields);
    if (name.ends_with("Request")) {
      // Unknown request fields are ignored, as in grpc-gateway.
      EXPECT_FALSE(schema.contains("additionalProperties"));
    } else {
      // Answers print every field (rest/json.h) and nothing else.
      EXPECT_EQ(schema.value("additionalProperties", Json(true)), Json(false));
      std::set<std::string> required;
      for (const Json& field : schema.value("required", Json::array())) {
        required.insert(field.get<std::string>());
      }
      EXPECT_EQ(required, fields);
    }
  }
}

void CollectRefs(const Json& node, std::vector<std::string>* refs) {
  if (node.is_object()) {
    if (node.contains("$ref")) {
      refs->push_back(node["$ref"].get<std::string>());
    }
    for (const auto& [key, value] : node.items()) {
      CollectRefs(value, refs);
    }
  } else if (node.is_array()) {
    for (const Json& value : node) {
      CollectRefs(value, refs);
    }
  }
}

TEST(OpenApiDocumentTest, EveryReferenceResolves) {
  std::vector<std::string> refs;
  CollectRefs(Doc(), &refs);
  EXPECT_FALSE(refs.empty());
  for (const std::string& ref : refs) {
    ASSERT_TRUE(ref.starts_with("#/")) << ref;
    EXPECT_TRUE(Doc().contains(Json::json_pointer(ref.substr(1)))) << ref;
  }
}

TEST(OpenApiDocumentTest, ExamplesSatisfyTheirSchemas) {
  for (const DocOperation& doc_operation : DocOperations()) {
    const Json& operation = *doc_operation.operation;
    const std::string where = doc_operation.method + " " + doc_operation.path;
    if (operation.contains("requestBody")) {
      const Json& media = Resolve(operation["requestBody"])["content"]["application/json"];
      ASSERT_TRUE(media.contains("example")) << where;
      EXPECT_THAT(Validated(media["schema"], media["example"], where + " request"),
                  ::testing::IsEmpty());
    }
    for (const auto& [code, response_or_ref] : operation.at("responses").items()) {
      const Json& response = Resolve(response_or_ref);
      if (!response.contains("content") || !response["content"].contains("application/json")) {
        continue;
      }
      const Json& media = response["content"]["application/json"];
      ASSERT_TRUE(media.contains("example")) << where << " " << code;
      EXPECT_THAT(Validated(media["schema"], media["example"], fmt::format("{} {}", where, code)),
                  ::testing::IsEmpty());
    }
  }
}

// Runs every documented REST operation with its documented examples against a real RestApi
// (embedded store, real handlers and tokens) and checks the answers against the document.
class ServedExamplesTest : public ::testing::Test {
 protected:
  static constexpr const char* kIssuer = "openapi-test";
  static constexpr const char* kSecret = "openapi-secret";

  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(stack_,
                         testing::ApiStack::Create(
                             {.handlers = {.tokens = {.issuer = kIssuer, .secret = kSecret}}}));
    registry_ = &stack_->registry();
    handlers_ = &stack_->handlers();
    authenticator_ = std::make_unique<auth::Authenticator>(
        auth::AuthenticatorOptions{.issuer = kIssuer, .secret = kSecret});
    dispatcher_ = std::make_unique<api::Dispatcher>(*handlers_, *authenticator_);
    api_ = std::make_unique<rest::RestApi>(*dispatcher_);
    absl::StatusOr<std::string> token =
        auth::CreateMachineToken({.issuer = kIssuer, .secret = kSecret, .admin = true}, "root", {},
                                 absl::ZeroDuration(), absl::Now());
    ASSERT_THAT(token, IsOk());
    admin_ = "Bearer " + *token;
  }

  http::Response Send(const std::string& method, const std::string& path, const std::string& query,
                      std::string body, const std::string& authorization) const {
    http::Request request;
    request.method = method;
    request.path = path;
    request.query = query;
    request.target = query.empty() ? path : path + "?" + query;
    request.body = std::move(body);
    if (!authorization.empty()) {
      request.headers.emplace_back("Authorization", authorization);
    }
    http::Response response = api_->Handle(request);
    // Cached bodies (http_sd) come as a shared buffer.
    if (response.shared_body != nullptr) {
      response.body = *response.shared_body;
    }
    return response;
  }

  std::unique_ptr<testing::ApiStack> stack_;
  registry::Registry* registry_ = nullptr;
  api::Handlers* handlers_ = nullptr;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<api::Dispatcher> dispatcher_;
  std::unique_ptr<rest::RestApi> api_;
  std::string admin_;
};

// Percent-encodes everything but unreserved characters (RFC 3986).
std::string Encode(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      out += c;
    } else {
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    }
  }
  return out;
}

TEST_F(ServedExamplesTest, EveryOperationAnswersItsExamplesAsDocumented) {
  // An order in which each operation's examples build on the previous ones' (a server before
  // the service placed on it, the token before its info, ...).
  const std::vector<std::string> order = {"NamespaceAPI_RegisterNamespace",
                                          "NamespaceAPI_ListNamespace",
                                          "ServerAPI_RegisterServer",
                                          "ServerAPI_ListServer",
                                          "ServiceAPI_RegisterService",
                                          "ServiceAPI_ListService",
                                          "ServiceAPI_ListTargetGroup",
                                          "ServiceAPI_KeepAlive",
                                          "ServiceAPI_UnRegisterService",
                                          "ServerAPI_UnregisterServer",
                                          "NamespaceAPI_UnregisterNamespace",
                                          "TokenAPI_Create",
                                          "TokenAPI_Info",
                                          "TokenAPI_Revoke",
                                          "TokenAPI_ListRevoked",
                                          "TokenAPI_WhoAmI"};
  std::map<std::string, DocOperation> by_id;
  for (const DocOperation& operation : DocOperations()) {
    if (operation.path.starts_with("/v1/")) {
      by_id.emplace(operation.operation->at("operationId").get<std::string>(), operation);
    }
  }
  ASSERT_EQ(by_id.size(), order.size()) << "add new operations to `order`";
  std::string created_token;
  for (const std::string& id : order) {
    SCOPED_TRACE(id);
    ASSERT_TRUE(by_id.contains(id));
    const DocOperation& doc_operation = by_id.at(id);
    const Json& operation = *doc_operation.operation;
    std::string path = doc_operation.path;
    std::vector<std::string> query;
    for (const Json& parameter : operation.value("parameters", Json::array())) {
      const std::string name = parameter.at("name").get<std::string>();
      if (!parameter.contains("example")) {
        continue;
      }
      std::string value = parameter["example"].get<std::string>();
      if (id == "TokenAPI_Info") {
        value = created_token;  // the documented token is not signed with this test's secret
      }
      if (parameter["in"] == "path") {
        path.replace(path.find("{" + name + "}"), name.size() + 2, Encode(value));
      } else if (parameter["in"] == "query") {
        query.push_back(name + "=" + Encode(value));
      }
    }
    std::string body;
    if (operation.contains("requestBody")) {
      body = Resolve(operation["requestBody"])["content"]["application/json"]["example"].dump();
    }
    const http::Response response =
        Send(doc_operation.method, path, fmt::format("{}", fmt::join(query, "&")), body, admin_);
    ASSERT_EQ(response.status, 200) << path << " " << body << " -> " << response.body;
    const Json served = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(served.is_discarded()) << response.body;
    const Json& documented = Resolve(operation["responses"]["200"]);
    EXPECT_THAT(
        Validated(documented["content"]["application/json"]["schema"], served, id + " served"),
        ::testing::IsEmpty());
    if (id == "ServiceAPI_ListTargetGroup") {
      // Deterministic: the documented service example placed on the documented server.
      EXPECT_EQ(served, documented["content"]["application/json"]["example"]);
    }
    if (id == "TokenAPI_Create") {
      created_token = served.at("token").get<std::string>();
    }
  }
}

TEST_F(ServedExamplesTest, ErrorsAnswerTheDocumentedErrorSchema) {
  const Json& error = Doc().at("components").at("schemas").at("Error");
  const http::Response unauthenticated = Send("GET", "/v1/namespaces", "", "", "");
  EXPECT_EQ(unauthenticated.status, 401);
  EXPECT_THAT(Validated(error, Json::parse(unauthenticated.body), "401"), ::testing::IsEmpty());
  const http::Response bad = Send("POST", "/v1/servers", "", "{", admin_);
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(Validated(error, Json::parse(bad.body), "400"), ::testing::IsEmpty());
  const http::Response missing = Send("DELETE", "/v1/servers/nope", "", "", admin_);
  EXPECT_EQ(missing.status, 404);
  EXPECT_THAT(Validated(error, Json::parse(missing.body), "404"), ::testing::IsEmpty());
}

}  // namespace
}  // namespace discovery::openapi
