// NodePool (label unit): size classes, live counters, thread caches drained at thread exit,
// and the AddressSanitizer bypass (double release reported).
#include "reactor/node_pool.h"

#include <thread>
#include <vector>

#include "harness/testing/fault_test.h"

namespace faultloop {
namespace {

using faultloop::testing::FaultTest;

class NodePoolClassTest : public FaultTest {};
class NodePoolCounterTest : public FaultTest {};
class NodePoolCacheTest : public FaultTest {};
using NodePoolDeathTest = NodePoolCounterTest;

TEST_F(NodePoolClassTest, SizesRoundUpToPowerOfTwoClasses) {
  EXPECT_EQ(NodePool::class_capacity(0), 64u);
  EXPECT_EQ(NodePool::class_capacity(1), 64u);
  EXPECT_EQ(NodePool::class_capacity(64), 64u);
  EXPECT_EQ(NodePool::class_capacity(65), 128u);
  EXPECT_EQ(NodePool::class_capacity(4096), 4096u);
  EXPECT_EQ(NodePool::class_capacity(4097), 8192u);
  EXPECT_EQ(NodePool::class_capacity(NodePool::kMaxClassBytes), NodePool::kMaxClassBytes);
  EXPECT_EQ(NodePool::class_capacity(NodePool::kMaxClassBytes + 1), NodePool::kMaxClassBytes + 1);
}

TEST_F(NodePoolClassTest, AllocateReportsTheClassCapacity) {
  NodePool& pool = NodePool::instance();
  size_t size = 1000;
  void* p = pool.allocate(size);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(size, 1024u);
  static_cast<char*>(p)[size - 1] = 'x';  // the whole capacity is usable
  pool.deallocate(p, size);
}

TEST_F(NodePoolCounterTest, AllocateCountsAndDeallocateGivesBack) {
  NodePool& pool = NodePool::instance();
  const int64_t nodes = pool.nodes_live();
  const int64_t bytes = pool.bytes_live();
  size_t a = 100;
  size_t b = 5000;
  void* pa = pool.allocate(a);
  void* pb = pool.allocate(b);
  EXPECT_EQ(pool.nodes_live(), nodes + 2);
  EXPECT_EQ(pool.bytes_live(), bytes + 128 + 8192);
  pool.deallocate(pa, a);
  EXPECT_EQ(pool.nodes_live(), nodes + 1);
  pool.deallocate(pb, b);
  EXPECT_EQ(pool.nodes_live(), nodes);
  EXPECT_EQ(pool.bytes_live(), bytes);
}

TEST_F(NodePoolCounterTest, LargeBlocksBypassClassesButCount) {
  NodePool& pool = NodePool::instance();
  const int64_t bytes = pool.bytes_live();
  size_t size = NodePool::kMaxClassBytes + 12345;
  void* p = pool.allocate(size);
  EXPECT_EQ(size, NodePool::kMaxClassBytes + 12345);
  EXPECT_EQ(pool.bytes_live(), bytes + static_cast<int64_t>(size));
  pool.deallocate(p, size);
  EXPECT_EQ(pool.bytes_live(), bytes);
}

TEST_F(NodePoolCounterTest, CrossThreadAllocateAndFreeKeepCountersExact) {
  NodePool& pool = NodePool::instance();
  const int64_t nodes = pool.nodes_live();
  // Thread A allocates, thread B frees (as a slice released on another thread does), while
  // both also churn their own caches.
  std::vector<std::pair<void*, size_t>> handoff;
  std::thread producer([&] {
    for (size_t i = 0; i < 2000; ++i) {
      size_t size = 100u << (i % 10);
      void* p = pool.allocate(size);  // rounds `size` up to its class
      handoff.emplace_back(p, size);
      size_t own = 100 + i;
      void* q = pool.allocate(own);
      pool.deallocate(q, own);
    }
  });
  producer.join();
  std::thread consumer([&] {
    for (auto& [p, size] : handoff) {
      pool.deallocate(p, size);
    }
  });
  consumer.join();
  EXPECT_EQ(pool.nodes_live(), nodes);
}

TEST_F(NodePoolCacheTest, FreedBlockIsReusedBySameThread) {
  if constexpr (NodePool::kBypassCaches) {
    GTEST_SKIP() << "AddressSanitizer build: the pool has no caches";
  }
  NodePool& pool = NodePool::instance();
  size_t size = 300;
  void* p = pool.allocate(size);
  pool.deallocate(p, size);
  size_t again = 400;  // same class (512 B)
  void* q = pool.allocate(again);
  EXPECT_EQ(p, q);
  pool.deallocate(q, again);
}

TEST_F(NodePoolCacheTest, ThreadExitDrainsItsCacheToGlobalList) {
  if constexpr (NodePool::kBypassCaches) {
    GTEST_SKIP() << "AddressSanitizer build: the pool has no caches";
  }
  NodePool& pool = NodePool::instance();
  pool.trim();
  ASSERT_EQ(pool.global_cached_blocks(), 0u);
  const int64_t nodes = pool.nodes_live();
  size_t cached_in_thread = 0;
  std::thread worker([&] {
    std::vector<void*> blocks;
    for (int i = 0; i < 10; ++i) {
      size_t size = 256;
      blocks.push_back(pool.allocate(size));
    }
    for (void* p : blocks) {
      pool.deallocate(p, 256);
    }
    cached_in_thread = NodePool::thread_cached_blocks();
  });
  worker.join();
  EXPECT_EQ(cached_in_thread, 10u);          // freed blocks stayed in the thread's cache...
  EXPECT_EQ(pool.global_cached_blocks(), 10u);  // ...and went to the global list at exit
  EXPECT_EQ(pool.nodes_live(), nodes);          // cached blocks are not live
  EXPECT_EQ(pool.trim(), 10u);
  EXPECT_EQ(pool.global_cached_blocks(), 0u);
}

TEST_F(NodePoolCacheTest, OverThreadBoundSpillsToGlobalList) {
  if constexpr (NodePool::kBypassCaches) {
    GTEST_SKIP() << "AddressSanitizer build: the pool has no caches";
  }
  NodePool& pool = NodePool::instance();
  pool.trim();
  std::vector<void*> blocks;
  for (size_t i = 0; i < 3 * NodePool::kThreadCacheMaxBlocks; ++i) {
    size_t size = 64;
    blocks.push_back(pool.allocate(size));
  }
  for (void* p : blocks) {
    pool.deallocate(p, 64);
  }
  EXPECT_LE(NodePool::thread_cached_blocks(), NodePool::kThreadCacheMaxBlocks);
  EXPECT_GT(pool.global_cached_blocks(), 0u);
  EXPECT_EQ(NodePool::thread_cached_blocks() + pool.global_cached_blocks(), blocks.size());
  EXPECT_EQ(pool.trim(), blocks.size());
}

TEST_F(NodePoolDeathTest, DoubleDeallocateIsReportedUnderAsan) {
  if constexpr (!NodePool::kBypassCaches) {
    GTEST_SKIP() << "needs AddressSanitizer (the pool bypasses its caches only there)";
  }
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        NodePool& pool = NodePool::instance();
        size_t size = 128;
        void* p = pool.allocate(size);
        pool.deallocate(p, size);
        pool.deallocate(p, size);
      },
      "double-free");
}

}  // namespace
}  // namespace faultloop
