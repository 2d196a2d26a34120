// The in-process stack that API-level unit tests drive: an in-memory embedded store, a Registry
// over it (initialized, so its view is loaded), and the API Handlers with their Authorizer.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "api/handlers.h"
#include "auth/authorizer.h"
#include "registry/registry.h"
#include "store/store.h"

namespace discovery::testing {

struct ApiStackOptions {
  // Roles the Authorizer treats as admin; empty: only admin machine tokens administer.
  std::vector<std::string> admin_roles;
  api::HandlerOptions handlers;
  // How long Registry::Initialize may take.
  absl::Duration initialize_timeout = absl::Seconds(10);
};

class ApiStack {
 public:
  // Opens the store, starts the registry and waits until it is initialized.
  static absl::StatusOr<std::unique_ptr<ApiStack>> Create(ApiStackOptions options = {});

  ApiStack(const ApiStack&) = delete;
  ApiStack& operator=(const ApiStack&) = delete;
  ApiStack(ApiStack&&) = delete;
  ApiStack& operator=(ApiStack&&) = delete;
  ~ApiStack();

  store::Store& store() { return *store_; }
  registry::Registry& registry() { return *registry_; }
  const auth::Authorizer& authorizer() const { return authorizer_; }
  api::Handlers& handlers() { return *handlers_; }

 private:
  explicit ApiStack(const std::vector<std::string>& admin_roles) : authorizer_(admin_roles) {}

  // Declared in construction order; destroyed in reverse, the handlers first.
  auth::Authorizer authorizer_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<registry::Registry> registry_;
  std::unique_ptr<api::Handlers> handlers_;
};

}  // namespace discovery::testing
