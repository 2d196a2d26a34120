// Bash completion for a CLI11 command tree: `discovery completion bash` and
// `discoveryd completion bash` print a script generated from the same CLI::App that parses the
// command line, so subcommands, aliases and options cannot drift from what the binary accepts.
#pragma once

#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "CLI/CLI.hpp"

namespace discovery::cli {

// What an option's value (or a positional argument) completes to.
struct ValueHint {
  enum class Kind { kWords, kFiles, kDirectories };
  Kind kind = Kind::kWords;
  std::vector<std::string> words;  // for kWords
};

// Returns a bash script that defines the completion function `_<program>` and registers it with
// `complete -F` for `program`. Hidden subcommands (empty group) and hidden options are left out.
// At every command the options of its ancestors are offered as well (the commands fall through
// to their parents' flags). Values complete from, in this order: `hints` (keyed by long option
// name such as "--output", or by positional name such as "path"), the choices of a
// CLI::IsMember check, and files for a CLI::ExistingFile check. Pure; thread-compatible.
std::string BashCompletionScript(const CLI::App& app, const std::string& program,
                                 const std::map<std::string, ValueHint>& hints);

// The footer of a command's --help: "Examples:" and each line indented by two spaces (CLI11
// puts it after a blank line).
std::string ExamplesFooter(std::initializer_list<std::string_view> lines);

}  // namespace discovery::cli
