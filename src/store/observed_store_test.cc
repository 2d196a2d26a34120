#include "store/observed_store.h"

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "testing/status_matchers.h"

namespace discovery::store {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

// A store whose every operation answers `answer_`: an error, or a fixed success.
class AnsweringStore : public Store {
 public:
  void Fail(absl::Status error) { answer_ = std::move(error); }

  absl::StatusOr<KeyValue> Get(std::string_view key) override {
    if (!answer_.ok()) {
      return answer_;
    }
    return KeyValue{.key = std::string(key), .value = "v", .mod_revision = 1};
  }
  absl::StatusOr<RangeResult> Range(std::string_view /*prefix*/) override {
    if (!answer_.ok()) {
      return answer_;
    }
    return RangeResult{.kvs = {{.key = "k", .value = "v"}}, .revision = 1};
  }
  absl::StatusOr<TxnResult> Commit(const Txn& /*txn*/) override {
    if (!answer_.ok()) {
      return answer_;
    }
    return TxnResult{.succeeded = false, .revision = 1};
  }
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(std::string_view /*prefix*/,
                                                     int64_t /*start_revision*/,
                                                     WatchCallback /*callback*/) override {
    if (!answer_.ok()) {
      return answer_;
    }
    return std::make_unique<WatchHandle>();
  }
  absl::StatusOr<int64_t> CurrentRevision() override {
    if (!answer_.ok()) {
      return answer_;
    }
    return 1;
  }

 private:
  absl::Status answer_;
};

class ObservedStoreTest : public ::testing::Test {
 protected:
  ObservedStoreTest() {
    auto inner = std::make_unique<AnsweringStore>();
    inner_ = inner.get();
    store_ = std::make_unique<ObservedStore>(
        std::move(inner), [this](std::string_view op, const absl::Status& error) {
          reported_.emplace_back(std::string(op), error.code());
        });
  }

  // Runs every operation once.
  void RunEveryOperation() {
    (void)store_->Get("k");
    (void)store_->Range("");
    (void)store_->RangeInBatches("", 10, [](const std::vector<KeyValue>&) {});
    (void)store_->Commit({});
    store_->CommitAsync({}, [](const absl::StatusOr<TxnResult>&) {});
    (void)store_->Watch("", 0, [](const WatchResponse&) {});
    (void)store_->CurrentRevision();
    (void)store_->Renew({.keys = {{.key = "k"}}});
    (void)store_->Deadlines({{.key = "k"}});
  }

  AnsweringStore* inner_ = nullptr;
  std::unique_ptr<ObservedStore> store_;
  std::vector<std::pair<std::string, absl::StatusCode>> reported_;
};

TEST_F(ObservedStoreTest, ReportsEveryFailedOperationByName) {
  inner_->Fail(absl::UnavailableError("etcd is gone"));
  RunEveryOperation();
  constexpr absl::StatusCode kUnavailable = absl::StatusCode::kUnavailable;
  // Renew's default commits; Deadlines' default is a failure of its own.
  EXPECT_THAT(reported_, ElementsAre(Pair("get", kUnavailable), Pair("range", kUnavailable),
                                     Pair("range", kUnavailable), Pair("commit", kUnavailable),
                                     Pair("commit", kUnavailable), Pair("watch", kUnavailable),
                                     Pair("revision", kUnavailable), Pair("renew", kUnavailable),
                                     Pair("deadlines", absl::StatusCode::kUnimplemented)));
}

TEST_F(ObservedStoreTest, PassesAnswersThroughWithoutReportingThem) {
  RunEveryOperation();
  // Only the inner store's own missing Deadlines is a failure.
  EXPECT_THAT(reported_, ElementsAre(Pair("deadlines", absl::StatusCode::kUnimplemented)));
  reported_.clear();

  ASSERT_OK_AND_ASSIGN(const KeyValue kv, store_->Get("k"));
  EXPECT_EQ(kv.value, "v");
  ASSERT_OK_AND_ASSIGN(const TxnResult failed_compare, store_->Commit({}));
  EXPECT_FALSE(failed_compare.succeeded);
  absl::StatusOr<TxnResult> async;
  store_->CommitAsync({},
                      [&async](absl::StatusOr<TxnResult> result) { async = std::move(result); });
  EXPECT_THAT(async, IsOk());
  EXPECT_THAT(reported_, IsEmpty());
}

TEST_F(ObservedStoreTest, AMissingKeyIsAnAnswerNotAFailure) {
  inner_->Fail(absl::NotFoundError("key not found: k"));
  EXPECT_THAT(store_->Get("k"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(reported_, IsEmpty());
  // Elsewhere NotFound is no answer the contract gives, so it is reported.
  EXPECT_THAT(store_->CurrentRevision(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(reported_, ElementsAre(Pair("revision", absl::StatusCode::kNotFound)));
}

TEST_F(ObservedStoreTest, TheCommitCallbackGetsTheInnerStoresAnswer) {
  inner_->Fail(absl::DeadlineExceededError("slow"));
  absl::StatusOr<TxnResult> async;
  store_->CommitAsync({},
                      [&async](absl::StatusOr<TxnResult> result) { async = std::move(result); });
  EXPECT_THAT(async, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(reported_, ElementsAre(Pair("commit", absl::StatusCode::kDeadlineExceeded)));
}

}  // namespace
}  // namespace discovery::store
