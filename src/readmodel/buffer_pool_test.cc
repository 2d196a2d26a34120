#include "readmodel/buffer_pool.h"

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace discovery::readmodel {
namespace {

constexpr size_t kMin = 1024;

std::string Filled(size_t capacity, char c) {
  std::string buffer;
  buffer.reserve(capacity);
  buffer.assign(capacity / 2, c);
  return buffer;
}

TEST(BufferPoolTest, AReleasedAnswersStorageServesTheNextOneEmpty) {
  auto pool = std::make_shared<BufferPool>(kMin, 1 << 20);
  std::string first = pool->Take(4000);
  EXPECT_TRUE(first.empty());
  EXPECT_GE(first.capacity(), 4000U);
  first.assign(4000, 'x');
  std::shared_ptr<const std::string> shared = pool->Share(std::move(first));
  const char* storage = shared->data();
  EXPECT_EQ(pool->KeptBytes(), 0U);  // still held
  shared.reset();
  EXPECT_GE(pool->KeptBytes(), 4000U);

  std::string next = pool->Take(3900);
  EXPECT_EQ(next.data(), storage);
  EXPECT_TRUE(next.empty());
  EXPECT_EQ(pool->KeptBytes(), 0U);
}

TEST(BufferPoolTest, AKeptBufferTooSmallForTheAnswerStaysKept) {
  auto pool = std::make_shared<BufferPool>(kMin, 1 << 20);
  pool->Share(Filled(2048, 'a')).reset();
  const size_t kept = pool->KeptBytes();
  ASSERT_EQ(kept, 2048U);
  std::string larger = pool->Take(4096);
  EXPECT_GE(larger.capacity(), 4096U);
  EXPECT_EQ(pool->KeptBytes(), kept);
}

// A small answer holding a large answer's buffer would waste it for as long as it lives.
TEST(BufferPoolTest, ABufferFarLargerThanTheAnswerStaysKept) {
  auto pool = std::make_shared<BufferPool>(kMin, 1 << 20);
  pool->Share(Filled(16384, 'a')).reset();
  EXPECT_LT(pool->Take(4096).capacity(), 16384U);
  EXPECT_EQ(pool->KeptBytes(), 16384U);
  EXPECT_EQ(pool->Take(10923).capacity(), 16384U);  // at most half as large again
  EXPECT_EQ(pool->KeptBytes(), 0U);
}

TEST(BufferPoolTest, TheSmallestBufferThatFitsIsTaken) {
  auto pool = std::make_shared<BufferPool>(kMin, 1 << 20);
  pool->Share(Filled(8192, 'a')).reset();
  pool->Share(Filled(2048, 'b')).reset();
  pool->Share(Filled(4096, 'c')).reset();
  EXPECT_EQ(pool->Take(3000).capacity(), 4096U);
  EXPECT_EQ(pool->Take(6000).capacity(), 8192U);
  EXPECT_EQ(pool->KeptBytes(), 2048U);
}

TEST(BufferPoolTest, SmallAnswersAreNotKept) {
  auto pool = std::make_shared<BufferPool>(kMin, 1 << 20);
  std::shared_ptr<const std::string> small = pool->Share(std::string(100, 'x'));
  EXPECT_EQ(*small, std::string(100, 'x'));
  small.reset();
  EXPECT_EQ(pool->KeptBytes(), 0U);
  EXPECT_LT(pool->Take(100).capacity(), kMin);
}

TEST(BufferPoolTest, KeepsAtMostItsBoundPreferringTheLargest) {
  auto pool = std::make_shared<BufferPool>(kMin, 10240);
  pool->Share(Filled(4096, 'a')).reset();
  pool->Share(Filled(4096, 'b')).reset();
  EXPECT_EQ(pool->KeptBytes(), 8192U);
  // Room is made by letting the smaller ones go.
  pool->Share(Filled(8192, 'c')).reset();
  EXPECT_EQ(pool->KeptBytes(), 8192U);
  pool->Share(Filled(2048, 'd')).reset();
  EXPECT_EQ(pool->KeptBytes(), 10240U);
  // Letting the 2,048 go would not make room: the new one goes instead, and the 2,048 stays.
  pool->Share(Filled(4096, 'e')).reset();
  EXPECT_EQ(pool->KeptBytes(), 10240U);
  // Larger than the bound: never kept, and nothing is let go for it.
  pool->Share(Filled(16384, 'f')).reset();
  EXPECT_EQ(pool->KeptBytes(), 10240U);
  EXPECT_EQ(pool->Take(8000).capacity(), 8192U);
  EXPECT_EQ(pool->KeptBytes(), 2048U);
}

TEST(BufferPoolTest, AnAnswerMayOutliveItsPool) {
  auto pool = std::make_shared<BufferPool>(kMin, 1 << 20);
  std::shared_ptr<const std::string> answer = pool->Share(Filled(4096, 'a'));
  pool.reset();
  EXPECT_EQ(*answer, std::string(2048, 'a'));
  answer.reset();  // freed, not kept: nothing to keep it in (ASan checks)
}

TEST(BufferPoolTest, ThreadsTakeAndReleaseAtOnce) {
  auto pool = std::make_shared<BufferPool>(kMin, 64 * 1024);
  constexpr int kThreads = 4;
  std::vector<std::jthread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&pool, t] {
      for (int i = 0; i < 500; ++i) {
        std::string buffer = pool->Take(2000 + 100 * t);
        EXPECT_TRUE(buffer.empty());
        buffer.assign(2000 + 100 * t, static_cast<char>('a' + t));
        std::shared_ptr<const std::string> shared = pool->Share(std::move(buffer));
        EXPECT_EQ(*shared, std::string(2000 + 100 * t, static_cast<char>('a' + t)));
      }
    });
  }
  threads.clear();
  EXPECT_LE(pool->KeptBytes(), 64U * 1024);
  EXPECT_GT(pool->KeptBytes(), 0U);
}

}  // namespace
}  // namespace discovery::readmodel
