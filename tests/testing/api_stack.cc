#include "testing/api_stack.h"

#include <utility>

#include "common/status_macros.h"
#include "repo/repo.h"
#include "store/embedded/embedded_store.h"

namespace discovery::testing {

absl::StatusOr<std::unique_ptr<ApiStack>> ApiStack::Create(ApiStackOptions options) {
  std::unique_ptr<ApiStack> stack(new ApiStack(options.admin_roles));
  DISCOVERY_ASSIGN_OR_RETURN(stack->store_, store::OpenEmbeddedStore({}));
  stack->registry_ = std::make_unique<registry::Registry>(*stack->store_, repo::Keys(),
                                                          registry::RegistryOptions{});
  DISCOVERY_RETURN_IF_ERROR(stack->registry_->Initialize(options.initialize_timeout));
  stack->handlers_ = std::make_unique<api::Handlers>(*stack->registry_, stack->authorizer_,
                                                     std::move(options.handlers));
  return stack;
}

ApiStack::~ApiStack() = default;

}  // namespace discovery::testing
