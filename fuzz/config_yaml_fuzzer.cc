// Fuzzes config::ParseConfigYaml, which reads ./discovery.yaml, ~/.config/discovery/config.yaml
// and /etc/discovery/config.yaml of both binaries (yaml-cpp underneath). Invariants: anything
// that is not a mapping of flag names to scalars, lists or maps of scalars is InvalidArgument,
// no exception escapes; parsed values written back as YAML the way the CLI's config formatter
// writes them (config/command_line.cc, YamlConfig::to_config) parse to the same values.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "fuzz_check.h"
#include "yaml-cpp/yaml.h"

#include "config/config_files.h"

namespace {

using ::discovery::config::FlagValues;
using ::discovery::config::ParseConfigYaml;
using ::discovery::fuzz::Check;

// What CLI11 accepts as a long option name, the only keys to_config writes. yaml-cpp's emitter
// writes other keys unquoted even where they mean something else at the start of a line (a
// key "--- x" becomes a document marker), which the product never asks it to.
bool IsFlagName(std::string_view name) {
  if (name.empty() || !absl::ascii_isalnum(static_cast<unsigned char>(name.front()))) {
    return false;
  }
  for (const char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view content(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<FlagValues> values = ParseConfigYaml(content);
  if (!values.ok()) {
    Check(values.status().code() == absl::StatusCode::kInvalidArgument,
          "parse errors are InvalidArgument", values.status().message());
    return 0;
  }

  // As to_config writes them: one value as a scalar, several as a flow list, none not at all.
  // Keys that are no flag name are left out: CLI11 ignores them and to_config never writes them.
  YAML::Emitter emitter;
  emitter << YAML::BeginMap;
  FlagValues expected;
  for (const auto& [flag, inputs] : *values) {
    if (inputs.empty() || !IsFlagName(flag)) {
      continue;
    }
    expected.emplace(flag, inputs);
    emitter << YAML::Key << flag << YAML::Value;
    if (inputs.size() == 1) {
      emitter << inputs.front();
    } else {
      emitter << YAML::Flow << inputs;
    }
  }
  emitter << YAML::EndMap;
  Check(emitter.good(), "the emitter accepts parsed values", emitter.GetLastError());
  const std::string written = std::string(emitter.c_str()) + "\n";
  const absl::StatusOr<FlagValues> reparsed = ParseConfigYaml(written);
  Check(reparsed.ok(), "written values parse", written);
  Check(*reparsed == expected, "written values parse to the same values", written);
  return 0;
}
