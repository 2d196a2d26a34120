#include "config/command_line.h"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <ostream>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "yaml-cpp/yaml.h"

#include "common/logging.h"
#include "config/help.h"
#include "config/suggest.h"

namespace discovery::config {
namespace {

bool EnvIsSet(const std::string& name) {
  // Mirrors CLI11, which ignores empty variables. Parsing happens at start-up, before any thread
  // could modify the environment.
  const char* value = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe)
  return value != nullptr && *value != '\0';
}

// Where one flag name lives: the subcommand path of an option and its environment variable.
struct FlagTarget {
  std::vector<std::string> parents;
  std::string env_var;
};
using FlagIndex = std::map<std::string, std::vector<FlagTarget>, std::less<>>;

// Gives every bindable option of `app` and its subcommands an environment variable and records
// where each flag name lives. Option groups are nameless subcommands that CLI11 searches as
// part of their parent, so they add nothing to the path.
void BindOptions(CLI::App& app, std::vector<std::string>& parents, FlagIndex& index) {
  for (CLI::Option* option : app.get_options()) {
    if (!option->get_configurable() || option->get_lnames().empty()) {
      continue;
    }
    if (option->get_envname().empty()) {
      option->envname(EnvVarName(option->get_lnames().front()));
    }
    for (const std::string& name : option->get_lnames()) {
      index[name].push_back(FlagTarget{.parents = parents, .env_var = option->get_envname()});
    }
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    const bool group = sub->get_name().empty();
    if (!group) {
      parents.push_back(sub->get_name());
    }
    BindOptions(*sub, parents, index);
    if (!group) {
      parents.pop_back();
    }
  }
}

// Reads our YAML files for CLI11. CLI11 2.1 applies config files before environment variables
// and binds un-dotted keys to the top-level app only; to get flag > env > file and keys that
// apply to every subcommand with that flag, a key becomes one item per option of that name, and
// options whose environment variable is set are left to CLI11's environment pass.
class YamlConfig : public CLI::Config {
 public:
  // While `*enabled` is false, every file reads as empty.
  YamlConfig(FlagIndex index, std::shared_ptr<const bool> enabled)
      : index_(std::move(index)), enabled_(std::move(enabled)) {}

  std::string to_config(const CLI::App* app, bool default_also, bool /*write_description*/,
                        std::string /*prefix*/) const override {
    YAML::Emitter emitter;
    emitter << YAML::BeginMap;
    for (const CLI::Option* option : app->get_options()) {
      if (!option->get_configurable() || option->get_lnames().empty()) {
        continue;
      }
      std::vector<std::string> values = option->results();
      if (values.empty() && default_also && !option->get_default_str().empty()) {
        values.push_back(option->get_default_str());
      }
      if (values.empty()) {
        continue;
      }
      emitter << YAML::Key << option->get_lnames().front() << YAML::Value;
      if (values.size() == 1) {
        emitter << values.front();
      } else {
        emitter << YAML::Flow << values;
      }
    }
    emitter << YAML::EndMap;
    return std::string(emitter.c_str()) + "\n";
  }

  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    if (!*enabled_) {
      return {};
    }
    const std::string content{std::istreambuf_iterator<char>(input),
                              std::istreambuf_iterator<char>()};
    absl::StatusOr<FlagValues> values = ParseConfigYaml(content);
    if (!values.ok()) {
      throw CLI::ConfigError(std::string{values.status().message()});
    }
    std::vector<CLI::ConfigItem> result;
    for (const auto& [name, inputs] : *values) {
      const auto it = index_.find(name);
      if (it == index_.end()) {
        continue;
      }
      for (const FlagTarget& target : it->second) {
        if (EnvIsSet(target.env_var)) {
          continue;
        }
        CLI::ConfigItem item;
        item.parents = target.parents;
        item.name = name;
        item.inputs = inputs;
        result.push_back(std::move(item));
      }
    }
    return result;
  }

 private:
  FlagIndex index_;
  std::shared_ptr<const bool> enabled_;
};

// Calls `visit(app, option)` for every configurable option with a long name of `app` and its
// subcommands, parents first.
void ForEachSetting(CLI::App& app, const std::function<void(CLI::App&, CLI::Option&)>& visit) {
  for (CLI::Option* option : app.get_options()) {
    if (option->get_configurable() && !option->get_lnames().empty()) {
      visit(app, *option);
    }
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    ForEachSetting(*sub, visit);
  }
}

std::string Joined(const std::vector<std::string>& values) {
  std::string joined;
  for (const std::string& value : values) {
    joined += (joined.empty() ? "" : ",") + value;
  }
  return joined;
}

}  // namespace

std::vector<std::string> ConfigKeys(CLI::App& app) {
  std::set<std::string> keys;
  ForEachSetting(app, [&keys](CLI::App&, CLI::Option& option) {
    keys.insert(option.get_lnames().begin(), option.get_lnames().end());
  });
  return {keys.begin(), keys.end()};
}

std::string BuildInfo::CompilerVersion() {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "g++ " __VERSION__;
#else
  return "unknown";
#endif
}

std::string FormatVersion(const BuildInfo& build) {
  return build.program + ", version " + build.version +
         " (revision: " + build.revision.substr(0, 8) + ")\n  build date:       " + build.date +
         "\n  compiler:         " + build.compiler;
}

std::string FormatShowConfig(const ConfigFiles& files) {
  std::size_t width = 0;
  for (const ConfigFile& file : files.files()) {
    width = std::max(width, file.path.string().size());
  }
  std::string text = "Configuration files:\n";
  for (const ConfigFile& file : files.files()) {
    const std::string path = file.path.string();
    text += "  " + path + std::string(width - path.size() + 1, ' ');
    text += FileStatusName(file.status);
    text += '\n';
  }
  return text;
}

std::string EnvVarName(std::string_view flag) {
  std::string name = "DISCOVERY_";
  for (const char c : flag) {
    if (c == '-') {
      name += '_';
    } else if (c >= 'a' && c <= 'z') {
      name += static_cast<char>(c - 'a' + 'A');
    } else {
      name += c;
    }
  }
  return name;
}

CommandLine::CommandLine(CLI::App& app, ConfigFiles files, BuildInfo build,
                         std::vector<std::string> other_keys)
    : app_(app),
      files_(std::move(files)),
      build_(std::move(build)),
      other_keys_(std::move(other_keys)) {
  version_ = app_.set_version_flag("--version", FormatVersion(build_));
  // Throwing from the callback stops CLI11 before it checks required options.
  show_config_ = app_.add_flag_callback(
      "--show-config", [] { throw CLI::Success(); },
      "Print the configuration files and their state, then exit");
  show_config_->configurable(false);
  // CLI11 reads the files listed in this option after the command line and before checking
  // requirements. Parse() fills it with our parsed candidates; a user may add one more file.
  config_files_ = app_.set_config("--config-file", "", "Read this YAML config file as well");
  config_files_->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)->group("");

  FlagIndex index;
  std::vector<std::string> parents;
  BindOptions(app_, parents, index);
  for (const auto& [name, targets] : index) {
    known_keys_.push_back(name);
  }
  app_.config_formatter(std::make_shared<YamlConfig>(std::move(index), read_files_));

  UseEnvHelpFormatter(app_);
}

std::optional<int> CommandLine::Parse(std::vector<std::string> args, std::ostream& out,
                                      std::ostream& err) {
  // --help, --version and --show-config still work with a bad key, to find the mistake with.
  const auto given = [&args](std::initializer_list<std::string_view> names) {
    return std::any_of(args.begin(), args.end(), [names](const std::string& arg) {
      return std::find(names.begin(), names.end(), arg) != names.end();
    });
  };
  if (!given({"-h", "--help", "--version", "--show-config"})) {
    if (std::optional<int> exit = CheckKeys(err)) {
      return exit;
    }
  }
  settings_.clear();
  if (given({"--show-config"})) {
    settings_ = FormatSettings(args);
  }
  app_.clear();
  // CLI11 reads the listed files last to first and keeps the first value it sees for an option,
  // so listing them lowest precedence first makes ./discovery.yaml win.
  std::vector<std::string> paths;
  for (const ConfigFile& file : files_.files()) {
    if (file.status == FileStatus::kParsed) {
      paths.push_back(file.path.string());
    }
  }
  std::reverse(paths.begin(), paths.end());
  if (!paths.empty()) {
    config_files_->add_result(std::move(paths));
  }
  // CLI11 takes the arguments in reverse order.
  std::reverse(args.begin(), args.end());
  try {
    app_.parse(std::move(args));
  } catch (const CLI::ParseError& error) {
    return HandleParseError(error, out, err);
  }
  if (const absl::Status status = files_.status(); !status.ok()) {
    return UsageError(std::string{status.message()}, err);
  }
  return std::nullopt;
}

std::optional<int> CommandLine::Parse(int argc, const char* const* argv, std::ostream& out,
                                      std::ostream& err) {
  if (argc > 0 && app_.get_name().empty()) {
    app_.name(argv[0]);
  }
  std::vector<std::string> args;
  if (argc > 1) {
    args.assign(argv + 1, argv + argc);
  }
  return Parse(std::move(args), out, err);
}

std::optional<int> CommandLine::CheckKeys(std::ostream& err) const {
  std::vector<std::string> shared_keys = known_keys_;
  shared_keys.insert(shared_keys.end(), other_keys_.begin(), other_keys_.end());
  for (const ConfigFile& file : files_.files()) {
    if (file.status != FileStatus::kParsed) {
      continue;
    }
    // A file both programs read may hold the other's keys; a misspelt key ("adress:") would
    // otherwise be ignored without a word.
    const std::vector<std::string>& keys = file.exclusive ? known_keys_ : shared_keys;
    for (const auto& [key, values] : file.values) {
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) {
        continue;
      }
      const auto line = file.key_lines.find(key);
      const std::optional<std::string> closest = ClosestMatch(key, keys);
      return UsageError(
          file.path.string() + ":" +
              (line == file.key_lines.end() ? "" : std::to_string(line->second) + ":") +
              " unknown key \"" + key + "\"" +
              (closest ? "; did you mean \"" + *closest + "\"?" : ""),
          err);
    }
  }
  return std::nullopt;
}

std::string CommandLine::FormatSettings(const std::vector<std::string>& args) {
  // CLI11 does not record where a value came from, so a first parse without the environment and
  // the files tells which options the command line sets.
  std::map<CLI::Option*, std::string> env_names;
  ForEachSetting(app_, [&env_names](CLI::App&, CLI::Option& option) {
    env_names[&option] = option.get_envname();
    option.envname("");
  });
  *read_files_ = false;
  app_.clear();
  try {
    app_.parse(std::vector<std::string>(args.rbegin(), args.rend()));
  } catch (const CLI::Error&) {
    // Whatever the command line set so far is all that matters here.
  }
  // Files given with --config-file rank above the candidates.
  std::vector<ConfigFile> files;
  for (const std::string& path : config_files_->results()) {
    files.push_back(LoadConfigFile(path));
  }
  std::reverse(files.begin(), files.end());
  files.insert(files.end(), files_.files().begin(), files_.files().end());

  struct Setting {
    std::string value;
    std::string source;
    // How deep the command of the option is among those the arguments name; -1 for others.
    int depth = -1;
  };
  std::map<std::string, Setting, std::less<>> settings;
  ForEachSetting(app_, [&](CLI::App& command, CLI::Option& option) {
    if (&option == config_files_) {
      return;
    }
    const std::string& key = option.get_lnames().front();
    const auto known = settings.find(key);
    // A key sets the option of that name in every command; when defaults differ, the deepest
    // command the arguments name (else the first command having it) decides what is shown.
    int depth = -1;
    if (command.parsed()) {
      depth = 0;
      for (const CLI::App* parent = command.get_parent(); parent != nullptr;
           parent = parent->get_parent()) {
        ++depth;
      }
    }
    if (known != settings.end() && known->second.depth >= depth) {
      return;
    }
    Setting setting{.depth = depth};
    const std::string& env_name = env_names[&option];
    const std::vector<std::string>* file_values = nullptr;
    const ConfigFile* file_source = nullptr;
    for (auto file = files.begin(); file != files.end() && file_values == nullptr; ++file) {
      for (const std::string& name : option.get_lnames()) {
        if (const auto it = file->values.find(name); it != file->values.end()) {
          file_values = &it->second;
          file_source = &*file;
          break;
        }
      }
    }
    if (option.count() > 0) {
      setting.value = Joined(option.results());
      setting.source = "flag";
    } else if (!env_name.empty() && EnvIsSet(env_name)) {
      setting.value = std::getenv(env_name.c_str());  // NOLINT(concurrency-mt-unsafe)
      setting.source = "environment " + env_name;
    } else if (file_values != nullptr) {
      setting.value = Joined(*file_values);
      setting.source = "file " + file_source->path.string();
    } else {
      setting.value = option.get_default_str();
      setting.source = "default";
      if (setting.value.empty() && option.get_expected_max() == 0) {
        setting.value = "false";  // an unset flag
      }
    }
    setting.value = RedactFlagValue(key, setting.value);
    if (setting.value.empty()) {
      setting.value = "\"\"";
    }
    settings.insert_or_assign(key, std::move(setting));
  });

  for (auto& [option, env_name] : env_names) {
    option->envname(env_name);
  }
  *read_files_ = true;

  std::size_t key_width = 0;
  std::size_t value_width = 0;
  for (const auto& [key, setting] : settings) {
    key_width = std::max(key_width, key.size());
    value_width = std::max(value_width, setting.value.size());
  }
  std::string text = "Settings:\n";
  for (const auto& [key, setting] : settings) {
    text += "  " + key + std::string(key_width - key.size() + 1, ' ') + setting.value +
            std::string(value_width - setting.value.size() + 1, ' ') + setting.source + '\n';
  }
  return text;
}

int CommandLine::UsageError(const std::string& message, std::ostream& err) const {
  err << app_.get_name() << ": " << message << "\n";
  return kUsageExitCode;
}

int CommandLine::HandleParseError(const CLI::ParseError& error, std::ostream& out,
                                  std::ostream& err) {
  const std::string name = error.get_name();
  if (name == "CallForHelp" || name == "CallForAllHelp") {
    return app_.exit(error, out, err);
  }
  // Checked by count rather than by exception so that they also win over errors CLI11 raises
  // before it runs their callbacks (a bad value in the environment or a file, say).
  if (version_->count() > 0) {
    out << FormatVersion(build_) << '\n';
    return 0;
  }
  if (show_config_->count() > 0) {
    err << FormatShowConfig(files_) << settings_;
    return 0;
  }
  // A broken file is the likelier cause of whatever else went wrong, so it is reported first.
  if (const absl::Status status = files_.status(); !status.ok()) {
    return UsageError(std::string{status.message()}, err);
  }
  return UsageError(UsageMessage(app_, error), err);
}

}  // namespace discovery::config
