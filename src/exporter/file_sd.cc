#include "exporter/file_sd.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "fmt/format.h"

#include "common/format.h"
#include "model/endpoint.h"
#include "targetgroup/targetgroup.h"

namespace discovery::exporter {
namespace {

// The path of the file of `job` in namespace `ns`, or the problem that leaves its `services` out
// when that is no valid file name (the view sets services over the name limits aside; a
// namespace record written by another tool is not checked there): it costs only its own file.
absl::StatusOr<std::string> JobFile(std::string_view ns, std::string_view job, size_t services) {
  std::string path = fmt::format("{}/{}.json", ns, job);
  if (absl::Status valid = ValidateFileSdPath(path); !valid.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("{} service(s) of job {:.64} in namespace {:.64} left out: {}", services, job,
                    ns, valid.message()));
  }
  return path;
}

}  // namespace

FileSet DesiredFiles(const readmodel::Placed& placed, std::string_view server,
                     std::vector<std::string>* problems) {
  FileSet files;
  for (const auto& [name, ns] : placed.snapshot().namespaces) {
    if (ns.export_config == ExportConfig::kDisabled) {
      continue;
    }
    const readmodel::NamespacePlacement* placement = placed.In(name);
    if (placement == nullptr) {
      continue;
    }
    // `placed` holds the services while their files are rendered; nothing is copied.
    std::map<std::string_view, std::vector<const Service*>> jobs;
    placement->On(server).ForEach([&](std::string_view, const readmodel::PlacedPtr& entry) {
      jobs[entry->service->name].push_back(entry->service.get());
    });
    for (const auto& [job, services] : jobs) {
      absl::StatusOr<std::string> path = JobFile(name, job, services.size());
      if (!path.ok()) {
        problems->emplace_back(path.status().message());
        continue;
      }
      std::vector<absl::Status> skipped;
      std::vector<targetgroup::TargetGroup> groups =
          targetgroup::FromServices(services, ns.export_config, &skipped);
      for (const absl::Status& status : skipped) {
        problems->push_back(std::string{status.message()});
      }
      if (!groups.empty()) {
        files.emplace(*std::move(path), targetgroup::ToFileSdJson(groups));
      }
    }
  }
  return files;
}

void FileSdRenderer::Add(Namespace& ns, const Service& service) {
  Job& job = ns.jobs[service.name];
  job.content.reset();
  // The same group and the same reason as DesiredFiles' (targetgroup::FromServices).
  absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(service.endpoint);
  if (!endpoint.ok()) {
    job.skipped[service.id] =
        std::string{targetgroup::FromService(service, ns.config).status().message()};
    return;
  }
  std::string json =
      targetgroup::ToFileSdJson({targetgroup::FromService(service, *endpoint, ns.config)});
  std::string& group = job.groups[{endpoint->String(), service.id}];
  job.bytes -= group.empty() ? 0 : group.size() + 1;
  group = json.substr(1, json.size() - 2);
  job.bytes += group.size() + 1;
}

void FileSdRenderer::Remove(Namespace& ns, const Service& service) {
  const auto job = ns.jobs.find(service.name);
  if (job == ns.jobs.end()) {
    return;
  }
  job->second.content.reset();
  if (absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(service.endpoint); endpoint.ok()) {
    if (const auto group = job->second.groups.find({endpoint->String(), service.id});
        group != job->second.groups.end()) {
      job->second.bytes -= group->second.size() + 1;
      job->second.groups.erase(group);
    }
  } else {
    job->second.skipped.erase(service.id);
  }
  if (job->second.groups.empty() && job->second.skipped.empty()) {
    ns.jobs.erase(job);
  }
}

FileSet FileSdRenderer::Update(const readmodel::Placed& placed, std::string_view server,
                               std::vector<std::string>* problems) {
  FileSet files;
  std::map<std::string, Namespace, std::less<>> rendered;
  for (const auto& [name, ns] : placed.snapshot().namespaces) {
    const readmodel::NamespacePlacement* placement = placed.In(name);
    if (ns.export_config == ExportConfig::kDisabled || placement == nullptr) {
      continue;
    }
    const readmodel::PlacedMap& slice = placement->On(server);
    Namespace state;
    if (auto before = namespaces_.find(name);
        before != namespaces_.end() && before->second.config == ns.export_config) {
      state = std::move(before->second);
    } else {
      state.config = ns.export_config;
    }
    if (!slice.SameAs(state.slice)) {
      readmodel::PlacedMap::Diff(
          state.slice, slice,
          [&state](std::string_view, const readmodel::PlacedPtr& gone) {
            Remove(state, *gone->service);
          },
          [&state](std::string_view, const readmodel::PlacedPtr& came) {
            Add(state, *came->service);
          },
          [&state](std::string_view, const readmodel::PlacedPtr& old,
                   const readmodel::PlacedPtr& changed) {
            if (old->service != changed->service) {
              Remove(state, *old->service);
              Add(state, *changed->service);
            }
          });
      state.slice = slice;
    }
    for (auto& [job_name, job] : state.jobs) {
      absl::StatusOr<std::string> path =
          JobFile(name, job_name, job.groups.size() + job.skipped.size());
      if (!path.ok()) {
        problems->emplace_back(path.status().message());
        continue;
      }
      for (const auto& [id, reason] : job.skipped) {
        problems->push_back(reason);
      }
      if (job.groups.empty()) {
        continue;
      }
      if (!job.content.has_value()) {
        std::string content;
        content.reserve(job.bytes + 1);
        content.push_back('[');
        for (const auto& [order, json] : job.groups) {
          if (content.size() > 1) {
            content.push_back(',');
          }
          content += json;
        }
        content.push_back(']');
        job.content.emplace(std::move(content));
      }
      // Shared: a file that did not change costs the directory no comparison.
      files.emplace(*std::move(path), *job.content);
    }
    rendered.emplace(name, std::move(state));
  }
  // Namespaces gone, disabled or without services are rendered anew should they come back.
  namespaces_ = std::move(rendered);
  return files;
}

}  // namespace discovery::exporter
