// gmock matchers for absl::Status / StatusOr (abseil 20220623 ships none).
#pragma once

#include <ostream>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace discovery::testing {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& status = GetStatus(arg);
  if (!status.ok()) {
    *result_listener << "status is " << status;
  }
  return status.ok();
}

MATCHER_P(StatusIs, code, "has status code " + ::testing::PrintToString(code)) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string{status.message()},
                                       result_listener);
}

MATCHER_P(IsOkAndHolds, value_matcher, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(value_matcher, *arg, result_listener);
}

}  // namespace discovery::testing

// ASSERT_OK_AND_ASSIGN(lhs, rexpr): evaluates `rexpr` (an absl::StatusOr), fails the test unless
// it is OK, and moves its value into `lhs` (a declaration or an existing variable).
#define DISCOVERY_TESTING_CONCAT_INNER(a, b) a##b
#define DISCOVERY_TESTING_CONCAT(a, b) DISCOVERY_TESTING_CONCAT_INNER(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  DISCOVERY_ASSERT_OK_AND_ASSIGN_IMPL(DISCOVERY_TESTING_CONCAT(statusor_, __LINE__), lhs, rexpr)
#define DISCOVERY_ASSERT_OK_AND_ASSIGN_IMPL(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                        \
  ASSERT_THAT(statusor, ::discovery::testing::IsOk());            \
  lhs = *std::move(statusor)
