#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/time/clock.h"
#include "cli/api_client.h"
#include "cli/bulk.h"
#include "cli/completion.h"
#include "cli/discovery_commands.h"
#include "cli/discovery_flags.h"
#include "cli/progress.h"
#include "fmt/format.h"

#include "client_format/output.h"
#include "client_format/service_import.h"
#include "common/go_duration.h"
#include "common/logging.h"
#include "model/model.h"

namespace discovery::cli::discovery_internal {

using client_format::OutputFormat;

namespace {

// Writes the entries that could not be imported next to nothing else, so they can be fixed and
// imported again; returns the file's path.
absl::StatusOr<std::string> SaveFailedImports(const std::vector<Service>& failed) {
  std::string path =
      (std::filesystem::temp_directory_path() / "discovery-import-failed-XXXXXX.yaml").string();
  const int fd = mkstemps(path.data(), 5);  // mode 0600
  if (fd < 0) {
    return absl::InternalError(fmt::format("cannot create {}", path));
  }
  const std::string content =
      client_format::FormatServices(failed, {.format = OutputFormat::kYaml});
  const bool written =
      ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  ::close(fd);
  if (!written) {
    return absl::InternalError(fmt::format("cannot write {}", path));
  }
  return path;
}

// The end of an import: a summary line when every entry was imported; otherwise the failed
// entries, saved to a file of their own, and a failure naming it.
int ReportImport(std::vector<Service> entries, std::vector<size_t> failed, absl::Time start,
                 const Failure& fail) {
  const size_t imported = entries.size() - failed.size();
  if (failed.empty()) {
    LogInfo("services imported", {{"imported", std::to_string(imported)},
                                  {"failed", "0"},
                                  {"took", Pace(entries.size(), start)}});
    return 0;
  }
  // In the order of the file, whatever order the answers came in.
  std::sort(failed.begin(), failed.end());
  std::vector<Service> failed_entries;
  failed_entries.reserve(failed.size());
  for (const size_t i : failed) {
    failed_entries.push_back(std::move(entries[i]));
  }
  absl::StatusOr<std::string> saved = SaveFailedImports(failed_entries);
  if (!saved.ok()) {
    return fail(saved.status());
  }
  return fail(fmt::format("{} of {} entries failed; they are saved in {} ({} imported, {})",
                          failed.size(), entries.size(), *saved, imported,
                          Pace(entries.size(), start)));
}

}  // namespace

int ServiceImport(const Flags& flags, std::ostream& err, const Failure& fail) {
  std::ifstream in(flags.import_path);
  if (!in) {
    return fail(fmt::format("cannot read {}", flags.import_path));
  }
  std::ostringstream content;
  content << in.rdbuf();
  absl::StatusOr<std::vector<Service>> entries = client_format::ParseServiceImport(content.str());
  content = {};
  if (!entries.ok()) {
    return fail(fmt::format("cannot import {}: {}", flags.import_path, entries.status().message()));
  }
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  const absl::Time start = absl::Now();
  std::optional<ProgressBar> progress = ProgressOf(flags, err, entries->size());
  const auto clear_progress = [&] {
    if (progress) {
      progress->Clear();
    }
  };
  std::vector<size_t> failed;
  RunBulk(
      entries->size(),
      {.max_in_flight = flags.max_in_flight,
       .retry_delays = kRetryDelays,
       .progress = progress ? &*progress : nullptr},
      [&](size_t i, std::function<void(absl::Status)> done) {
        const Service& entry = (*entries)[i];
        client->RegisterServiceAsync({.name = entry.name,
                                      .namespace_name = entry.namespace_name,
                                      .endpoint = entry.endpoint,
                                      .labels = entry.labels,
                                      .selector = entry.selector,
                                      .description = entry.description},
                                     std::move(done));
      },
      [&](size_t i, const absl::Status& status) {
        if (status.ok()) {
          return;
        }
        failed.push_back(i);
        if (!flags.quiet) {  // --quiet: the file of failed entries says which
          const Service& entry = (*entries)[i];
          clear_progress();
          fail(fmt::format("cannot import entry {} ({} in namespace {}): {}", i + 1, entry.endpoint,
                           entry.namespace_name, status.message()));
        }
      },
      [&](size_t i, const absl::Status& failure, absl::Duration delay) {
        clear_progress();
        LogWarn("request failed, retrying", {{"service", (*entries)[i].name},
                                             {"endpoint", (*entries)[i].endpoint},
                                             {"error", std::string{failure.message()}},
                                             {"retry-in", FormatGoDuration(delay)}});
      });
  clear_progress();
  return ReportImport(*std::move(entries), std::move(failed), start, fail);
}

void AddServiceImportCommand(CLI::App* service, Flags& flags) {
  CLI::App* service_import =
      service->add_subcommand("import", "Register the services of a YAML or JSON file.");
  service_import->footer(ExamplesFooter({
      "discovery service list -o yaml > services.yaml",
      "discovery service import services.yaml",
      "discovery service import --max-in-flight 256 --quiet services.json",
  }));
  service_import
      ->add_option("path", flags.import_path,
                   "File as printed by `service list -o yaml` or `-o json`")
      ->required();
  AddBulkFlags(*service_import, flags);
}

}  // namespace discovery::cli::discovery_internal
