#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/time/time.h"
#include "cli/api_client.h"
#include "cli/completion.h"
#include "cli/discovery_commands.h"
#include "cli/discovery_flags.h"
#include "fmt/format.h"

#include "auth/jwt.h"
#include "common/go_duration.h"
#include "common/logging.h"
#include "config/command_line.h"
#include "model/model.h"

namespace discovery::cli::discovery_internal {

namespace {

// A token for a namespace that does not exist is made anyway (it may be registered later), but a
// typo would otherwise only show when the token is refused.
void WarnAboutUnknownNamespaces(const ApiClient& client, const std::vector<std::string>& wanted) {
  absl::StatusOr<std::vector<Namespace>> namespaces = client.ListNamespaces();
  if (!namespaces.ok()) {
    return;  // the token is made; this check is a courtesy
  }
  for (const std::string& name : wanted) {
    if (std::none_of(namespaces->begin(), namespaces->end(),
                     [&](const Namespace& ns) { return ns.name == name; })) {
      LogWarn(
          fmt::format("namespace {} does not exist; the token is valid for it once it is "
                      "registered",
                      name));
    }
  }
}

}  // namespace

int TokenCreate(const Flags& flags, std::ostream& out, const Failure& fail) {
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  absl::StatusOr<std::string> token =
      client->CreateToken(flags.token_id, flags.token_namespaces, FormatGoDuration(flags.expiry));
  if (!token.ok()) {
    return fail(
        fmt::format("cannot create token {}: {}", flags.token_id, token.status().message()));
  }
  out << *token << "\n";
  WarnAboutUnknownNamespaces(*client, flags.token_namespaces);
  return 0;
}

int TokenInfo(const Flags& flags, std::ostream& out, const Failure& fail) {
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  absl::StatusOr<TokenDetails> info = client->TokenInfo(flags.token);
  if (!info.ok()) {
    return fail(info.status());
  }
  // The server vouched for the token; its admin claim is read from the token itself, which the
  // Info answer of the original's API does not carry.
  bool admin = false;
  if (absl::StatusOr<auth::DecodedJwt> decoded = auth::DecodeJwt(flags.token); decoded.ok()) {
    const auto claim = decoded->payload.find("admin");
    admin = claim != decoded->payload.end() && claim->is_boolean() && claim->get<bool>();
  }
  std::string namespaces;
  for (const std::string& ns : info->namespaces) {
    namespaces += namespaces.empty() ? ns : ", " + ns;
  }
  out << "id: " << info->id << "\n"
      << "admin: " << (admin ? "true" : "false") << "\n"
      << "namespaces: [" << namespaces << "]\n"
      << "expiry: "
      << (info->expires ? absl::FormatTime(absl::RFC3339_sec, *info->expires, absl::UTCTimeZone())
                        : "never")
      << "\n";
  return 0;
}

int TokenRevoke(const Flags& flags, const Failure& fail) {
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  if (absl::StatusOr<RevokedTokenDetails> revoked = client->RevokeToken(flags.token_id);
      !revoked.ok()) {
    return fail(
        fmt::format("cannot revoke token {}: {}", flags.token_id, revoked.status().message()));
  }
  return 0;
}

int TokenList(const Flags& flags, std::ostream& out, const Failure& fail) {
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  absl::StatusOr<std::vector<RevokedTokenDetails>> revoked = client->ListRevokedTokens();
  if (!revoked.ok()) {
    return fail(revoked.status());
  }
  out << "ID\tSTATE\tREVOKED AT\tREVOKED BY\n";
  for (const RevokedTokenDetails& token : *revoked) {
    out << token.id << "\trevoked\t"
        << absl::FormatTime(absl::RFC3339_sec, token.revoked_at, absl::UTCTimeZone()) << "\t"
        << token.revoked_by << "\n";
  }
  return 0;
}

CLI::App* AddTokenCommands(CLI::App& app, Flags& flags) {
  CLI::App* token = app.add_subcommand("token", "Machine tokens.");
  token->require_subcommand(1);
  token->footer(ExamplesFooter({
      "discovery token create -n default,default-blackbox ansible-user",
      "discovery token info \"$(cat ansible-user.token)\"",
  }));
  CLI::App* token_create = token->add_subcommand("create", "Create a machine token.");
  token_create->footer(ExamplesFooter({
      "discovery token create -n default,default-blackbox ansible-user",
      "discovery token create -n web -e 720h ci-pipeline   # valid for 30 days",
  }));
  token_create->add_option("id", flags.token_id, "Token id (who or what uses it)")->required();
  config::AddDurationOption(*token_create, "-e,--expires,--expiry", &flags.expiry,
                            "Validity; 0 never expires (--expiry: the earlier name)");
  config::AddListOption(*token_create, "-n,--namespaces", &flags.token_namespaces,
                        "Namespaces the token may change services in")
      ->required();
  CLI::App* token_info = token->add_subcommand("info", "Show what a token grants.");
  token_info->footer(ExamplesFooter({"discovery token info \"$(cat ansible-user.token)\""}));
  token_info->add_option("token", flags.token, "The token")->required();
  CLI::App* token_revoke =
      token->add_subcommand("revoke", "Revoke a machine token by id before it expires (admin).");
  token_revoke->add_option("id", flags.token_id, "Token id")->required();
  token->add_subcommand("list", "List the revoked machine token ids.");
  return token;
}

}  // namespace discovery::cli::discovery_internal
