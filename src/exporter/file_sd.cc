#include "exporter/file_sd.h"

#include <map>

#include "fmt/format.h"

#include "common/format.h"
#include "targetgroup/targetgroup.h"

namespace discovery::exporter {

FileSet DesiredFiles(const registry::Placed& placed, std::string_view server,
                     std::vector<std::string>* problems) {
  FileSet files;
  for (const auto& [name, ns] : placed.snapshot().namespaces) {
    if (ns.export_config == ExportConfig::kDisabled) {
      continue;
    }
    const registry::NamespacePlacement* placement = placed.In(name);
    if (placement == nullptr) {
      continue;
    }
    std::map<std::string, std::vector<Service>> jobs;
    placement->On(server).ForEach([&](std::string_view, const registry::PlacedPtr& entry) {
      const Service& service = *entry->service;
      if (absl::StatusOr<targetgroup::TargetGroup> group =
              targetgroup::FromService(service, ns.export_config);
          !group.ok()) {
        problems->push_back(std::string{group.status().message()});
        return;
      }
      jobs[service.name].push_back(service);
    });
    for (const auto& [job, services] : jobs) {
      absl::StatusOr<std::vector<targetgroup::TargetGroup>> groups =
          targetgroup::FromServices(services, ns.export_config);
      if (!groups.ok()) {  // not reached: every service above rendered on its own
        problems->push_back(std::string{groups.status().message()});
        continue;
      }
      files[fmt::format("{}/{}.json", name, job)] = targetgroup::ToFileSdJson(*groups);
    }
  }
  return files;
}

}  // namespace discovery::exporter
