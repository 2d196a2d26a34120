// The embedded store: a single-file SQLite database (WAL, synchronous=FULL) with the same
// semantics as etcd (revisions, prefix ranges, transactions, ordered watches). Every
// acknowledged Commit is durable across kill -9. Several processes may open the same file
// (e.g. discoveryd server and discoveryd exporter); watches see commits of other processes too.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "store/store.h"

namespace discovery::store {

struct EmbeddedStoreOptions {
  // Database file; created with its parent directory when missing. Empty: a private in-memory
  // database (tests).
  std::string path;
  // How often watches look for commits made by other processes; commits of this process wake
  // watches at once.
  absl::Duration poll_interval = absl::Milliseconds(100);
  // Number of past revisions whose events are kept for watches that start in the past; older
  // revisions are compacted (a watch from before them gets compact_revision).
  int64_t history_revisions = 100000;
};

class EmbeddedStore;

// Opens (creating if needed) the store described by `options`.
absl::StatusOr<std::unique_ptr<Store>> OpenEmbeddedStore(const EmbeddedStoreOptions& options);

}  // namespace discovery::store
