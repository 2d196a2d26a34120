// What one Prometheus server's file_sd directory should contain for one placement: a file
// "<namespace>/<job>.json" per job with services placed on that server, holding the same target
// groups as http_sd (in the Go exporter's JSON encoding).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "exporter/file_sd_directory.h"
#include "readmodel/placed.h"

namespace discovery::exporter {

// The files of `server` under `placed`. Namespaces with export `disabled` have none. What cannot
// be written is left out and described in `problems`, so that one bad record costs at most its
// own job's file and never the others: a service whose stored endpoint does not parse, and a
// job whose "<namespace>/<job>.json" is no valid file name (exporter::ValidateFileSdPath).
// Renders everything: the definition FileSdRenderer (what the exporter uses) is checked against,
// and the from-scratch side of BM_ExporterUpdateVsFromScratch.
FileSet DesiredFiles(const readmodel::Placed& placed, std::string_view server,
                     std::vector<std::string>* problems);

// DesiredFiles for one server from one placement to the next, rendering only what changed: the
// server's slice of each namespace is diffed against the version rendered before (the diff skips
// what the two share), only the target groups of services that came, went or changed are
// rendered, and only the files of their jobs are joined again. A write into a namespace of a
// million thus costs the exporter its few groups and the joining of one file, not every target of
// the server. The answer equals DesiredFiles' for the same placement.
class FileSdRenderer {
 public:
  // The files (and problems) DesiredFiles would give for `placed` and `server`. `server` must be
  // the same on every call; Reset to start over.
  FileSet Update(const readmodel::Placed& placed, std::string_view server,
                 std::vector<std::string>* problems);
  // Forgets what was rendered: the next Update renders every file.
  void Reset() { namespaces_.clear(); }

 private:
  // One job's file of one namespace.
  struct Job {
    // Target group JSON (without the array's brackets) by the order of DesiredFiles' groups:
    // canonical endpoint, then id.
    std::map<std::pair<std::string, std::string>, std::string> groups;
    std::map<std::string, std::string, std::less<>> skipped;  // id -> why it is left out
    size_t bytes = 0;                    // of the groups, with a separator each
    std::optional<FileContent> content;  // the file, once joined; reset by every change
  };
  struct Namespace {
    ExportConfig config = ExportConfig::kDisabled;
    readmodel::PlacedMap slice;  // the version rendered
    std::map<std::string, Job, std::less<>> jobs;
  };
  static void Add(Namespace& ns, const Service& service);
  static void Remove(Namespace& ns, const Service& service);

  std::map<std::string, Namespace, std::less<>> namespaces_;
};

}  // namespace discovery::exporter
