// Propagation helpers for absl::Status / absl::StatusOr, which abseil 20220623 does not ship.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DISCOVERY_STATUS_CONCAT_INNER(a, b) a##b
#define DISCOVERY_STATUS_CONCAT(a, b) DISCOVERY_STATUS_CONCAT_INNER(a, b)

// Returns the status of `expr` from the enclosing function when it is not OK.
#define DISCOVERY_RETURN_IF_ERROR(expr)             \
  do {                                              \
    const absl::Status& discovery_status_ = (expr); \
    if (!discovery_status_.ok()) {                  \
      return discovery_status_;                     \
    }                                               \
  } while (false)

// Evaluates `rexpr` (a StatusOr); on error returns its status, else moves the value into `lhs`.
#define DISCOVERY_ASSIGN_OR_RETURN(lhs, rexpr)                                                 \
  DISCOVERY_ASSIGN_OR_RETURN_IMPL(DISCOVERY_STATUS_CONCAT(discovery_statusor_, __LINE__), lhs, \
                                  rexpr)

// `statusor` names a variable and `lhs` may be a declaration, so neither can be parenthesised.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define DISCOVERY_ASSIGN_OR_RETURN_IMPL(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                    \
  if (!statusor.ok()) {                                       \
    return std::move(statusor).status();                      \
  }                                                           \
  lhs = *std::move(statusor)
// NOLINTEND(bugprone-macro-parentheses)
