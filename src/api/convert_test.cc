#include "api/convert.h"

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "postfinance/discovery/v1/namespace_api.grpc.pb.h"
#include "postfinance/discovery/v1/server_api.grpc.pb.h"
#include "postfinance/discovery/v1/service_api.grpc.pb.h"
#include "postfinance/discovery/v1/token_api.grpc.pb.h"

namespace discovery::api {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::FileDescriptor;
using ::google::protobuf::MethodDescriptor;
using ::google::protobuf::ServiceDescriptor;
using ::testing::ElementsAre;
using ::testing::Optional;

absl::Time Parse(const std::string& rfc3339) {
  absl::Time time;
  std::string error;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &time, &error)) << error;
  return time;
}

// ---- Wire contract: the descriptors compiled from proto/ (docs/decisions.md D28) ----

constexpr std::string_view kPackage = "postfinance.discovery.v1";

// "string", "int64", "repeated string", "map<string,string>", "google.protobuf.Timestamp",
// "repeated postfinance.discovery.v1.Service", ...
std::string TypeOf(const FieldDescriptor& field) {
  if (field.is_map()) {
    const Descriptor& entry = *field.message_type();
    return "map<" + TypeOf(*entry.map_key()) + "," + TypeOf(*entry.map_value()) + ">";
  }
  std::string type = field.type() == FieldDescriptor::TYPE_MESSAGE
                         ? field.message_type()->full_name()
                         : std::string{field.type_name()};
  return field.is_repeated() ? "repeated " + type : type;
}

struct FieldSpec {
  std::string name;
  int number;
  std::string type;
  std::string json_name;
};

struct MessageSpec {
  std::string file;  // below postfinance/discovery/v1/
  std::string name;  // below the package
  std::vector<FieldSpec> fields;
};

const std::vector<MessageSpec>& Messages() {
  static const auto* const messages = new std::vector<MessageSpec>{
      {"namespace.proto",
       "Namespace",
       {{"name", 1, "string", "name"},
        {"export", 2, "int32", "export"},
        {"modified", 3, "google.protobuf.Timestamp", "modified"}}},
      {"server.proto",
       "Server",
       {{"name", 1, "string", "name"},
        {"labels", 2, "map<string,string>", "labels"},
        {"modified", 3, "google.protobuf.Timestamp", "modified"},
        {"state", 4, "int64", "state"}}},
      {"service.proto",
       "Service",
       {{"id", 1, "string", "id"},
        {"name", 2, "string", "name"},
        {"endpoint", 3, "string", "endpoint"},
        {"namespace", 4, "string", "namespace"},
        {"selector", 5, "string", "selector"},
        {"servers", 6, "repeated string", "servers"},
        {"labels", 7, "map<string,string>", "labels"},
        {"description", 8, "string", "description"},
        {"modified", 9, "google.protobuf.Timestamp", "modified"},
        // Not in the original: registrations with a TTL (docs/decisions.md D49), new field
        // numbers.
        {"ttl", 10, "google.protobuf.Duration", "ttl"},
        {"expires", 11, "google.protobuf.Timestamp", "expires"}}},
      // Not in the original: invalid records (docs/decisions.md D36), only in ListServiceResponse
      // field 2.
      {"service.proto",
       "InvalidService",
       {{"service", 1, "postfinance.discovery.v1.Service", "service"},
        {"reason", 2, "string", "reason"}}},
      {"targetgroup.proto",
       "TargetGroup",
       {{"targets", 1, "repeated string", "targets"},
        {"labels", 2, "map<string,string>", "labels"}}},
      {"tokeninfo.proto",
       "TokenInfo",
       {{"id", 1, "string", "id"},
        {"namespaces", 2, "repeated string", "namespaces"},
        {"expires_at", 3, "google.protobuf.Timestamp", "expiresAt"}}},

      {"namespace_api.proto",
       "RegisterNamespaceRequest",
       {{"name", 1, "string", "name"}, {"export", 2, "int32", "export"}}},
      {"namespace_api.proto",
       "RegisterNamespaceResponse",
       {{"namespace", 1, "postfinance.discovery.v1.Namespace", "namespace"}}},
      {"namespace_api.proto", "UnregisterNamespaceRequest", {{"name", 1, "string", "name"}}},
      {"namespace_api.proto", "UnregisterNamespaceResponse", {}},
      {"namespace_api.proto", "ListNamespaceRequest", {}},
      {"namespace_api.proto",
       "ListNamespaceResponse",
       {{"namespaces", 1, "repeated postfinance.discovery.v1.Namespace", "namespaces"}}},

      {"server_api.proto",
       "RegisterServerRequest",
       {{"name", 1, "string", "name"}, {"labels", 2, "map<string,string>", "labels"}}},
      {"server_api.proto",
       "RegisterServerResponse",
       {{"server", 1, "postfinance.discovery.v1.Server", "server"}}},
      {"server_api.proto", "UnregisterServerRequest", {{"name", 1, "string", "name"}}},
      {"server_api.proto", "UnregisterServerResponse", {}},
      {"server_api.proto", "ListServerRequest", {}},
      {"server_api.proto",
       "ListServerResponse",
       {{"servers", 1, "repeated postfinance.discovery.v1.Server", "servers"}}},

      {"service_api.proto",
       "RegisterServiceRequest",
       {{"name", 1, "string", "name"},
        {"endpoint", 2, "string", "endpoint"},
        {"labels", 3, "map<string,string>", "labels"},
        {"description", 4, "string", "description"},
        {"namespace", 5, "string", "namespace"},
        {"selector", 6, "string", "selector"},
        // Not in the original (docs/decisions.md D49): a new field number; unset is no TTL.
        {"ttl", 7, "google.protobuf.Duration", "ttl"}}},
      {"service_api.proto",
       "RegisterServiceResponse",
       {{"service", 1, "postfinance.discovery.v1.Service", "service"}}},
      {"service_api.proto",
       "UnRegisterServiceRequest",
       {{"id", 1, "string", "id"}, {"namespace", 2, "string", "namespace"}}},
      {"service_api.proto", "UnRegisterServiceResponse", {}},
      // Not in the original: renewal of services with a TTL (docs/decisions.md D49).
      {"service_api.proto",
       "KeepAliveRequest",
       {{"namespace", 1, "string", "namespace"}, {"ids", 2, "repeated string", "ids"}}},
      {"service_api.proto",
       "KeepAliveResponse",
       {{"services", 1, "repeated postfinance.discovery.v1.Service", "services"},
        {"not_found", 2, "repeated string", "notFound"}}},
      {"service_api.proto", "ListServiceRequest", {{"namespace", 1, "string", "namespace"}}},
      {"service_api.proto",
       "ListServiceResponse",
       {{"services", 1, "repeated postfinance.discovery.v1.Service", "services"},
        // Not in the original: a new field number, which its clients skip.
        {"invalid_services", 2, "repeated postfinance.discovery.v1.InvalidService",
         "invalidServices"}}},
      {"service_api.proto",
       "ListTargetGroupRequest",
       {{"server", 1, "string", "server"},
        {"namespace", 2, "string", "namespace"},
        {"config", 3, "string", "config"}}},
      {"service_api.proto",
       "ListTargetGroupResponse",
       {{"targetgroups", 1, "repeated postfinance.discovery.v1.TargetGroup", "targetgroups"}}},
      // Not in the original: the streamed list (lists of any size).
      {"service_api.proto",
       "ListServiceStreamRequest",
       {{"namespace", 1, "string", "namespace"},
        {"filter_name", 2, "string", "filterName"},
        {"filter_endpoint", 3, "string", "filterEndpoint"},
        {"filter_server", 4, "string", "filterServer"},
        {"filter_selector", 5, "string", "filterSelector"},
        {"sort_by", 6, "string", "sortBy"},
        {"served_only", 7, "bool", "servedOnly"}}},
      {"service_api.proto",
       "ListedService",
       {{"service", 1, "postfinance.discovery.v1.Service", "service"},
        {"invalid_reason", 2, "string", "invalidReason"}}},
      {"service_api.proto",
       "ListServiceStreamResponse",
       {{"services", 1, "repeated postfinance.discovery.v1.ListedService", "services"},
        {"total", 2, "uint64", "total"}}},

      {"token_api.proto",
       "CreateRequest",
       {{"id", 1, "string", "id"},
        {"namespaces", 2, "repeated string", "namespaces"},
        {"expires", 3, "string", "expires"}}},
      {"token_api.proto", "CreateResponse", {{"token", 1, "string", "token"}}},
      {"token_api.proto", "InfoRequest", {{"token", 1, "string", "token"}}},
      {"token_api.proto",
       "InfoResponse",
       {{"tokeninfo", 1, "postfinance.discovery.v1.TokenInfo", "tokeninfo"}}},
      // Not in the original: revocation of machine tokens (docs/decisions.md D35).
      {"token_api.proto", "RevokeRequest", {{"id", 1, "string", "id"}}},
      {"token_api.proto",
       "RevokeResponse",
       {{"revoked", 1, "postfinance.discovery.v1.RevokedToken", "revoked"}}},
      {"token_api.proto", "ListRevokedRequest", {}},
      {"token_api.proto",
       "ListRevokedResponse",
       {{"revoked", 1, "repeated postfinance.discovery.v1.RevokedToken", "revoked"}}},
      {"token_api.proto",
       "RevokedToken",
       {{"id", 1, "string", "id"},
        {"revoked_at", 2, "google.protobuf.Timestamp", "revokedAt"},
        {"revoked_by", 3, "string", "revokedBy"}}},
      {"token_api.proto", "WhoAmIRequest", {}},
      {"token_api.proto",
       "WhoAmIResponse",
       {{"kind", 1, "string", "kind"},
        {"name", 2, "string", "name"},
        {"admin", 3, "bool", "admin"},
        {"all_namespaces", 4, "bool", "allNamespaces"},
        {"namespaces", 5, "repeated string", "namespaces"},
        {"roles", 6, "repeated string", "roles"}}},
  };
  return *messages;
}

struct MethodSpec {
  std::string name;
  std::string input;   // below the package
  std::string output;  // below the package
  bool server_streaming = false;
};

struct ServiceSpec {
  std::string file;
  std::string name;
  std::vector<MethodSpec> methods;
};

const std::vector<ServiceSpec>& Services() {
  static const auto* const services = new std::vector<ServiceSpec>{
      {"namespace_api.proto",
       "NamespaceAPI",
       {{"RegisterNamespace", "RegisterNamespaceRequest", "RegisterNamespaceResponse"},
        {"UnregisterNamespace", "UnregisterNamespaceRequest", "UnregisterNamespaceResponse"},
        {"ListNamespace", "ListNamespaceRequest", "ListNamespaceResponse"}}},
      {"server_api.proto",
       "ServerAPI",
       {{"RegisterServer", "RegisterServerRequest", "RegisterServerResponse"},
        {"UnregisterServer", "UnregisterServerRequest", "UnregisterServerResponse"},
        {"ListServer", "ListServerRequest", "ListServerResponse"}}},
      {"service_api.proto",
       "ServiceAPI",
       {{"RegisterService", "RegisterServiceRequest", "RegisterServiceResponse"},
        {"UnRegisterService", "UnRegisterServiceRequest", "UnRegisterServiceResponse"},
        {"ListService", "ListServiceRequest", "ListServiceResponse"},
        {"ListTargetGroup", "ListTargetGroupRequest", "ListTargetGroupResponse"},
        // Not in the original, whose servers answer UNIMPLEMENTED.
        {"ListServiceStream", "ListServiceStreamRequest", "ListServiceStreamResponse",
         /*server_streaming=*/true},
        // Not in the original (docs/decisions.md D49), whose servers answer UNIMPLEMENTED.
        {"KeepAlive", "KeepAliveRequest", "KeepAliveResponse"}}},
      {"token_api.proto",
       "TokenAPI",
       {{"Create", "CreateRequest", "CreateResponse"},
        {"Info", "InfoRequest", "InfoResponse"},
        // Not in the original.
        {"Revoke", "RevokeRequest", "RevokeResponse"},
        {"ListRevoked", "ListRevokedRequest", "ListRevokedResponse"},
        {"WhoAmI", "WhoAmIRequest", "WhoAmIResponse"}}},
  };
  return *services;
}

std::string Qualified(const std::string& name) { return std::string{kPackage} + "." + name; }

// The generated descriptors of the four API files (and, through their imports, the five message
// files). Naming a message of each also makes the linker keep every generated object file.
const FileDescriptor* ApiFile(const std::string& file) {
  const std::array<const FileDescriptor*, 4> files = {
      pb::ListNamespaceRequest::descriptor()->file(), pb::ListServerRequest::descriptor()->file(),
      pb::ListServiceRequest::descriptor()->file(), pb::InfoRequest::descriptor()->file()};
  for (const FileDescriptor* api_file : files) {
    if (api_file->name() == "postfinance/discovery/v1/" + file) {
      return api_file;
    }
  }
  return nullptr;
}

TEST(WireContractTest, EveryFileIsInThePackageWithTheReferenceOptions) {
  const std::array<std::string_view, 9> files = {
      "namespace.proto",   "namespace_api.proto", "server.proto",
      "server_api.proto",  "service.proto",       "service_api.proto",
      "targetgroup.proto", "token_api.proto",     "tokeninfo.proto"};
  ASSERT_NE(ApiFile("token_api.proto"), nullptr);
  const auto* pool = ApiFile("token_api.proto")->pool();
  for (const std::string_view name : files) {
    SCOPED_TRACE(name);
    const FileDescriptor* file =
        pool->FindFileByName(std::string("postfinance/discovery/v1/").append(name));
    ASSERT_NE(file, nullptr);
    EXPECT_EQ(file->package(), kPackage);
    EXPECT_EQ(file->syntax(), FileDescriptor::SYNTAX_PROTO3);
    EXPECT_EQ(file->options().java_package(), "ch.postfinance.discovery.v1");
    EXPECT_THAT(file->options().go_package(), ::testing::EndsWith(";discoveryv1"));
    // No message beyond those pinned in Messages() (the original's and the marked additions).
    const auto pinned = std::count_if(Messages().begin(), Messages().end(),
                                      [&](const MessageSpec& spec) { return spec.file == name; });
    EXPECT_EQ(file->message_type_count(), static_cast<int>(pinned));
  }
}

TEST(WireContractTest, MessagesHaveExactlyTheReferenceFields) {
  const auto* pool = ::google::protobuf::DescriptorPool::generated_pool();
  ASSERT_NE(ApiFile("service_api.proto"), nullptr);
  for (const MessageSpec& spec : Messages()) {
    SCOPED_TRACE(spec.name);
    const Descriptor* message = pool->FindMessageTypeByName(Qualified(spec.name));
    ASSERT_NE(message, nullptr);
    EXPECT_EQ(message->file()->name(), "postfinance/discovery/v1/" + spec.file);
    EXPECT_EQ(message->field_count(), static_cast<int>(spec.fields.size()));
    EXPECT_EQ(message->oneof_decl_count(), 0);
    for (const FieldSpec& field_spec : spec.fields) {
      SCOPED_TRACE(field_spec.name);
      const FieldDescriptor* field = message->FindFieldByName(field_spec.name);
      ASSERT_NE(field, nullptr);
      EXPECT_EQ(field->number(), field_spec.number);
      EXPECT_EQ(TypeOf(*field), field_spec.type);
      EXPECT_EQ(field->json_name(), field_spec.json_name);
      EXPECT_FALSE(field->has_presence() && field->type() != FieldDescriptor::TYPE_MESSAGE)
          << "proto3 scalars are implicit-presence (no 'optional')";
    }
  }
}

TEST(WireContractTest, ServicesHaveExactlyTheReferenceMethods) {
  for (const ServiceSpec& spec : Services()) {
    SCOPED_TRACE(spec.name);
    const FileDescriptor* file = ApiFile(spec.file);
    ASSERT_NE(file, nullptr);
    ASSERT_EQ(file->service_count(), 1);
    const ServiceDescriptor* service = file->service(0);
    EXPECT_EQ(service->full_name(), Qualified(spec.name));
    ASSERT_EQ(service->method_count(), static_cast<int>(spec.methods.size()));
    for (int i = 0; i < service->method_count(); ++i) {
      const MethodDescriptor* method = service->method(i);
      const MethodSpec& method_spec = spec.methods[static_cast<size_t>(i)];
      SCOPED_TRACE(method_spec.name);
      EXPECT_EQ(method->name(), method_spec.name);
      EXPECT_EQ(method->input_type()->full_name(), Qualified(method_spec.input));
      EXPECT_EQ(method->output_type()->full_name(), Qualified(method_spec.output));
      EXPECT_FALSE(method->client_streaming());
      EXPECT_EQ(method->server_streaming(), method_spec.server_streaming);
    }
  }
}

TEST(WireContractTest, UnRegisterServiceKeepsItsCapitalisationOnTheWire) {
  ASSERT_NE(ApiFile("service_api.proto"), nullptr);
  const ServiceDescriptor* service = ApiFile("service_api.proto")->FindServiceByName("ServiceAPI");
  ASSERT_NE(service, nullptr);
  ASSERT_NE(service->FindMethodByName("UnRegisterService"), nullptr);
  EXPECT_EQ(service->FindMethodByName("UnregisterService"), nullptr);
  EXPECT_EQ(service->FindMethodByName("UnRegisterService")->full_name(),
            "postfinance.discovery.v1.ServiceAPI.UnRegisterService");
}

// What clients of the Go original make of an answer that carries invalid_services: they read
// `services` as before and skip field 2 (keeping it as an unknown field, so a proxy that
// re-serialises the message passes it on).
TEST(WireContractTest, ClientsOfTheOriginalSkipInvalidServices) {
  // The reference's schema: service.proto without InvalidService, ListServiceResponse without
  // field 2.
  ::google::protobuf::DescriptorPool reference;
  for (const FileDescriptor* file :
       {::google::protobuf::Timestamp::descriptor()->file(),
        ::google::protobuf::Duration::descriptor()->file(), pb::TargetGroup::descriptor()->file(),
        pb::Service::descriptor()->file(), pb::ListServiceResponse::descriptor()->file()}) {
    ::google::protobuf::FileDescriptorProto proto;
    file->CopyTo(&proto);
    for (int i = 0; i < proto.message_type_size(); ++i) {
      auto* message = proto.mutable_message_type(i);
      if (message->name() == "InvalidService") {
        proto.mutable_message_type()->DeleteSubrange(i--, 1);
        continue;
      }
      for (int j = 0; j < message->field_size(); ++j) {
        if (message->field(j).name() == "invalid_services") {
          message->mutable_field()->DeleteSubrange(j--, 1);
        }
      }
    }
    ASSERT_NE(reference.BuildFile(proto), nullptr) << file->name();
  }
  const Descriptor* old_response =
      reference.FindMessageTypeByName(Qualified("ListServiceResponse"));
  ASSERT_NE(old_response, nullptr);
  ASSERT_EQ(old_response->field_count(), 1);

  pb::ListServiceResponse response;
  *response.add_services() = ToProto(Service{.id = "a", .endpoint = "http://a"});
  *response.add_invalid_services() = ToProto(InvalidService{
      .service = {.id = "b", .endpoint = "localhost:9100"}, .reason = "not a valid url"});
  ::google::protobuf::DynamicMessageFactory factory(&reference);
  std::unique_ptr<::google::protobuf::Message> old_client(
      factory.GetPrototype(old_response)->New());
  ASSERT_TRUE(old_client->ParseFromString(response.SerializeAsString()));
  const auto* reflection = old_client->GetReflection();
  const FieldDescriptor* services = old_response->FindFieldByName("services");
  ASSERT_EQ(reflection->FieldSize(*old_client, services), 1);
  pb::Service seen;
  ASSERT_TRUE(seen.ParseFromString(
      reflection->GetRepeatedMessage(*old_client, services, 0).SerializeAsString()));
  EXPECT_EQ(seen.id(), "a");
  EXPECT_EQ(reflection->GetUnknownFields(*old_client).field_count(), 1);

  // And a new client of an old server simply sees no invalid services.
  pb::ListServiceResponse from_old_server;
  ASSERT_TRUE(from_old_server.ParseFromString(old_client->SerializeAsString()));
  EXPECT_EQ(from_old_server.services_size(), 1);
  EXPECT_EQ(from_old_server.invalid_services_size(), 1);  // passed on as it came
  pb::ListServiceResponse plain;
  *plain.add_services() = response.services(0);
  ASSERT_TRUE(from_old_server.ParseFromString(plain.SerializeAsString()));
  EXPECT_EQ(from_old_server.invalid_services_size(), 0);
}

// ---- Timestamps ----

TEST(TimestampTest, RoundTripsSecondsAndNanos) {
  const absl::Time time = Parse("2023-05-01T10:20:30.123456789Z");
  const google::protobuf::Timestamp proto = TimestampToProto(time);
  EXPECT_EQ(proto.seconds(), 1682936430);
  EXPECT_EQ(proto.nanos(), 123456789);
  EXPECT_EQ(TimestampFromProto(proto), time);
}

TEST(TimestampTest, BeforeTheEpochKeepsNanosPositive) {
  const google::protobuf::Timestamp proto =
      TimestampToProto(absl::UnixEpoch() - absl::Milliseconds(1500));
  EXPECT_EQ(proto.seconds(), -2);
  EXPECT_EQ(proto.nanos(), 500000000);
  EXPECT_EQ(TimestampFromProto(proto), absl::UnixEpoch() - absl::Milliseconds(1500));
}

TEST(TimestampTest, UnsetReadsAsTheUnixEpoch) {
  EXPECT_EQ(TimestampFromProto(google::protobuf::Timestamp()), absl::UnixEpoch());
  EXPECT_EQ(FromProto(pb::Server()).modified, absl::UnixEpoch());
}

TEST(TimestampTest, GoZeroTimeIsYearOne) {
  EXPECT_EQ(GoZeroTime(), Parse("0001-01-01T00:00:00Z"));
  const google::protobuf::Timestamp proto = TimestampToProto(GoZeroTime());
  EXPECT_EQ(proto.seconds(), -62135596800);
  EXPECT_EQ(proto.nanos(), 0);
}

TEST(TimestampTest, ClampsToTheTimestampRange) {
  const google::protobuf::Timestamp past = TimestampToProto(absl::InfinitePast());
  EXPECT_EQ(past.seconds(), -62135596800);
  EXPECT_EQ(past.nanos(), 0);

  const google::protobuf::Timestamp future = TimestampToProto(absl::InfiniteFuture());
  EXPECT_EQ(future.seconds(), 253402300799);
  EXPECT_EQ(future.nanos(), 999999999);
  EXPECT_EQ(TimestampFromProto(future), Parse("9999-12-31T23:59:59.999999999Z"));
}

// ---- Domain types ----

TEST(ConvertTest, NamespaceRoundTrips) {
  const Namespace ns{.name = "team-a",
                     .export_config = ExportConfig::kBlackbox,
                     .modified = Parse("2023-05-01T10:20:30Z")};
  const pb::Namespace proto = ToProto(ns);
  EXPECT_EQ(proto.name(), "team-a");
  EXPECT_EQ(proto.export_(), 2);
  EXPECT_EQ(proto.modified().seconds(), 1682936430);
  EXPECT_EQ(FromProto(proto), ns);
}

TEST(ConvertTest, NamespaceKeepsAnUnknownExportNumber) {
  pb::Namespace proto;
  proto.set_name("odd");
  proto.set_export_(7);
  const Namespace ns = FromProto(proto);
  EXPECT_EQ(static_cast<int32_t>(ns.export_config), 7);
  EXPECT_EQ(ToProto(ns).export_(), 7);
}

TEST(ConvertTest, ServerRoundTrips) {
  const Server server{.name = "prom1",
                      .labels = {{"env", "prod"}, {"dc", "a"}},
                      .state = ServerState::kActive,
                      .modified = Parse("2023-05-01T10:20:30.5Z")};
  const pb::Server proto = ToProto(server);
  EXPECT_EQ(proto.name(), "prom1");
  EXPECT_EQ(proto.state(), 2);
  EXPECT_EQ(proto.labels().size(), 2U);
  EXPECT_EQ(proto.labels().at("env"), "prod");
  EXPECT_EQ(proto.modified().nanos(), 500000000);
  EXPECT_EQ(FromProto(proto), server);
}

TEST(ConvertTest, ServerKeepsAnUnknownStateNumber) {
  pb::Server proto;
  proto.set_state(-3);
  EXPECT_EQ(static_cast<int64_t>(FromProto(proto).state), -3);
}

TEST(ConvertTest, ServiceRoundTripsEveryField) {
  const Service service{.id = "93c156b1-f218-5d79-88a5-219307e59d29",
                        .name = "node",
                        .namespace_name = "team-a",
                        .endpoint = "http://example.com/metrics",
                        .selector = "env=prod",
                        .servers = {"prom1", "prom2"},
                        .labels = {{"team", "x"}},
                        .description = "a node exporter",
                        .modified = Parse("2023-05-01T10:20:30Z")};
  const pb::Service proto = ToProto(service);
  EXPECT_EQ(proto.id(), service.id);
  EXPECT_EQ(proto.name(), "node");
  EXPECT_EQ(proto.endpoint(), "http://example.com/metrics");
  EXPECT_EQ(proto.namespace_(), "team-a");
  EXPECT_EQ(proto.selector(), "env=prod");
  EXPECT_THAT(proto.servers(), ElementsAre("prom1", "prom2"));
  EXPECT_EQ(proto.labels().at("team"), "x");
  EXPECT_EQ(proto.description(), "a node exporter");
  EXPECT_EQ(proto.modified().seconds(), 1682936430);
  EXPECT_EQ(FromProto(proto), service);
}

TEST(ConvertTest, ServiceWithATtlCarriesItAndItsExpiry) {
  Service service{.id = "93c156b1-f218-5d79-88a5-219307e59d29",
                  .name = "node",
                  .namespace_name = "default",
                  .endpoint = "http://example.com/metrics",
                  .modified = Parse("2023-05-01T10:20:30Z")};
  EXPECT_FALSE(ToProto(service).has_ttl());
  EXPECT_FALSE(ToProto(service).has_expires());
  service.ttl = absl::Seconds(60) + absl::Milliseconds(5);
  service.expires = Parse("2023-05-01T10:21:30Z");
  const pb::Service proto = ToProto(service);
  EXPECT_EQ(proto.ttl().seconds(), 60);
  EXPECT_EQ(proto.ttl().nanos(), 5000000);
  EXPECT_EQ(proto.expires().seconds(), 1682936490);
  EXPECT_EQ(FromProto(proto), service);
}

// A client built from the Go original's protos sends no field 7: the request reads as one
// without a TTL. And it reads a TTL service of a new server as before, skipping fields 10, 11.
TEST(WireContractTest, ClientsOfTheOriginalRegisterAndListWithoutATtl) {
  pb::RegisterServiceRequest old_request;
  old_request.set_name("node");
  old_request.set_endpoint("http://example.com/metrics");
  pb::RegisterServiceRequest seen;
  ASSERT_TRUE(seen.ParseFromString(old_request.SerializeAsString()));
  EXPECT_FALSE(seen.has_ttl());
  EXPECT_EQ(DurationFromProto(seen.ttl()), absl::ZeroDuration());

  ::google::protobuf::DescriptorPool reference;
  for (const FileDescriptor* file : {::google::protobuf::Duration::descriptor()->file(),
                                     ::google::protobuf::Timestamp::descriptor()->file()}) {
    ::google::protobuf::FileDescriptorProto proto;
    file->CopyTo(&proto);
    ASSERT_NE(reference.BuildFile(proto), nullptr);
  }
  ::google::protobuf::FileDescriptorProto service_file;
  pb::Service::descriptor()->file()->CopyTo(&service_file);
  for (int i = 0; i < service_file.message_type_size(); ++i) {
    auto* message = service_file.mutable_message_type(i);
    for (int j = 0; j < message->field_size(); ++j) {
      if (message->field(j).number() >= 10 && message->name() == "Service") {
        message->mutable_field()->DeleteSubrange(j--, 1);
      }
    }
  }
  ASSERT_NE(reference.BuildFile(service_file), nullptr);
  const Descriptor* old_service = reference.FindMessageTypeByName(Qualified("Service"));
  ASSERT_NE(old_service, nullptr);
  ASSERT_EQ(old_service->field_count(), 9);
  const Service with_ttl{.id = "a",
                         .name = "node",
                         .endpoint = "http://a",
                         .ttl = absl::Seconds(30),
                         .expires = Parse("2023-05-01T10:21:30Z")};
  ::google::protobuf::DynamicMessageFactory factory(&reference);
  std::unique_ptr<::google::protobuf::Message> old_client(factory.GetPrototype(old_service)->New());
  ASSERT_TRUE(old_client->ParseFromString(ToProto(with_ttl).SerializeAsString()));
  const auto* reflection = old_client->GetReflection();
  EXPECT_EQ(reflection->GetString(*old_client, old_service->FindFieldByName("endpoint")),
            "http://a");
  EXPECT_EQ(reflection->GetString(*old_client, old_service->FindFieldByName("name")), "node");
}

TEST(ConvertTest, LabelsToProtoReplacesTheMap) {
  pb::Server proto;
  (*proto.mutable_labels())["stale"] = "1";
  LabelsToProto({{"fresh", "2"}}, proto.mutable_labels());
  EXPECT_EQ(LabelsFromProto(proto.labels()), (Labels{{"fresh", "2"}}));
}

TEST(ConvertTest, TargetGroupRoundTrips) {
  const targetgroup::TargetGroup group{.targets = {"example.com:9100"},
                                       .labels = {{"job", "node"}, {"instance", "example.com"}}};
  const pb::TargetGroup proto = ToProto(group);
  EXPECT_THAT(proto.targets(), ElementsAre("example.com:9100"));
  EXPECT_EQ(proto.labels().at("job"), "node");
  EXPECT_EQ(FromProto(proto), group);
}

TEST(ConvertTest, InvalidServiceRoundTrips) {
  const InvalidService invalid{.service = {.id = "93c156b1-f218-5d79-88a5-219307e59d29",
                                           .name = "node",
                                           .namespace_name = "default",
                                           .endpoint = "localhost:9100",
                                           .labels = {{"team", "x"}},
                                           .modified = Parse("2020-01-02T03:04:05Z")},
                               .reason = "'localhost:9100' is not a valid url"};
  const pb::InvalidService proto = ToProto(invalid);
  EXPECT_EQ(proto.service().endpoint(), "localhost:9100");
  EXPECT_EQ(proto.service().namespace_(), "default");
  EXPECT_EQ(proto.reason(), invalid.reason);
  EXPECT_EQ(FromProto(proto), invalid);
}

// ---- Tokens ----

TEST(TokenInfoTest, NeverExpiringIsGoZeroTime) {
  const pb::TokenInfo proto = TokenInfoToProto("ci", {"team-a", "team-b"}, std::nullopt);
  EXPECT_EQ(proto.id(), "ci");
  EXPECT_THAT(proto.namespaces(), ElementsAre("team-a", "team-b"));
  EXPECT_EQ(proto.expires_at().seconds(), -62135596800);
  EXPECT_EQ(proto.expires_at().nanos(), 0);
  EXPECT_EQ(TokenExpiryFromProto(proto.expires_at()), std::nullopt);
}

TEST(TokenInfoTest, ExpiryRoundTrips) {
  const absl::Time expiry = Parse("2030-01-02T03:04:05Z");
  const pb::TokenInfo proto = TokenInfoToProto("ci", {}, expiry);
  EXPECT_EQ(proto.expires_at().seconds(), 1893553445);
  EXPECT_THAT(TokenExpiryFromProto(proto.expires_at()), Optional(expiry));
}

TEST(TokenInfoTest, UnsetExpiryReadsAsTheEpochLikeGoClients) {
  EXPECT_THAT(TokenExpiryFromProto(google::protobuf::Timestamp()), Optional(absl::UnixEpoch()));
}

// ---- proto3 JSON as grpc-gateway v2 emits it (protojson, EmitUnpopulated) ----
//
// The gateway's bodies are compared as JSON values (key order does not matter): protojson
// itself randomises its whitespace so that nobody depends on exact bytes. Where json_util's
// bytes differ from protojson's, the difference is pinned below so a handler or golden test
// that cares sees it:
// - a Timestamp field is printed after the other fields of its message (json_util renders it
//   as a late string child); only Server is affected, the others declare it last;
// - map entries come in hash order (protojson sorts keys);
// - an unset message field is left out, where protojson prints null (our conversions always
//   set every message field, so handlers never produce one).

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return json;
}

// Same JSON value (objects compared as key sets, so key order is ignored).
MATCHER_P(JsonEquals, expected, "is the JSON value " + std::string{expected}) {
  return nlohmann::json::parse(arg) == nlohmann::json::parse(std::string{expected});
}

TEST(JsonTest, ServerIsWhatTheGatewayPrints) {
  pb::ListServerResponse response;
  *response.add_servers() = ToProto(Server{.name = "p1",
                                           .labels = {},
                                           .state = ServerState::kActive,
                                           .modified = Parse("2023-05-01T10:20:30Z")});
  const std::string json = ToJson(response);
  EXPECT_THAT(json, JsonEquals(R"({"servers":[{"name":"p1","labels":{},)"
                               R"("modified":"2023-05-01T10:20:30Z","state":"2"}]})"));
  EXPECT_EQ(json, R"({"servers":[{"name":"p1","labels":{},"state":"2",)"
                  R"("modified":"2023-05-01T10:20:30Z"}]})");
}

TEST(JsonTest, ServerLabelsAreAnObject) {
  const std::string json =
      ToJson(ToProto(Server{.name = "p1", .labels = {{"env", "prod"}, {"dc", "a"}}}));
  EXPECT_THAT(json, JsonEquals(R"({"name":"p1","labels":{"dc":"a","env":"prod"},)"
                               R"("modified":"1970-01-01T00:00:00Z","state":"1"})"));
}

TEST(JsonTest, FractionalSecondsUseThreeSixOrNineDigits) {
  const auto json_of = [](const std::string& rfc3339) {
    return ToJson(ToProto(Namespace{.name = "n", .modified = Parse(rfc3339)}));
  };
  EXPECT_EQ(json_of("2023-05-01T10:20:30.25Z"),
            R"({"name":"n","export":1,"modified":"2023-05-01T10:20:30.250Z"})");
  EXPECT_EQ(json_of("2023-05-01T10:20:30.000025Z"),
            R"({"name":"n","export":1,"modified":"2023-05-01T10:20:30.000025Z"})");
  EXPECT_EQ(json_of("2023-05-01T10:20:30.000000025Z"),
            R"({"name":"n","export":1,"modified":"2023-05-01T10:20:30.000000025Z"})");
}

TEST(JsonTest, ServicePrintsEmptyFieldsAndLowerCamelNames) {
  pb::RegisterServiceResponse response;
  *response.mutable_service() = ToProto(Service{.id = "93c156b1-f218-5d79-88a5-219307e59d29",
                                                .name = "node",
                                                .namespace_name = "default",
                                                .endpoint = "http://example.com/metrics",
                                                .servers = {"p1"},
                                                .modified = Parse("2023-05-01T10:20:30Z")});
  EXPECT_EQ(ToJson(response),
            R"({"service":{"id":"93c156b1-f218-5d79-88a5-219307e59d29","name":"node",)"
            R"("endpoint":"http://example.com/metrics","namespace":"default","selector":"",)"
            R"("servers":["p1"],"labels":{},"description":"",)"
            R"("modified":"2023-05-01T10:20:30Z"}})");
}

TEST(JsonTest, TokenInfoPrintsGoZeroTimeAndExpiresAt) {
  pb::InfoResponse response;
  *response.mutable_tokeninfo() = TokenInfoToProto("ci", {}, std::nullopt);
  EXPECT_EQ(ToJson(response),
            R"({"tokeninfo":{"id":"ci","namespaces":[],"expiresAt":"0001-01-01T00:00:00Z"}})");
}

TEST(JsonTest, TargetGroupsPrintEmptyListsAndMaps) {
  pb::ListTargetGroupResponse response;
  response.add_targetgroups();
  EXPECT_EQ(ToJson(response), R"({"targetgroups":[{"targets":[],"labels":{}}]})");
}

TEST(JsonTest, EmptyResponseIsAnEmptyObject) {
  EXPECT_EQ(ToJson(pb::UnRegisterServiceResponse()), "{}");
}

TEST(JsonTest, UnsetMessageFieldIsLeftOut) {
  EXPECT_EQ(ToJson(pb::RegisterNamespaceResponse()), "{}");
}

}  // namespace
}  // namespace discovery::api
