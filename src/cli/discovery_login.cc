#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <istream>
#include <ostream>
#include <string>
#include <utility>

#include "CLI/CLI.hpp"
#include "cli/completion.h"
#include "cli/discovery_commands.h"
#include "cli/discovery_flags.h"
#include "cli/oidc_login.h"
#include "cli/token_file.h"
#include "fmt/format.h"

#include "common/logging.h"

namespace discovery::cli::discovery_internal {

namespace {

// Reads one line from the terminal without echoing it.
absl::StatusOr<std::string> ReadSecretLine(std::istream& in) {
  if (isatty(STDIN_FILENO) == 0) {
    return absl::FailedPreconditionError(
        "reading password: stdin is not a terminal; pipe the password with --password-stdin");
  }
  termios saved{};
  tcgetattr(STDIN_FILENO, &saved);
  termios silent = saved;
  silent.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  tcsetattr(STDIN_FILENO, TCSANOW, &silent);
  std::string line;
  std::getline(in, line);
  tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  return line;
}

}  // namespace

int Login(const Flags& flags, std::istream& in, std::ostream& out, std::ostream& err,
          const Failure& fail) {
  if (!flags.oidc_external_login_cmd.empty()) {
    err << "login with the following command:\n\n" << flags.oidc_external_login_cmd << "\n";
    return 0;
  }
  const char* user_env = std::getenv("USER");  // NOLINT(concurrency-mt-unsafe): single-threaded
  const std::string default_user = user_env == nullptr ? "" : user_env;
  std::string username = flags.username;
  if (username.empty() && !flags.password_stdin) {
    out << (default_user.empty() ? std::string("Enter username: ")
                                 : fmt::format("Enter username ({}): ", default_user))
        << std::flush;
    std::getline(in, username);
  }
  if (username.empty()) {
    username = default_user;
  }
  if (username.empty()) {
    return fail("no username given (--username)");
  }
  std::string password;
  if (flags.password_stdin) {
    std::getline(in, password);
  } else {
    out << "Enter password: " << std::flush;
    absl::StatusOr<std::string> read = ReadSecretLine(in);
    out << "\n";
    if (!read.ok()) {
      return fail(read.status());
    }
    password = *std::move(read);
  }
  absl::StatusOr<TokenFile> token = PasswordLogin(OidcOptionsOf(flags), username, password);
  if (!token.ok()) {
    return fail(token.status());
  }
  if (absl::Status saved = WriteTokenFile(flags.token_path, *token); !saved.ok()) {
    return fail(saved);
  }
  LogInfo("logged in", {{"username", username}, {"token-path", flags.token_path}});
  return 0;
}

CLI::App* AddLoginCommand(CLI::App& app, Flags& flags) {
  CLI::App* login = app.add_subcommand("login", "Log in with the OIDC provider (password grant).");
  login->footer(ExamplesFooter({
      "discovery login",
      R"(printf '%s\n' "$PW" | discovery login --username alice --password-stdin)",
  }));
  login->add_option("-u,--username", flags.username, "User name (default: prompt, then $USER)");
  login->add_flag("--password-stdin", flags.password_stdin,
                  "Read the password from the first line of stdin instead of the terminal");
  return login;
}

}  // namespace discovery::cli::discovery_internal
