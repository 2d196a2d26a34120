// `discoveryd exporter`: keeps DIR/<server>/<namespace>/<job>.json equal to what http_sd would
// answer for <server>, for Prometheus' file_sd. It follows the store through its own watch-fed
// view and derives placement in memory exactly as every discoveryd replica does, so it needs no
// server to talk to and fixes the original's stale files (docs/decisions.md D6, D7): a service
// moved off this server, an emptied job and a disabled or deleted namespace all leave no file
// behind.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "exporter/file_sd.h"
#include "exporter/file_sd_directory.h"
#include "metrics/metrics.h"
#include "placement/placement.h"
#include "readmodel/placed.h"
#include "repo/repo.h"
#include "repo/view.h"
#include "store/store.h"

namespace discovery::exporter {

struct ExporterOptions {
  std::string server;               // the Prometheus server whose files are written
  std::filesystem::path directory;  // files go to directory/server/
  // How often the files are rewritten from the view even without a change, repairing files
  // that were edited or deleted behind the exporter's back.
  absl::Duration resync_interval = absl::Hours(1);
  // Placement when the store holds no settings yet (no discoveryd initialized it).
  placement::Settings fallback_placement;
  // How long Start waits for the first load of the store.
  absl::Duration start_timeout = absl::Seconds(30);
  // Pause before a failed sync (a file that could not be written) is retried.
  absl::Duration retry_delay = absl::Seconds(1);
  metrics::Metrics* metrics = nullptr;  // optional; must outlive the exporter
};

class Exporter {
 public:
  // Locks the directory, loads the store, checks that the server is registered (NotFound
  // "server <name> not found"), writes the files once and then follows every change. Fails with
  // FailedPrecondition when another exporter holds the directory and Unavailable when the store
  // does not answer within start_timeout. `store` must outlive the exporter.
  static absl::StatusOr<std::unique_ptr<Exporter>> Start(store::Store& store,
                                                         const repo::Keys& keys,
                                                         ExporterOptions options);
  // Stops following and joins its threads; the files stay as they are.
  ~Exporter();
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;
  Exporter(Exporter&&) = delete;
  Exporter& operator=(Exporter&&) = delete;

  // The store revision the files on disk reflect.
  int64_t SyncedRevision() const;
  // Waits until the files reflect `revision` or later; false on timeout.
  bool WaitForRevision(int64_t revision, absl::Duration timeout) const;
  // OK while the store is followed; the store's error while the view retries (the files keep
  // their last good content meanwhile).
  absl::Status Health() const;

 private:
  Exporter(ExporterOptions options, std::unique_ptr<FileSdDirectory> directory);
  void Run();
  // Writes the files of `snapshot`; on the loop thread (or in Start before it runs).
  absl::Status Sync(const std::shared_ptr<const repo::Snapshot>& snapshot, bool resync);
  void CountEvents(const repo::Snapshot& snapshot) const;
  // Reports what the files leave out: the invalid service records of `snapshot` (the view logs
  // them) and the `problems` DesiredFiles found (logged here). Each is counted as an exporter
  // error once, when it first appears, and not again while it stays.
  void ReportLeftOut(const repo::Snapshot& snapshot, const std::vector<std::string>& problems);

  const ExporterOptions options_;
  const std::unique_ptr<FileSdDirectory> directory_;
  // Loop thread only (and Start before the thread exists).
  std::shared_ptr<const readmodel::Placed> placed_;
  FileSdRenderer renderer_;  // the files of placed_, on the loop thread
  bool server_missing_logged_ = false;
  std::set<std::string> left_out_;  // what the last sync left out, as ReportLeftOut saw it

  mutable absl::Mutex mu_;
  std::shared_ptr<const repo::Snapshot> pending_ ABSL_GUARDED_BY(mu_);
  int64_t synced_revision_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::unique_ptr<repo::View> view_;  // its listener fills pending_
  std::thread thread_;                // joined in the destructor, before view_ goes
};

}  // namespace discovery::exporter
