#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"

#include "testing/status_matchers.h"
#include "testing/store_contract.h"
#include "testing/store_contract_suite.h"

// The store contract on keys: what Get and Put keep of a key, prefix ranges, deletes, and the
// data seen after re-opening or through a second store.
namespace discovery::testing {
namespace {

// ---------------------------------------------------------------------------------------------
// Get / Put bookkeeping

TEST_P(StoreContractTest, GetMissingKeyIsNotFound) {
  EXPECT_THAT(store().Get(Key("missing")), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreContractTest, EmptyKeyIsInvalidArgument) {
  EXPECT_THAT(store().Get(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store::Put(store(), "", "v"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store::Delete(store(), ""), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_P(StoreContractTest, PutCreatesKeyWithRevisionBookkeeping) {
  ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(Key("a"), "one"));
  EXPECT_GT(revision, 0);

  ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("a")));
  EXPECT_EQ(kv, (KeyValue{.key = Key("a"),
                          .value = "one",
                          .create_revision = revision,
                          .mod_revision = revision,
                          .version = 1}));
}

TEST_P(StoreContractTest, UpdateKeepsCreateRevisionAndCountsVersions) {
  ASSERT_OK_AND_ASSIGN(const int64_t created, PutKey(Key("a"), "one"));
  ASSERT_OK_AND_ASSIGN(const int64_t updated, PutKey(Key("a"), "two"));
  // Writing the same value again is still a change (etcd bumps revision and version).
  ASSERT_OK_AND_ASSIGN(const int64_t rewritten, PutKey(Key("a"), "two"));
  EXPECT_GT(updated, created);
  EXPECT_GT(rewritten, updated);

  ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("a")));
  EXPECT_EQ(kv.value, "two");
  EXPECT_EQ(kv.create_revision, created);
  EXPECT_EQ(kv.mod_revision, rewritten);
  EXPECT_EQ(kv.version, 3);
}

TEST_P(StoreContractTest, RecreateAfterDeleteStartsNewLifetime) {
  ASSERT_OK_AND_ASSIGN(const int64_t created, PutKey(Key("a"), "one"));
  ASSERT_THAT(PutKey(Key("a"), "two"), IsOk());
  ASSERT_OK_AND_ASSIGN(const TxnResult deleted, store::Delete(store(), Key("a")));
  EXPECT_TRUE(deleted.succeeded);
  EXPECT_EQ(deleted.deleted, 1);
  EXPECT_THAT(store().Get(Key("a")), StatusIs(absl::StatusCode::kNotFound));

  ASSERT_OK_AND_ASSIGN(const int64_t recreated, PutKey(Key("a"), "three"));
  ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("a")));
  EXPECT_GT(recreated, deleted.revision);
  EXPECT_GT(kv.create_revision, created);
  EXPECT_EQ(kv.create_revision, recreated);
  EXPECT_EQ(kv.version, 1);
  EXPECT_EQ(kv.value, "three");
}

TEST_P(StoreContractTest, BinaryKeysAndValuesRoundTrip) {
  const std::string value("\0\x01\x7f\x80\xff", 5);
  const std::string key = Key(std::string("k\0\xff", 3));
  ASSERT_THAT(PutKey(key, value), IsOk());

  ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(key));
  EXPECT_EQ(kv.key, key);
  EXPECT_EQ(kv.value, value);
  // The embedded NUL must not truncate the key: "k" alone does not exist.
  EXPECT_THAT(store().Get(Key("k")), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreContractTest, EmptyValueIsAValue) {
  ASSERT_THAT(PutKey(Key("empty"), ""), IsOk());
  ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("empty")));
  EXPECT_EQ(kv.value, "");
  EXPECT_EQ(kv.version, 1);
}

// ---------------------------------------------------------------------------------------------
// Range

TEST_P(StoreContractTest, RangeReturnsKeysInByteOrder) {
  for (const char* suffix : {"b", "a/2", "c", "a", "a/10", "a/1", "B"}) {
    ASSERT_THAT(PutKey(Key(suffix), suffix), IsOk());
  }
  EXPECT_THAT(RangeKeys(prefix()),
              IsOkAndHolds(ElementsAre(Key("B"), Key("a"), Key("a/1"), Key("a/10"), Key("a/2"),
                                       Key("b"), Key("c"))));
}

TEST_P(StoreContractTest, RangeCarriesValuesAndBookkeeping) {
  ASSERT_OK_AND_ASSIGN(const int64_t a1, PutKey(Key("a"), "1"));
  ASSERT_OK_AND_ASSIGN(const int64_t a2, PutKey(Key("a"), "2"));
  ASSERT_OK_AND_ASSIGN(const int64_t b1, PutKey(Key("b"), "x"));

  ASSERT_OK_AND_ASSIGN(const RangeResult range, store().Range(prefix()));
  EXPECT_THAT(range.kvs, ElementsAre(KeyValue{.key = Key("a"),
                                              .value = "2",
                                              .create_revision = a1,
                                              .mod_revision = a2,
                                              .version = 2},
                                     KeyValue{.key = Key("b"),
                                              .value = "x",
                                              .create_revision = b1,
                                              .mod_revision = b1,
                                              .version = 1}));
  EXPECT_GE(range.revision, b1);
}

TEST_P(StoreContractTest, RangeOfEmptyPrefixRangeIsEmpty) {
  ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(Key("x"), "1"));
  ASSERT_OK_AND_ASSIGN(const RangeResult range, store().Range(Key("nothing/")));
  EXPECT_THAT(range.kvs, IsEmpty());
  // The revision of an empty read is still the store revision.
  EXPECT_GE(range.revision, revision);
}

TEST_P(StoreContractTest, RangeInBatchesHandsOnWhatRangeReturnsInParts) {
  for (const char* suffix : {"e", "a", "g", "c", "b", "f", "d"}) {
    ASSERT_THAT(PutKey(Key("in/") + suffix, suffix), IsOk());
  }
  ASSERT_THAT(PutKey(Key("out"), "not under the prefix read"), IsOk());
  ASSERT_OK_AND_ASSIGN(const RangeResult range, store().Range(Key("in/")));
  ASSERT_EQ(range.kvs.size(), 7U);

  std::vector<size_t> sizes;
  std::vector<KeyValue> handed_on;
  ASSERT_OK_AND_ASSIGN(const int64_t revision,
                       store().RangeInBatches(Key("in/"), 3, [&](std::vector<KeyValue> batch) {
                         sizes.push_back(batch.size());
                         handed_on.insert(handed_on.end(), batch.begin(), batch.end());
                       }));
  EXPECT_THAT(sizes, ElementsAre(3, 3, 1));
  EXPECT_EQ(handed_on, range.kvs);
  // Not equal: on a shared etcd other tests may commit between the two reads.
  EXPECT_GE(revision, range.revision);

  // A batch as large as the range, or larger, is one batch.
  for (const size_t batch_size : {size_t{7}, size_t{1000}}) {
    sizes.clear();
    ASSERT_THAT(store().RangeInBatches(Key("in/"), batch_size,
                                       [&sizes](const std::vector<KeyValue>& batch) {
                                         sizes.push_back(batch.size());
                                       }),
                IsOk());
    EXPECT_THAT(sizes, ElementsAre(7)) << "batch size " << batch_size;
  }
}

TEST_P(StoreContractTest, RangeInBatchesOfNothingHandsOnNothing) {
  ASSERT_OK_AND_ASSIGN(const int64_t put, PutKey(Key("x"), "1"));
  int batches = 0;
  ASSERT_OK_AND_ASSIGN(
      const int64_t revision,
      store().RangeInBatches(Key("nothing/"), 10,
                             [&batches](const std::vector<KeyValue>&) { ++batches; }));
  EXPECT_EQ(batches, 0);
  EXPECT_GE(revision, put);
}

TEST_P(StoreContractTest, RangeInBatchesOfNoKeysIsInvalidArgument) {
  ASSERT_THAT(PutKey(Key("x"), "1"), IsOk());
  int batches = 0;
  EXPECT_THAT(
      store().RangeInBatches(prefix(), 0, [&batches](const std::vector<KeyValue>&) { ++batches; }),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("batch size")));
  EXPECT_EQ(batches, 0);
}

TEST_P(StoreContractTest, RangePrefixIsABytePrefix) {
  ASSERT_THAT(PutKey(Key("x/ns"), "exact-without-slash"), IsOk());
  ASSERT_THAT(PutKey(Key("x/ns/"), "exact"), IsOk());
  ASSERT_THAT(PutKey(Key("x/ns/a"), "child"), IsOk());
  ASSERT_THAT(PutKey(Key("x/ns/a/b"), "grandchild"), IsOk());
  ASSERT_THAT(PutKey(Key("x/ns-other/a"), "sibling"), IsOk());
  ASSERT_THAT(PutKey(Key("x/ns0"), "sibling"), IsOk());
  ASSERT_THAT(PutKey(Key("x/nr"), "before"), IsOk());

  EXPECT_THAT(RangeKeys(Key("x/ns/")),
              IsOkAndHolds(ElementsAre(Key("x/ns/"), Key("x/ns/a"), Key("x/ns/a/b"))));
  // Without the trailing slash the prefix is a plain byte prefix and includes "x/ns-other/".
  EXPECT_THAT(RangeKeys(Key("x/ns")),
              IsOkAndHolds(ElementsAre(Key("x/ns"), Key("x/ns-other/a"), Key("x/ns/"),
                                       Key("x/ns/a"), Key("x/ns/a/b"), Key("x/ns0"))));
}

TEST_P(StoreContractTest, RangeHandlesHighBytesAndPrefixEnd) {
  // Keys are unsigned byte strings: 0x80 and 0xff sort after ASCII, and a prefix ending in 0xff
  // has no simple "+1" range end.
  const std::string high = Key("\xff");
  const std::string higher = Key("\xff\xff");
  const std::string highest = Key("\xff\xff\x01");
  const std::string mid = Key("\x80");
  const std::string low = Key("\x01");
  const std::string ascii = Key("z");
  for (const std::string& key : {highest, ascii, higher, low, mid, high}) {
    ASSERT_THAT(PutKey(key, "v"), IsOk());
  }
  EXPECT_THAT(RangeKeys(prefix()),
              IsOkAndHolds(ElementsAre(low, ascii, mid, high, higher, highest)));
  EXPECT_THAT(RangeKeys(high), IsOkAndHolds(ElementsAre(high, higher, highest)));
  EXPECT_THAT(RangeKeys(higher), IsOkAndHolds(ElementsAre(higher, highest)));
  EXPECT_THAT(RangeKeys(Key("\x80")), IsOkAndHolds(ElementsAre(mid)));
}

TEST_P(StoreContractTest, RangeIncludesKeysWithEmbeddedNul) {
  const std::string with_nul = Key(std::string("a\0b", 3));
  ASSERT_THAT(PutKey(with_nul, "v"), IsOk());
  ASSERT_THAT(PutKey(Key("a"), "v"), IsOk());
  ASSERT_THAT(PutKey(Key("ab"), "v"), IsOk());
  EXPECT_THAT(RangeKeys(Key("a")), IsOkAndHolds(ElementsAre(Key("a"), with_nul, Key("ab"))));
  EXPECT_THAT(RangeKeys(Key(std::string("a\0", 2))), IsOkAndHolds(ElementsAre(with_nul)));
}

// ---------------------------------------------------------------------------------------------
// Delete

TEST_P(StoreContractTest, DeleteReportsDeletedCount) {
  ASSERT_THAT(PutKey(Key("a"), "1"), IsOk());
  ASSERT_OK_AND_ASSIGN(const TxnResult existing, store::Delete(store(), Key("a")));
  EXPECT_TRUE(existing.succeeded);
  EXPECT_EQ(existing.deleted, 1);
  ASSERT_OK_AND_ASSIGN(const TxnResult missing, store::Delete(store(), Key("a")));
  EXPECT_TRUE(missing.succeeded);
  EXPECT_EQ(missing.deleted, 0);
}

TEST_P(StoreContractTest, DeletePrefixRemovesOnlyThePrefix) {
  for (const char* suffix : {"ns/a", "ns/b", "ns/c/d", "ns-other/a", "nt"}) {
    ASSERT_THAT(PutKey(Key(suffix), "v"), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(const TxnResult result,
                       store().Commit({.ops = {Op::DeletePrefix(Key("ns/"))}}));
  EXPECT_TRUE(result.succeeded);
  EXPECT_EQ(result.deleted, 3);
  EXPECT_THAT(RangeKeys(prefix()), IsOkAndHolds(ElementsAre(Key("ns-other/a"), Key("nt"))));
}

TEST_P(StoreContractTest, DeleteRangeRemovesTheKeysFromItsFirstUpToItsEnd) {
  for (const char* suffix : {"ns/a", "ns/b", "ns/c", "ns/c0", "ns/d", "ns/e"}) {
    ASSERT_THAT(PutKey(Key(suffix), "v"), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(const TxnResult result,
                       store().Commit({.ops = {Op::DeleteRange(Key("ns/b"), Key("ns/d"))}}));
  EXPECT_TRUE(result.succeeded);
  EXPECT_EQ(result.deleted, 3);
  EXPECT_THAT(RangeKeys(prefix()),
              IsOkAndHolds(ElementsAre(Key("ns/a"), Key("ns/d"), Key("ns/e"))));
  // From a key that is not there, to the prefix's end.
  ASSERT_OK_AND_ASSIGN(
      const TxnResult rest,
      store().Commit({.ops = {Op::DeleteRange(Key("ns/a0"), store::PrefixEnd(Key("ns/")))}}));
  EXPECT_EQ(rest.deleted, 2);
  EXPECT_THAT(RangeKeys(prefix()), IsOkAndHolds(ElementsAre(Key("ns/a"))));
}

TEST_P(StoreContractTest, AnEmptyDeleteRangeIsInvalidArgumentAndChangesNothing) {
  ASSERT_THAT(PutKey(Key("a"), "v"), IsOk());
  ASSERT_OK_AND_ASSIGN(const int64_t before, store().CurrentRevision());
  for (const Op& op : {Op::DeleteRange(Key("b"), Key("a")), Op::DeleteRange(Key("a"), Key("a")),
                       Op::DeleteRange(Key("a"), ""), Op::DeleteRange("", Key("b"))}) {
    EXPECT_THAT(store().Commit({.ops = {op, Op::Put(Key("c"), "v")}}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("delete range")))
        << op.key << " " << op.range_end;
  }
  ASSERT_OK_AND_ASSIGN(const int64_t after, store().CurrentRevision());
  EXPECT_EQ(after, before);
  EXPECT_THAT(RangeKeys(prefix()), IsOkAndHolds(ElementsAre(Key("a"))));
}

TEST_P(StoreContractTest, DeletedCountSumsOverOpsOfATxn) {
  for (const char* suffix : {"a/1", "a/2", "b", "c"}) {
    ASSERT_THAT(PutKey(Key(suffix), "v"), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(
      const TxnResult result,
      store().Commit({.ops = {Op::DeletePrefix(Key("a/")), Op::Delete(Key("b")),
                              Op::Delete(Key("missing")), Op::Put(Key("d"), "new")}}));
  EXPECT_TRUE(result.succeeded);
  EXPECT_EQ(result.deleted, 3);
  EXPECT_THAT(RangeKeys(prefix()), IsOkAndHolds(ElementsAre(Key("c"), Key("d"))));
}

// ---------------------------------------------------------------------------------------------
// Re-open and several store objects

TEST_P(StoreContractTest, DataSurvivesReopen) {
  ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(Key("a"), "kept"));
  ASSERT_THAT(ReopenStore(), IsOk());
  ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("a")));
  EXPECT_EQ(kv.value, "kept");
  EXPECT_EQ(kv.mod_revision, revision);
  ASSERT_OK_AND_ASSIGN(const int64_t current, store().CurrentRevision());
  EXPECT_GE(current, revision);
  // Revisions keep increasing after a restart; they are never reused.
  ASSERT_OK_AND_ASSIGN(const int64_t next, PutKey(Key("b"), "new"));
  EXPECT_GT(next, revision);
}

TEST_P(StoreContractTest, SecondStoreSeesCommitsOfTheFirst) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> other, OpenStore());
  ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(Key("a"), "from-first"));
  ASSERT_OK_AND_ASSIGN(const KeyValue kv, other->Get(Key("a")));
  EXPECT_EQ(kv.value, "from-first");
  EXPECT_EQ(kv.mod_revision, revision);
  ASSERT_OK_AND_ASSIGN(const int64_t other_current, other->CurrentRevision());
  EXPECT_GE(other_current, revision);

  ASSERT_OK_AND_ASSIGN(const TxnResult second, store::Put(*other, Key("b"), "from-second"));
  EXPECT_GT(second.revision, revision);
  ASSERT_OK_AND_ASSIGN(const KeyValue back, store().Get(Key("b")));
  EXPECT_EQ(back.mod_revision, second.revision);
}

}  // namespace
}  // namespace discovery::testing
