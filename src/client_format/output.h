// Renders the results of the `discovery ... list` commands as table, JSON, YAML or CSV, in the
// shapes of the Go original's CLI (docs/decisions.md D43), so scripts written against it keep
// working.
#pragma once

#include <cstddef>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

#include "model/model.h"

namespace discovery::client_format {

// kWide is the table with the columns that do not fit the default one (for services: INVALID).
enum class OutputFormat { kTable, kWide, kJson, kYaml, kCsv };

// "table" | "wide" | "json" | "yaml" | "csv"; InvalidArgument otherwise.
absl::StatusOr<OutputFormat> ParseOutputFormat(std::string_view name);

struct OutputOptions {
  OutputFormat format = OutputFormat::kTable;
  // Header line of table and csv; json and yaml ignore it.
  bool headers = true;
};

// Each prints the items in the given order (callers sort). Table and csv print one line per item,
// json an indented array and yaml a sequence; the result always ends with "\n" unless it is empty
// (table or csv of no items without headers).
std::string FormatServers(const std::vector<Server>& servers, const OutputOptions& options);
std::string FormatNamespaces(const std::vector<Namespace>& namespaces,
                             const OutputOptions& options);
std::string FormatServices(const std::vector<Service>& services, const OutputOptions& options);

// A row of `service list`: a service, or a stored record that cannot be served and why.
struct ListedService {
  Service service;
  std::string invalid;  // the reason; "" for a service that is served
};

// Like FormatServices, for lists that may hold invalid records: table and csv keep their
// columns (so scripts keep working), wide adds the column INVALID with the reason, json and
// yaml add the key "invalid" with the reason to invalid records only.
std::string FormatListedServices(const std::vector<ListedService>& services,
                                 const OutputOptions& options);

// FormatListedServices row by row, for lists of any size: json, yaml and csv rows are written to
// `out` as they are added; a table, whose column widths depend on every row, keeps its cells (once,
// in one buffer) until Finish. The bytes written are those of FormatListedServices.
class ListedServiceWriter {
 public:
  ListedServiceWriter(std::ostream& out, const OutputOptions& options);
  ~ListedServiceWriter();
  ListedServiceWriter(const ListedServiceWriter&) = delete;
  ListedServiceWriter& operator=(const ListedServiceWriter&) = delete;
  ListedServiceWriter(ListedServiceWriter&&) = delete;
  ListedServiceWriter& operator=(ListedServiceWriter&&) = delete;

  void Add(const ListedService& service);
  // Writes what is left (the table, the end of the json array); call once, after the last Add.
  void Finish();
  size_t rows() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace discovery::client_format
