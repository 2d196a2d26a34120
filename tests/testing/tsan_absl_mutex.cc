// Linked into test executables of ThreadSanitizer builds only (tests/testing/CMakeLists.txt).
// Debian's libabsl is not built with -fsanitize=thread, so TSan cannot see absl::Mutex synchronise
// anything and reports every ABSL_GUARDED_BY access as a race. The executable's definitions below
// take precedence over the shared library's (ELF symbol interposition, which also covers gRPC's own
// absl::Mutex calls): each forwards to the real function and tells TSan about the acquire/release
// edge.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

// TSan's annotation interface; clang declares it itself, g++ does not.
// NOLINTBEGIN(bugprone-reserved-identifier,readability-redundant-declaration)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
// NOLINTEND(bugprone-reserved-identifier,readability-redundant-declaration)

namespace {

template <typename Fn>
Fn Real(const char* mangled) {
  void* symbol = dlsym(RTLD_NEXT, mangled);
  if (symbol == nullptr) {
    (void)std::fprintf(stderr, "tsan_absl_mutex: %s not found in libabsl\n", mangled);
    std::abort();
  }
  return reinterpret_cast<Fn>(symbol);
}

void Acquire(const void* mu) { __tsan_acquire(const_cast<void*>(mu)); }
void Release(const void* mu) { __tsan_release(const_cast<void*>(mu)); }

// absl::Mutex evaluates a waiter's Condition inside libabsl: on the waiting thread before it
// sleeps and on whichever thread unlocks later, always while holding the mutex, and it passes the
// mutex between those threads through its own atomics. TSan sees none of that: neither the
// waiter's writes of the Condition before it waits, nor the evaluating thread's reads before the
// waiter returns and reuses that stack for its next Condition, nor that an evaluation runs inside
// a critical section. A TracedCondition hands absl a Condition of its own whose evaluation
// states both edges: the waiter publishes its Condition on the TracedCondition's address before
// it waits, and every evaluation acquires that address and the mutex and releases the mutex when
// done, which the waiter acquires once absl returns.
class TracedCondition {
 public:
  TracedCondition(const absl::Mutex* mu, const absl::Condition& waiter_condition)
      : mu_(mu), waiter_condition_(waiter_condition) {
    Release(this);
  }
  TracedCondition(const TracedCondition&) = delete;
  TracedCondition& operator=(const TracedCondition&) = delete;
  TracedCondition(TracedCondition&&) = delete;
  TracedCondition& operator=(TracedCondition&&) = delete;
  ~TracedCondition() = default;

  // The non-template constructor is compiled into libabsl, so absl's reads of this Condition are
  // its own and only Evaluate below runs instrumented.
  absl::Condition condition() { return {&Evaluate, this}; }

 private:
  static bool Evaluate(void* self) {
    Acquire(self);
    const auto* traced = static_cast<const TracedCondition*>(self);
    Acquire(traced->mu_);
    const bool result = traced->waiter_condition_.Eval();
    Release(traced->mu_);
    return result;
  }

  const absl::Mutex* mu_;
  const absl::Condition& waiter_condition_;
};

}  // namespace

// Makes every TSan test executable load the project's suppressions (tests/tsan.supp) without
// anyone having to set TSAN_OPTIONS; a TSAN_OPTIONS from the environment still applies on top.
// NOLINTNEXTLINE(bugprone-reserved-identifier,readability-identifier-naming): TSan's hook
extern "C" const char* __tsan_default_options() {
  return "suppressions=" DISCOVERY_TSAN_SUPPRESSIONS;
}

// The mangled names are those of absl 20220623 as Debian 12 ships it (inline namespace debian3).
namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  static auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35Mutex4LockEv");
  real(this);
  Acquire(this);
}

void Mutex::Unlock() {
  static auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35Mutex6UnlockEv");
  Release(this);
  real(this);
}

bool Mutex::TryLock() {
  static auto real = Real<bool (*)(Mutex*)>("_ZN4absl7debian35Mutex7TryLockEv");
  const bool locked = real(this);
  if (locked) {
    Acquire(this);
  }
  return locked;
}

void Mutex::ReaderLock() {
  static auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35Mutex10ReaderLockEv");
  real(this);
  Acquire(this);
}

void Mutex::ReaderUnlock() {
  static auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35Mutex12ReaderUnlockEv");
  Release(this);
  real(this);
}

bool Mutex::ReaderTryLock() {
  static auto real = Real<bool (*)(Mutex*)>("_ZN4absl7debian35Mutex13ReaderTryLockEv");
  const bool locked = real(this);
  if (locked) {
    Acquire(this);
  }
  return locked;
}

void Mutex::LockWhen(const Condition& cond) {
  static auto real =
      Real<void (*)(Mutex*, const Condition&)>("_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  TracedCondition traced(this, cond);
  real(this, traced.condition());
  Acquire(this);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  TracedCondition traced(this, cond);
  real(this, traced.condition());
  Acquire(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  TracedCondition traced(this, cond);
  const bool result = real(this, traced.condition(), timeout);
  Acquire(this);
  return result;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, absl::Time)>(
      "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  TracedCondition traced(this, cond);
  const bool result = real(this, traced.condition(), deadline);
  Acquire(this);
  return result;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      "_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  TracedCondition traced(this, cond);
  const bool result = real(this, traced.condition(), timeout);
  Acquire(this);
  return result;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, absl::Time)>(
      "_ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  TracedCondition traced(this, cond);
  const bool result = real(this, traced.condition(), deadline);
  Acquire(this);
  return result;
}

void Mutex::Await(const Condition& cond) {
  static auto real =
      Real<void (*)(Mutex*, const Condition&)>("_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  Release(this);
  TracedCondition traced(this, cond);
  real(this, traced.condition());
  Acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Release(this);
  TracedCondition traced(this, cond);
  const bool result = real(this, traced.condition(), timeout);
  Acquire(this);
  return result;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, absl::Time)>(
      "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Release(this);
  TracedCondition traced(this, cond);
  const bool result = real(this, traced.condition(), deadline);
  Acquire(this);
  return result;
}

void CondVar::Wait(Mutex* mu) {
  static auto real = Real<void (*)(CondVar*, Mutex*)>("_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  Release(mu);
  real(this, mu);
  Acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  static auto real = Real<bool (*)(CondVar*, Mutex*, absl::Duration)>(
      "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  Release(mu);
  const bool result = real(this, mu, timeout);
  Acquire(mu);
  return result;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  static auto real = Real<bool (*)(CondVar*, Mutex*, absl::Time)>(
      "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Release(mu);
  const bool result = real(this, mu, deadline);
  Acquire(mu);
  return result;
}

ABSL_NAMESPACE_END
}  // namespace absl
