// What the placement tests compare: everything a placement answers, in a comparable form.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "readmodel/placed.h"
#include "testing/status_matchers.h"

namespace discovery::readmodel {

// Everything a placement answers, in a comparable form.
struct Observed {
  // ns -> id -> servers
  std::map<std::string, std::map<std::string, std::vector<std::string>>> placement;
  // (ns, server) -> ids on it, in slice order
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> slices;
  std::map<std::pair<std::string, std::string>, int64_t> counts;
  // (server, ns) -> http_sd body
  std::map<std::pair<std::string, std::string>, std::string> http_sd;

  friend bool operator==(const Observed&, const Observed&) = default;
};

inline Observed Observe(const Placed& placed) {
  Observed observed;
  const repo::Snapshot& snapshot = placed.snapshot();
  // Named references rather than structured bindings: the lambdas below capture them, which
  // clang-tidy's clang (before 16) rejects for bindings.
  for (const auto& namespace_services : snapshot.services) {
    const std::string& ns = namespace_services.first;
    const repo::ServiceMap& services = namespace_services.second;
    const NamespacePlacement* placement = placed.In(ns);
    EXPECT_NE(placement, nullptr) << ns;
    if (placement == nullptr) {
      continue;
    }
    EXPECT_EQ(placement->All().size(), services.size()) << ns;
    placement->All().ForEach([&](std::string_view id, const PlacedPtr& entry) {
      // The placed service is the view's very record.
      EXPECT_EQ(entry->service.get(), snapshot.FindService(ns, id)) << id;
      observed.placement[ns][std::string(id)] = *entry->servers;
    });
    for (const auto& server_entry : snapshot.servers) {
      const std::string& server = server_entry.first;
      std::vector<std::string>& ids = observed.slices[{ns, server}];
      placement->On(server).ForEach([&](std::string_view id, const PlacedPtr& entry) {
        ids.emplace_back(id);
        EXPECT_TRUE(std::binary_search(entry->servers->begin(), entry->servers->end(), server));
      });
      absl::StatusOr<std::shared_ptr<const HttpSdBody>> body =
          placed.HttpSd(server, ns, ExportConfig::kStandard);
      EXPECT_THAT(body, ::discovery::testing::IsOk());
      if (body.ok()) {
        // With its tag: an answer rendered incrementally is tagged as one rendered anew.
        observed.http_sd[{server, ns}] = (*body)->etag() + " " + (*body)->json();
      }
    }
  }
  observed.counts = placed.Counts();
  return observed;
}

}  // namespace discovery::readmodel
