#include <map>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "common/go_duration.h"
#include "config/command_line.h"

// The typed options both programs declare their flags with: comma-separated lists, key=value
// maps and Go durations.
namespace discovery::config {

CLI::Option* AddListOption(CLI::App& app, const std::string& name, std::vector<std::string>* values,
                           const std::string& description) {
  CLI::Option* option = app.add_option(name, *values, description)->delimiter(',');
  // A flag takes one (comma-separated) value per occurrence, so `-e URL NAME` leaves NAME to the
  // positional after it, as kong does.
  if (name.starts_with('-')) {
    option->allow_extra_args(false);
  }
  return option;
}

CLI::Option* AddMapOption(CLI::App& app, const std::string& name,
                          std::map<std::string, std::string>* values,
                          const std::string& description) {
  const CLI::Validator key_value(
      [](std::string& item) -> std::string {
        return item.find('=') == std::string::npos ? "expected key=value, got \"" + item + "\""
                                                   : std::string();
      },
      "");
  return app
      .add_option_function<std::vector<std::string>>(
          name,
          [values](const std::vector<std::string>& items) {
            values->clear();
            for (const std::string& item : items) {
              const std::size_t pos = item.find('=');
              (*values)[item.substr(0, pos)] = item.substr(pos + 1);
            }
          },
          description)
      ->delimiter(',')
      ->allow_extra_args(false)
      ->check(key_value)
      ->type_name("KEY=VALUE");
}

CLI::Option* AddDurationOption(CLI::App& app, const std::string& name, absl::Duration* value,
                               const std::string& description) {
  const CLI::Validator go_duration(
      [](std::string& text) -> std::string {
        const absl::StatusOr<absl::Duration> parsed = ParseGoDuration(text);
        return parsed.ok() ? std::string() : std::string{parsed.status().message()};
      },
      "");
  return app
      .add_option_function<std::string>(
          name,
          [value](const std::string& text) {
            if (absl::StatusOr<absl::Duration> parsed = ParseGoDuration(text); parsed.ok()) {
              *value = *parsed;
            }
          },
          description)
      ->check(go_duration)
      ->type_name("DURATION")
      ->default_str(FormatGoDuration(*value));
}

}  // namespace discovery::config
