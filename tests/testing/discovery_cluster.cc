#include "testing/discovery_cluster.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

namespace discovery::testing {
namespace {

using Json = ::nlohmann::json;

std::string ReadWholeFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

}  // namespace

DiscoveryCluster::DiscoveryCluster(DiscoveryClusterOptions options, std::string root)
    : options_(std::move(options)), root_(std::move(root)) {}

DiscoveryCluster::~DiscoveryCluster() {
  exporter_.reset();
  replicas_.clear();
  etcd_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(root_, ignored);
}

absl::StatusOr<std::unique_ptr<DiscoveryCluster>> DiscoveryCluster::Start(
    DiscoveryClusterOptions options) {
  absl::StatusOr<std::string> root = MakeTempDir("discovery-cluster");
  if (!root.ok()) {
    return root.status();
  }
  std::unique_ptr<DiscoveryCluster> cluster(new DiscoveryCluster(std::move(options), *root));
  const DiscoveryClusterOptions& opts = cluster->options_;

  absl::StatusOr<std::unique_ptr<EtcdCluster>> etcd =
      EtcdCluster::Start({.members = opts.etcd_members});
  if (!etcd.ok()) {
    return etcd.status();
  }
  cluster->etcd_ = *std::move(etcd);

  std::vector<std::string> args = {"--store=etcd",
                                   "--etcd-endpoints=" + cluster->etcd_->EndpointList()};
  args.insert(args.end(), opts.replica_args.begin(), opts.replica_args.end());
  for (int i = 0; i < opts.replicas; ++i) {
    absl::StatusOr<std::unique_ptr<DiscoverydProcess>> replica = DiscoverydProcess::Start(
        {.binary = opts.discoveryd_binary, .extra_args = args, .debug_logs = opts.debug_logs});
    if (!replica.ok()) {
      return absl::Status(
          replica.status().code(),
          fmt::format("replica {}: {}", i, std::string{replica.status().message()}));
    }
    cluster->replicas_.push_back(*std::move(replica));
  }
  absl::StatusOr<std::string> token = cluster->replicas_.front()->AdminToken();
  if (!token.ok()) {
    return token.status();
  }
  cluster->admin_token_ = *std::move(token);

  if (!opts.exporter_server.empty()) {
    if (absl::Status status = cluster->StartExporter(); !status.ok()) {
      return status;
    }
  }
  return cluster;
}

absl::Status DiscoveryCluster::StartExporter() {
  absl::StatusOr<HttpResult> registered =
      Rest(0, "POST", "/v1/servers", Json{{"name", options_.exporter_server}});
  if (!registered.ok()) {
    return registered.status();
  }
  if (registered->status != 200) {
    return absl::InternalError(fmt::format("registering server {}: {} {}", options_.exporter_server,
                                           registered->status, registered->body));
  }
  const std::string directory = root_ + "/file_sd";
  Command command;
  command.argv = {options_.discoveryd_binary,
                  "--log-format=json",
                  "--store=etcd",
                  "--etcd-endpoints=" + etcd_->EndpointList(),
                  "exporter",
                  "--server=" + options_.exporter_server,
                  "--directory=" + directory,
                  "--http-listen=127.0.0.1:0"};
  command.env = {"HOME=" + root_};
  command.working_dir = root_;
  absl::StatusOr<std::unique_ptr<ChildProcess>> exporter =
      ChildProcess::Start(command, root_ + "/exporter.log");
  if (!exporter.ok()) {
    return exporter.status();
  }
  exporter_ = *std::move(exporter);
  // The exporter creates its server's directory (and takes its lock there) once it has loaded
  // the store and found the server.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!std::filesystem::exists(exporter_files() / ".discovery-exporter.lock")) {
    if (!exporter_->IsRunning() || absl::Now() > deadline) {
      return absl::UnavailableError(
          fmt::format("the exporter did not start:\n{}", exporter_->LogTail()));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::OkStatus();
}

std::filesystem::path DiscoveryCluster::exporter_files() const {
  return std::filesystem::path(root_) / "file_sd" / options_.exporter_server;
}

absl::StatusOr<HttpResult> DiscoveryCluster::Rest(int index, std::string_view method,
                                                  const std::string& path, const Json& body,
                                                  absl::Duration timeout) const {
  return HttpRequest(method, replicas_.at(index)->http_url() + path,
                     body.is_null() ? "" : body.dump(),
                     {{"Authorization", "Bearer " + admin_token_}}, timeout);
}

absl::StatusOr<std::vector<std::string>> DiscoveryCluster::HttpSdTargets(
    int index, const std::string& server, const std::string& ns) const {
  absl::StatusOr<HttpResult> result = Rest(index, "GET", fmt::format("/v1/sd/{}/{}", server, ns));
  if (!result.ok()) {
    return result.status();
  }
  if (result->status != 200) {
    return absl::UnavailableError(
        fmt::format("http_sd answered {}: {}", result->status, result->body));
  }
  const Json groups = Json::parse(result->body, nullptr, false);
  if (!groups.is_array()) {
    return absl::InternalError(fmt::format("http_sd answered no JSON array: {}", result->body));
  }
  std::vector<std::string> targets;
  for (const Json& group : groups) {
    for (const Json& target : group.value("targets", Json::array())) {
      targets.push_back(target.get<std::string>());
    }
  }
  return targets;
}

std::vector<std::string> DiscoveryCluster::ExporterTargets(const std::string& ns) const {
  std::vector<std::string> targets;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(exporter_files() / ns, error)) {
    if (entry.path().extension() != ".json") {
      continue;
    }
    const Json groups = Json::parse(ReadWholeFile(entry.path()), nullptr, false);
    if (!groups.is_array()) {
      continue;
    }
    for (const Json& group : groups) {
      for (const Json& target : group.value("targets", Json::array())) {
        targets.push_back(target.get<std::string>());
      }
    }
  }
  return targets;
}

std::string DiscoveryCluster::LogTails() const {
  std::string out;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    out += fmt::format("--- replica {}\n{}\n", i, replicas_[i]->LogTail(20));
  }
  if (exporter_ != nullptr) {
    out += fmt::format("--- exporter\n{}\n", exporter_->LogTail(20));
  }
  for (int i = 0; i < etcd_->size(); ++i) {
    out += fmt::format("--- etcd member {}\n{}\n", i, etcd_->LogTail(i, 10));
  }
  return out;
}

}  // namespace discovery::testing
