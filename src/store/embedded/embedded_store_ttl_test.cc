// Renewals in place on the embedded store (Store::Renew): no revision and no log row, and the
// reaper honours the renewed expiry, also when it runs in another process on the same file.
#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "store/embedded/embedded_store.h"
#include "testing/sqlite_files.h"
#include "testing/status_matchers.h"

namespace discovery::store {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::IsOkAndHolds;
using ::discovery::testing::StatusIs;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

class EmbeddedRenewalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::path(::testing::TempDir()) /
             (std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
              ".renewal.db"))
                .string();
    ::discovery::testing::RemoveSqliteDatabase(path_);
    absl::StatusOr<std::unique_ptr<Store>> store = Open();
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
  }

  // Every store of the test is closed by now; the file would otherwise outlive the run.
  void TearDown() override {
    store_.reset();
    ::discovery::testing::RemoveSqliteDatabase(path_);
  }

  // Reaped by hand, at the time the test says.
  absl::StatusOr<std::unique_ptr<Store>> Open() const {
    return OpenEmbeddedStore({.path = path_,
                              .poll_interval = absl::Milliseconds(20),
                              .reap_interval = absl::ZeroDuration()});
  }

  // Rows of the watch log, read with a connection of its own.
  int64_t LogRows() const {
    sqlite3* db = nullptr;
    int64_t rows = -1;
    if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM events", -1, &stmt, nullptr) == SQLITE_OK &&
          sqlite3_step(stmt) == SQLITE_ROW) {
        rows = sqlite3_column_int64(stmt, 0);
      }
      sqlite3_finalize(stmt);
    }
    sqlite3_close(db);
    return rows;
  }

  static Renewal RenewalAt(absl::Time now, const KeyValue& kv, std::string value) {
    return {.keys = {{.key = kv.key,
                      .mod_revision = kv.mod_revision,
                      .lease = kv.lease,
                      .value = std::move(value)}},
            .ttl = absl::Seconds(30),
            .expires = now + absl::Seconds(30)};
  }

  std::string path_;
  std::unique_ptr<Store> store_;
  const absl::Time t0_ = absl::FromUnixSeconds(1'700'000'000);
};

TEST_F(EmbeddedRenewalTest, ARenewalRewritesTheRecordInPlaceWithoutALogRow) {
  ASSERT_THAT(store_->Commit({.ops = {Op::PutExpiring("/k", "v1", t0_ + absl::Seconds(30))}}),
              IsOk());
  ASSERT_OK_AND_ASSIGN(const KeyValue kv, store_->Get("/k"));
  ASSERT_OK_AND_ASSIGN(const int64_t revision, store_->CurrentRevision());
  const int64_t rows = LogRows();
  ASSERT_OK_AND_ASSIGN(const RenewResult renewed,
                       store_->Renew(RenewalAt(t0_ + absl::Seconds(20), kv, "v2")));
  EXPECT_TRUE(renewed.succeeded);
  EXPECT_EQ(renewed.revision, 0);
  EXPECT_THAT(renewed.gone, IsEmpty());
  EXPECT_EQ(LogRows(), rows);
  ASSERT_OK_AND_ASSIGN(const int64_t after, store_->CurrentRevision());
  EXPECT_EQ(after, revision);
  ASSERT_OK_AND_ASSIGN(const KeyValue renewed_kv, store_->Get("/k"));
  EXPECT_EQ(renewed_kv.value, "v2");
  EXPECT_EQ(renewed_kv.mod_revision, kv.mod_revision);
  ASSERT_OK_AND_ASSIGN(const auto deadlines,
                       store_->Deadlines({{.key = "/k"}, {.key = "/missing"}}));
  EXPECT_EQ(deadlines,
            (std::vector<std::optional<absl::Time>>{t0_ + absl::Seconds(50), std::nullopt}));
}

TEST_F(EmbeddedRenewalTest, TheReaperOfAnotherProcessKeepsARenewedKeyUntilItsNewDeadline) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> other, Open());
  absl::Mutex mu;
  std::vector<WatchEvent> seen;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                       other->Watch("/", 0, [&](const WatchResponse& response) {
                         absl::MutexLock lock(&mu);
                         seen.insert(seen.end(), response.events.begin(), response.events.end());
                       }));
  ASSERT_THAT(store_->Commit({.ops = {Op::PutExpiring("/k", "v", t0_ + absl::Seconds(30))}}),
              IsOk());
  ASSERT_OK_AND_ASSIGN(const KeyValue kv, store_->Get("/k"));
  ASSERT_THAT(store_->Renew(RenewalAt(t0_ + absl::Seconds(20), kv, "v")), IsOk());
  // Past the deadline the record was put with, before the renewed one.
  EXPECT_THAT(ReapEmbeddedStore(*other, t0_ + absl::Seconds(40)), IsOkAndHolds(0));
  EXPECT_THAT(store_->Get("/k"), IsOk());
  EXPECT_THAT(ReapEmbeddedStore(*other, t0_ + absl::Seconds(50)), IsOkAndHolds(1));
  EXPECT_THAT(store_->Get("/k"), StatusIs(absl::StatusCode::kNotFound));
  // The watch saw the put and the reaper's delete, marked as an expiry; no renewal.
  const std::vector<WatchEvent> events = [&] {
    absl::MutexLock lock(&mu);
    mu.AwaitWithTimeout(absl::Condition(
                            +[](std::vector<WatchEvent>* all) { return all->size() >= 2; }, &seen),
                        absl::Seconds(10));
    return seen;
  }();
  ASSERT_EQ(events.size(), 2U);
  EXPECT_EQ(events[1].type, WatchEvent::Type::kDelete);
  EXPECT_TRUE(events[1].expired);
}

TEST_F(EmbeddedRenewalTest, AKeyPastItsDeadlineIsGoneAndNotRenewed) {
  ASSERT_THAT(store_->Commit({.ops = {Op::PutExpiring("/late", "v", t0_ + absl::Seconds(30)),
                                      Op::PutExpiring("/live", "v", t0_ + absl::Seconds(60))}}),
              IsOk());
  ASSERT_OK_AND_ASSIGN(const KeyValue late, store_->Get("/late"));
  ASSERT_OK_AND_ASSIGN(const KeyValue live, store_->Get("/live"));
  Renewal renewal = RenewalAt(t0_ + absl::Seconds(45), late, "v");
  renewal.keys.push_back(RenewalAt(t0_, live, "v").keys[0]);
  ASSERT_OK_AND_ASSIGN(const RenewResult result, store_->Renew(renewal));
  EXPECT_TRUE(result.succeeded);
  EXPECT_EQ(result.gone, std::vector<std::string>{"/late"});
  EXPECT_THAT(ReapEmbeddedStore(*store_, t0_ + absl::Seconds(70)), IsOkAndHolds(1));
  EXPECT_THAT(store_->Get("/late"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Get("/live"), IsOk());
}

// A round of the reaper that fails (here: another connection holds the write lock past the busy
// timeout) reaches on_background_error, which the daemons count in
// discovery_store_errors_total{op="reap"}, and the key goes in a later round.
TEST_F(EmbeddedRenewalTest, AFailedReapIsReportedAndTriedAgain) {
  store_.reset();
  absl::Mutex mu;
  std::vector<std::string> reported;
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Store> store,
      OpenEmbeddedStore(
          {.path = path_,
           .busy_timeout = absl::Milliseconds(50),
           .reap_interval = absl::Milliseconds(20),
           .on_background_error = [&](std::string_view op, const absl::Status& error) {
             absl::MutexLock lock(&mu);
             reported.push_back(std::string(op) + ": " + std::string(error.message()));
           }}));
  ASSERT_THAT(
      store->Commit({.ops = {Op::PutExpiring("/late", "v", absl::Now() + absl::Seconds(1))}}),
      IsOk());
  sqlite3* holder = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &holder, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(holder, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  {
    absl::MutexLock lock(&mu);
    const auto any_reported = [&reported] { return !reported.empty(); };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&any_reported), absl::Seconds(30)));
    ASSERT_THAT(reported, Not(IsEmpty()));
    EXPECT_THAT(reported.front(), StartsWith("reap: "));
  }
  EXPECT_THAT(store->Get("/late"), IsOk());
  sqlite3_exec(holder, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(holder);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (store->Get("/late").ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_THAT(store->Get("/late"), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace discovery::store
