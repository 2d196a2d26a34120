#include "exporter/file_sd.h"

#include <map>

#include "fmt/format.h"

#include "common/format.h"
#include "targetgroup/targetgroup.h"

namespace discovery::exporter {

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
      std::string path = fmt::format("{}/{}.json", name, job);
      // A name that cannot be a file name (the view sets services over the name limits aside;
      // a namespace record written by another tool is not checked there) costs only its file.
      if (absl::Status valid = ValidateFileSdPath(path); !valid.ok()) {
        problems->push_back(
            fmt::format("{} service(s) of job {:.64} in namespace {:.64} left out: {}",
                        services.size(), job, name, valid.message()));
        continue;
      }
      std::vector<absl::Status> skipped;
      std::vector<targetgroup::TargetGroup> groups =
          targetgroup::FromServices(services, ns.export_config, &skipped);
      for (const absl::Status& status : skipped) {
        problems->push_back(std::string{status.message()});
      }
      if (!groups.empty()) {
        files[std::move(path)] = targetgroup::ToFileSdJson(groups);
      }
    }
  }
  return files;
}

}  // namespace discovery::exporter
