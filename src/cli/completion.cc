#include "cli/completion.h"

#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "fmt/format.h"

namespace discovery::cli {
namespace {

// One visible command of the tree and the options valid there (its own and its ancestors').
struct Command {
  std::string path;  // "" for the program, else subcommand names joined by spaces
  const CLI::App* app = nullptr;
  std::vector<const CLI::Option*> options;                       // named options
  std::vector<const CLI::Option*> positionals;                   // in order
  std::vector<std::pair<std::string, std::string>> subcommands;  // name or alias -> path
};

bool Hidden(const CLI::App& app) { return app.get_group().empty(); }
bool Hidden(const CLI::Option& option) { return option.get_group().empty(); }

void Collect(const CLI::App& app, const std::string& path,
             std::vector<const CLI::Option*> inherited, std::vector<Command>& commands) {
  Command command{.path = path, .app = &app};
  for (const CLI::Option* option : app.get_options()) {
    if (Hidden(*option)) {
      continue;
    }
    if (option->nonpositional()) {
      inherited.push_back(option);
    } else {
      command.positionals.push_back(option);
    }
  }
  command.options = inherited;
  std::vector<std::pair<const CLI::App*, std::string>> children;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (Hidden(*sub)) {
      continue;
    }
    const std::string sub_path = path.empty() ? sub->get_name() : path + " " + sub->get_name();
    command.subcommands.emplace_back(sub->get_name(), sub_path);
    for (const std::string& alias : sub->get_aliases()) {
      command.subcommands.emplace_back(alias, sub_path);
    }
    children.emplace_back(sub, sub_path);
  }
  commands.push_back(std::move(command));
  for (const auto& [sub, sub_path] : children) {
    Collect(*sub, sub_path, inherited, commands);
  }
}

std::vector<std::string> Names(const CLI::Option& option) {
  std::vector<std::string> names;
  for (const std::string& name : option.get_snames()) {
    names.push_back("-" + name);
  }
  for (const std::string& name : option.get_lnames()) {
    names.push_back("--" + name);
  }
  return names;
}

bool TakesValue(const CLI::Option& option) { return option.get_items_expected_max() > 0; }

// The choices of a CLI::IsMember check, which CLI11 shows as ":{a,b,c}" in the type name.
std::optional<ValueHint> HintFromChecks(const CLI::Option& option) {
  const std::string type = option.get_type_name();
  const std::size_t open = type.find(":{");
  const std::size_t close = type.find('}', open == std::string::npos ? 0 : open);
  if (open != std::string::npos && close != std::string::npos) {
    ValueHint hint{.kind = ValueHint::Kind::kWords};
    std::string word;
    for (const char c : type.substr(open + 2, close - open - 2)) {
      if (c == ',') {
        hint.words.push_back(word);
        word.clear();
      } else if (c != ' ') {
        word += c;
      }
    }
    hint.words.push_back(word);
    return hint;
  }
  if (type.find(":FILE") != std::string::npos) {
    return ValueHint{.kind = ValueHint::Kind::kFiles};
  }
  if (type.find(":DIR") != std::string::npos) {
    return ValueHint{.kind = ValueHint::Kind::kDirectories};
  }
  return std::nullopt;
}

std::optional<ValueHint> HintOf(const CLI::Option& option,
                                const std::map<std::string, ValueHint>& hints) {
  std::vector<std::string> keys = Names(option);
  if (option.get_positional()) {
    keys.push_back(option.get_name());
  }
  for (const std::string& key : keys) {
    if (const auto found = hints.find(key); found != hints.end()) {
      return found->second;
    }
  }
  return HintFromChecks(option);
}

// Words of the script are names of commands and options and the choices of values: they are
// single-quoted, so a quote inside one is spelled '\''.
std::string Quote(const std::string& word) {
  std::string quoted = "'";
  for (const char c : word) {
    quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return quoted + "'";
}

std::string Join(const std::vector<std::string>& words) {
  std::string joined;
  for (const std::string& word : words) {
    joined += joined.empty() ? word : " " + word;
  }
  return joined;
}

std::string CompgenOf(const ValueHint& hint) {
  switch (hint.kind) {
    case ValueHint::Kind::kFiles:
      return "compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- \"$cur\"))";
    case ValueHint::Kind::kDirectories:
      return "compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- \"$cur\"))";
    case ValueHint::Kind::kWords:
      break;
  }
  return fmt::format("COMPREPLY=($(compgen -W {} -- \"$cur\"))", Quote(Join(hint.words)));
}

}  // namespace

std::string ExamplesFooter(std::initializer_list<std::string_view> lines) {
  std::string footer = "Examples:";
  for (const std::string_view line : lines) {
    footer += "\n  ";
    footer += line;
  }
  return footer;
}

std::string BashCompletionScript(const CLI::App& app, const std::string& program,
                                 const std::map<std::string, ValueHint>& hints) {
  std::vector<Command> commands;
  Collect(app, "", {}, commands);
  std::string fn = program;
  for (char& c : fn) {
    if (c == '-' || c == '.') {
      c = '_';
    }
  }

  std::string script = fmt::format(
      "# bash completion for {0}\n"
      "# Generated by `{0} completion bash` from its command tree; regenerate, do not edit.\n\n",
      program);

  // Subcommand lookup: "<path>:<word>" -> path of the subcommand.
  script += fmt::format(
      "# __{0}_command PATH WORD: sets `command` to the path of subcommand WORD of PATH, or "
      "fails.\n"
      "__{0}_command() {{\n  case \"$1:$2\" in\n",
      fn);
  for (const Command& command : commands) {
    for (const auto& [word, path] : command.subcommands) {
      script +=
          fmt::format("    {}) command={} ;;\n", Quote(command.path + ":" + word), Quote(path));
    }
  }
  script += "    *) return 1 ;;\n  esac\n}\n\n";

  // What each command offers.
  script += fmt::format(
      "# __{0}_spec PATH: sets `subcommands`, `options`, `value_options` and `positionals` of "
      "PATH.\n__{0}_spec() {{\n  case \"$1\" in\n",
      fn);
  for (const Command& command : commands) {
    std::vector<std::string> subcommands;
    for (const auto& [word, path] : command.subcommands) {
      subcommands.push_back(word);
    }
    std::vector<std::string> options;
    std::vector<std::string> value_options;
    std::set<std::string> seen;  // -h,--help of every level
    for (const CLI::Option* option : command.options) {
      for (const std::string& name : Names(*option)) {
        if (!seen.insert(name).second) {
          continue;
        }
        options.push_back(name);
        if (TakesValue(*option)) {
          value_options.push_back(name);
        }
      }
    }
    std::vector<std::string> positionals;
    for (const CLI::Option* option : command.positionals) {
      positionals.push_back(option->get_name());
    }
    script += fmt::format(
        "    {})\n      subcommands={}\n      options={}\n      value_options={}\n"
        "      positionals={} ;;\n",
        Quote(command.path), Quote(Join(subcommands)), Quote(Join(options)),
        Quote(Join(value_options)), Quote(Join(positionals)));
  }
  script += "    *) subcommands='' options='' value_options='' positionals='' ;;\n  esac\n}\n\n";

  // Values of options and positionals.
  script += fmt::format(
      "# __{0}_values PATH NAME: completes the value of option or positional NAME at PATH from "
      "$cur,\n# or fails when nothing is known about it.\n__{0}_values() {{\n  case \"$1:$2\" in\n",
      fn);
  for (const Command& command : commands) {
    std::vector<const CLI::Option*> all = command.options;
    all.insert(all.end(), command.positionals.begin(), command.positionals.end());
    for (const CLI::Option* option : all) {
      if (option->nonpositional() && !TakesValue(*option)) {
        continue;
      }
      const std::optional<ValueHint> hint = HintOf(*option, hints);
      if (!hint) {
        continue;
      }
      std::vector<std::string> keys = Names(*option);
      if (!option->nonpositional()) {
        keys = {option->get_name()};
      }
      std::vector<std::string> patterns;
      patterns.reserve(keys.size());
      for (const std::string& key : keys) {
        patterns.push_back(Quote(command.path + ":" + key));
      }
      script += fmt::format("    {}) {} ;;\n", fmt::join(patterns, " | "), CompgenOf(*hint));
    }
  }
  script += "    *) return 1 ;;\n  esac\n}\n\n";

  script += fmt::format(
      R"(_{0}() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" path="" command="" word="" expect_value="" i
  local subcommands options value_options positionals
  local -i position=0
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="${{COMP_WORDS[i]}}"
    if [[ $word == "=" ]]; then
      continue  # --flag=value, split by COMP_WORDBREAKS
    elif [[ -n $expect_value ]]; then
      expect_value=""
    elif [[ $word == -* ]]; then
      __{0}_spec "$path"
      if [[ $word != *=* && " $value_options " == *" $word "* ]]; then
        expect_value="$word"
      fi
    elif __{0}_command "$path" "$word"; then
      path="$command"
      position=0
    else
      position+=1
    fi
  done
  __{0}_spec "$path"
  if [[ $cur == "=" ]]; then
    cur=""
  fi
  if [[ $cur == --*=* ]]; then
    expect_value="${{cur%%=*}}"
    cur="${{cur#*=}}"
  fi
  if [[ -n $expect_value ]]; then
    __{0}_values "$path" "$expect_value"
    return 0
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$options" -- "$cur"))
  elif [[ -n $subcommands ]]; then
    COMPREPLY=($(compgen -W "$subcommands" -- "$cur"))
  elif [[ -n $positionals ]]; then
    local -a names=($positionals)
    if ((position >= ${{#names[@]}})); then
      position=${{#names[@]}}-1
    fi
    __{0}_values "$path" "${{names[position]}}"
  fi
  return 0
}}

complete -F _{0} {1}
)",
      fn, program);
  return script;
}

}  // namespace discovery::cli
