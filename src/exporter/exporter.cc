#include "exporter/exporter.h"

#include <set>
#include <utility>
#include <vector>

#include "fmt/format.h"

#include "common/format.h"
#include "common/go_duration.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/thread_name.h"
#include "exporter/file_sd.h"

namespace discovery::exporter {

Exporter::Exporter(ExporterOptions options, std::unique_ptr<FileSdDirectory> directory)
    : options_(std::move(options)), directory_(std::move(directory)) {}

absl::StatusOr<std::unique_ptr<Exporter>> Exporter::Start(store::Store& store,
                                                          const repo::Keys& keys,
                                                          ExporterOptions options) {
  if (absl::Status valid = ValidateServerName(options.server); !valid.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("invalid --server \"{}\": {}", options.server, valid.message()));
  }
  DISCOVERY_ASSIGN_OR_RETURN(std::unique_ptr<FileSdDirectory> directory,
                             FileSdDirectory::Open(options.directory / options.server));
  std::unique_ptr<Exporter> exporter(new Exporter(std::move(options), std::move(directory)));
  Exporter* self = exporter.get();
  self->view_ =
      std::make_unique<repo::View>(store, keys, repo::ViewOptions{},
                                   [self](const std::shared_ptr<const repo::Snapshot>& snapshot) {
                                     absl::MutexLock lock(&self->mu_);
                                     self->pending_ = snapshot;
                                   });
  if (!self->view_->WaitForRevision(0, self->options_.start_timeout)) {
    return absl::UnavailableError(fmt::format("store not loaded within {}: {}",
                                              FormatGoDuration(self->options_.start_timeout),
                                              self->view_->Health().message()));
  }
  std::shared_ptr<const repo::Snapshot> first = self->view_->Current();
  if (!first->servers.contains(self->options_.server)) {
    return absl::NotFoundError(fmt::format("server {} not found", self->options_.server));
  }
  {
    absl::MutexLock lock(&self->mu_);
    if (self->pending_ == first) {
      self->pending_ = nullptr;
    }
  }
  DISCOVERY_RETURN_IF_ERROR(self->Sync(first, /*resync=*/false));
  self->thread_ = std::thread([self] {
    NameThisThread("exporter");
    self->Run();
  });
  return exporter;
}

Exporter::~Exporter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) {
    thread_.join();
  }
  view_.reset();
}

void Exporter::Run() {
  absl::Time next_resync = absl::Now() + options_.resync_interval;
  std::shared_ptr<const repo::Snapshot> retry;  // a snapshot whose sync failed
  absl::Time retry_at = absl::InfiniteFuture();
  while (true) {
    std::shared_ptr<const repo::Snapshot> snapshot;
    {
      absl::MutexLock lock(&mu_);
      const auto woken = [this] {
        mu_.AssertReaderHeld();
        return stopping_ || pending_ != nullptr;
      };
      mu_.AwaitWithDeadline(absl::Condition(&woken), std::min(next_resync, retry_at));
      if (stopping_) {
        return;
      }
      snapshot = std::move(pending_);
      pending_ = nullptr;
    }
    bool resync = false;
    if (snapshot == nullptr) {
      if (absl::Now() >= retry_at) {
        snapshot = retry;
      } else {
        snapshot = placed_->snapshot_ptr();
        resync = true;
        next_resync = absl::Now() + options_.resync_interval;
      }
    }
    if (absl::Status synced = Sync(snapshot, resync); synced.ok()) {
      retry = nullptr;
      retry_at = absl::InfiniteFuture();
    } else {
      retry = snapshot;
      retry_at = absl::Now() + options_.retry_delay;
    }
  }
}

absl::Status Exporter::Sync(const std::shared_ptr<const repo::Snapshot>& snapshot, bool resync) {
  if (placed_ != nullptr && &placed_->snapshot() != snapshot.get()) {
    CountEvents(*snapshot);
  }
  std::shared_ptr<const readmodel::Placed> placed =
      readmodel::Placed::Compute(snapshot, placed_.get(), options_.fallback_placement);
  FileSet files;
  std::vector<std::string> problems;
  if (resync) {
    // Everything is rendered and compared with what is on disk again.
    renderer_.Reset();
    directory_->ResetCache();
  }
  if (snapshot->servers.contains(options_.server)) {
    server_missing_logged_ = false;
    files = renderer_.Update(*placed, options_.server, &problems);
  } else {
    renderer_.Reset();
    if (!server_missing_logged_) {
      server_missing_logged_ = true;
      LogWarn("server is no longer registered; removing its files", {{"server", options_.server}});
    }
  }
  ReportLeftOut(*snapshot, problems);
  placed_ = std::move(placed);
  absl::StatusOr<ApplyResult> applied = directory_->Apply(files);
  if (!applied.ok()) {
    if (options_.metrics != nullptr) {
      options_.metrics->ExporterError();
    }
    LogError("cannot write file_sd files", {{"directory", directory_->root().string()},
                                            {"error", std::string{applied.status().message()}}});
    return applied.status();
  }
  if (options_.metrics != nullptr) {
    options_.metrics->ExporterSynced(applied->written, applied->removed, absl::Now());
  }
  if (applied->written > 0 || applied->removed > 0) {
    LogInfo("file_sd files updated", {{"revision", std::to_string(snapshot->revision)},
                                      {"written", std::to_string(applied->written)},
                                      {"removed", std::to_string(applied->removed)}});
  }
  absl::MutexLock lock(&mu_);
  synced_revision_ = snapshot->revision;
  return absl::OkStatus();
}

void Exporter::ReportLeftOut(const repo::Snapshot& snapshot,
                             const std::vector<std::string>& problems) {
  std::set<std::string> left_out;
  for (const auto& [key, record] : snapshot.invalid) {
    if (record.service != nullptr) {
      left_out.insert(fmt::format("{}@{}", key, record.mod_revision));
    }
  }
  for (const std::string& problem : problems) {
    if (left_out.insert(problem).second && !left_out_.contains(problem)) {
      LogWarn("left out of file_sd", {{"error", problem}});
    }
  }
  if (options_.metrics != nullptr) {
    for (const std::string& item : left_out) {
      if (!left_out_.contains(item)) {
        options_.metrics->ExporterError();
      }
    }
    options_.metrics->SetInvalidRecords(repo::InvalidRecordCounts(snapshot));
  }
  left_out_ = std::move(left_out);
}

// The original counted each service watch event; the view hands over whole snapshots, so the
// events are recovered by comparing the namespaces whose services changed.
void Exporter::CountEvents(const repo::Snapshot& snapshot) const {
  if (options_.metrics == nullptr) {
    return;
  }
  const repo::Snapshot& before = placed_->snapshot();
  static const repo::ServiceMap no_services;
  const auto services_of = [](const repo::Snapshot& s, std::string_view ns) {
    const repo::ServiceMap* services = s.ServicesIn(ns);
    return services == nullptr ? &no_services : services;
  };
  std::set<std::string, std::less<>> namespaces;
  for (const auto& [ns, services] : snapshot.services) {
    namespaces.insert(ns);
  }
  for (const auto& [ns, services] : before.services) {
    namespaces.insert(ns);
  }
  for (const std::string& ns : namespaces) {
    // Persistent maps: the diff skips everything the two versions share.
    repo::ServiceMap::Diff(
        *services_of(before, ns), *services_of(snapshot, ns),
        [this](std::string_view, const repo::ServicePtr&) {
          options_.metrics->ExporterWatchEvent("Delete");
        },
        [this](std::string_view, const repo::ServicePtr&) {
          options_.metrics->ExporterWatchEvent("Change");
        },
        [this](std::string_view, const repo::ServicePtr& old_service,
               const repo::ServicePtr& new_service) {
          if (!(*old_service == *new_service)) {
            options_.metrics->ExporterWatchEvent("Change");
          }
        });
  }
}

int64_t Exporter::SyncedRevision() const {
  absl::MutexLock lock(&mu_);
  return synced_revision_;
}

bool Exporter::WaitForRevision(int64_t revision, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  const auto reached = [this, revision] {
    mu_.AssertReaderHeld();
    return synced_revision_ >= revision;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

absl::Status Exporter::Health() const { return view_->Health(); }

}  // namespace discovery::exporter
