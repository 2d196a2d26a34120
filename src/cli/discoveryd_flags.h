// The flags of `discoveryd` and what they fill: one Flags struct the command tree binds, and the
// flag sets of its commands. Internal to src/cli (discoveryd.cc).
#pragma once

#include <string>
#include <vector>

#include "CLI/CLI.hpp"

#include "server/exporter_daemon.h"
#include "server/server_config.h"

namespace discovery::cli::discoveryd_internal {

struct Flags {
  server::ServerConfig config;
  std::string store_kind;
  std::string data_dir;
  std::vector<std::string> etcd_endpoints = {"localhost:2379"};
  bool debug = false;
  std::string log_format = "auto";
  // server
  int replicas = 1;
  std::string placement = "rendezvous";
  std::string tls_cert;
  std::string tls_key;
  std::string oidc_endpoint;
  std::string oidc_client_id;
  std::string oidc_ui_client_id;
  std::string oidc_username_claim = "username";
  std::string oidc_roles_claim = "roles";
  std::string ca_cert;
  // exporter
  server::ExporterConfig exporter;
  // token create
  std::string token_id;
  std::vector<std::string> token_namespaces;
  std::string token_expires;
  bool token_admin = false;
  // token verify
  std::string token_to_verify;
};

// Flags shared by every subcommand: where the store is and how to log.
void AddGlobalFlags(CLI::App& app, Flags& flags);
// Token flags exist on `server` and `token create`: both must agree on issuer and secret.
void AddTokenFlags(CLI::App& command, Flags& flags);
// `server`: listeners, TLS, placement, OIDC, the token flags and the listeners' limits.
void AddServerFlags(CLI::App& command, Flags& flags);
// `exporter`: which server's targets go to which directory, and its own HTTP listener.
void AddExporterFlags(CLI::App& command, Flags& flags);

}  // namespace discovery::cli::discoveryd_internal
