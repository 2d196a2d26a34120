// Waiting in tests for something that happens in another thread or process, without sleeping a
// guessed time: the condition is polled until it holds.
#pragma once

#include <functional>

#include "absl/time/time.h"

namespace discovery::testing {

// Polls `condition` (every 20 ms) until it holds or `timeout` passes; returns whether it held.
// The timeout only bounds a failing test: a passing one returns as soon as the condition holds.
bool Eventually(const std::function<bool()>& condition, absl::Duration timeout);

}  // namespace discovery::testing
