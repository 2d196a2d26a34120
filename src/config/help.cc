#include "config/help.h"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/suggest.h"

namespace discovery::config {
namespace {

// Moves the environment variable from CLI11's option column to the end of the description:
// "--namespace TEXT    namespace of the service ($DISCOVERY_NAMESPACE)".
class EnvHelpFormatter : public CLI::Formatter {
 public:
  explicit EnvHelpFormatter(const CLI::Formatter& base) : CLI::Formatter(base) {}

  std::string make_option_opts(const CLI::Option* option) const override {
    std::string opts = CLI::Formatter::make_option_opts(option);
    const std::string env = option->get_envname();
    if (!env.empty()) {
      const std::string note = " (" + get_label("Env") + ":" + env + ")";
      if (const std::size_t pos = opts.find(note); pos != std::string::npos) {
        opts.erase(pos, note.size());
      }
    }
    return opts;
  }

  // A subcommand with fallthrough accepts its ancestors' flags too (`discoveryd token create
  // --data-dir ...`), so its help lists them after its own (make_groups is not virtual; the
  // subcommands come right after the groups).
  std::string make_subcommands(const CLI::App* app, CLI::AppFormatMode mode) const override {
    std::string subcommands = CLI::Formatter::make_subcommands(app, mode);
    if (mode == CLI::AppFormatMode::Sub || !app->get_fallthrough()) {
      return subcommands;
    }
    std::vector<const CLI::Option*> inherited;
    for (const CLI::App* parent = app->get_parent(); parent != nullptr;
         parent = parent->get_parent()) {
      for (const CLI::Option* option : parent->get_options([parent](const CLI::Option* option) {
             return !option->get_group().empty() && option->nonpositional() &&
                    option != parent->get_help_ptr() && option != parent->get_help_all_ptr() &&
                    option != parent->get_version_ptr();
           })) {
        inherited.push_back(option);
      }
      if (!parent->get_fallthrough()) {
        break;
      }
    }
    if (inherited.empty()) {
      return subcommands;
    }
    return make_group("GLOBAL OPTIONS", false, inherited) + subcommands;
  }

  std::string make_option_desc(const CLI::Option* option) const override {
    std::string description = CLI::Formatter::make_option_desc(option);
    const std::string env = option->get_envname();
    if (env.empty()) {
      return description;
    }
    return description.empty() ? "($" + env + ")" : description + " ($" + env + ")";
  }
};

void SetFormatter(CLI::App& app, const std::shared_ptr<CLI::FormatterBase>& formatter) {
  app.formatter(formatter);
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    SetFormatter(*sub, formatter);
  }
}

// The command CLI11 got furthest into: `discovery service list` for "service list --outptu".
const CLI::App& DeepestCommand(const CLI::App& app) {
  const CLI::App* command = &app;
  while (true) {
    const std::vector<CLI::App*> parsed = command->get_subcommands();
    const auto named = std::find_if(parsed.begin(), parsed.end(),
                                    [](const CLI::App* sub) { return !sub->get_name().empty(); });
    if (named == parsed.end()) {
      return *command;
    }
    command = *named;
  }
}

std::string CommandPath(const CLI::App& command) {
  std::string path = command.get_name();
  for (const CLI::App* parent = command.get_parent(); parent != nullptr;
       parent = parent->get_parent()) {
    if (!parent->get_name().empty()) {
      path.insert(0, parent->get_name() + " ");
    }
  }
  return path;
}

// The subcommands (and their aliases) a user may type after `command`, hidden ones left out.
std::vector<std::string> CommandNames(const CLI::App& command) {
  std::vector<std::string> names;
  for (const CLI::App* sub : command.get_subcommands([](const CLI::App* sub) {
         return !sub->get_name().empty() && !sub->get_group().empty();
       })) {
    names.push_back(sub->get_name());
    for (const std::string& alias : sub->get_aliases()) {
      names.push_back(alias);
    }
  }
  return names;
}

// The flags `command` accepts, its ancestors' included ("--output", "-o").
std::vector<std::string> FlagNames(const CLI::App& command) {
  std::vector<std::string> names;
  for (const CLI::App* app = &command; app != nullptr; app = app->get_parent()) {
    for (const CLI::Option* option : app->get_options()) {
      if (option->get_group().empty()) {
        continue;  // hidden
      }
      for (const std::string& name : option->get_lnames()) {
        names.push_back("--" + name);
      }
      for (const std::string& name : option->get_snames()) {
        names.push_back("-" + name);
      }
    }
  }
  return names;
}

}  // namespace

std::string UsageMessage(const CLI::App& root, const CLI::ParseError& error) {
  const CLI::App& command = DeepestCommand(root);
  const std::string path = CommandPath(command);
  const std::string help = "see `" + path + " --help`";
  const std::vector<std::string> leftovers = root.remaining(/*recurse=*/true);
  const auto flag = std::find_if(leftovers.begin(), leftovers.end(), [](const std::string& arg) {
    return arg.size() > 1 && arg.starts_with('-') && arg != "--";
  });
  if (flag != leftovers.end()) {
    const std::string name = flag->substr(0, flag->find('='));
    const std::optional<std::string> closest = ClosestMatch(name, FlagNames(command));
    return "unknown flag " + name + " for `" + path + "`; " +
           (closest ? "did you mean " + *closest + "?" : help);
  }
  const std::vector<std::string> commands = CommandNames(command);
  if (!leftovers.empty() && !commands.empty()) {
    const std::optional<std::string> closest = ClosestMatch(leftovers.front(), commands);
    return "unknown command \"" + leftovers.front() + "\" for `" + path + "`; " +
           (closest ? "did you mean `" + CommandPath(command) + " " + *closest + "`?" : help);
  }
  if (!leftovers.empty()) {
    return "unexpected argument \"" + leftovers.front() + "\" for `" + path + "`; " + help;
  }
  if (error.get_name() == "RequiredError" && !commands.empty() &&
      command.get_require_subcommand_min() > 0 && command.get_subcommands().empty()) {
    std::string names;
    for (const CLI::App* sub : command.get_subcommands([](const CLI::App* sub) {
           return !sub->get_name().empty() && !sub->get_group().empty();
         })) {
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    return "`" + path + "` needs a command: " + names + "; " + help;
  }
  return std::string(error.what()) + "; " + help;
}

void UseEnvHelpFormatter(CLI::App& app) {
  const auto base = std::dynamic_pointer_cast<CLI::Formatter>(app.get_formatter());
  SetFormatter(app, std::make_shared<EnvHelpFormatter>(base ? *base : CLI::Formatter()));
}

}  // namespace discovery::config
