// Public: NodePool, the size-class memory pool behind LinkBuffer nodes (DESIGN "reactor/",
// STYLE 31; netpoll's mcache in seed 002).
//
// Sizes are rounded up to power-of-two classes from 64 B (kMinClassBytes) to 8 MiB
// (kMaxClassBytes, netpoll's mallocMax); larger requests go straight to operator new/delete at
// their exact size, and still count. Free blocks are kept in a per-thread cache per class
// (at most kThreadCacheMaxBlocks blocks and about kThreadCacheBytes bytes per class per
// thread), spilled to a global free list (one mutex) when over that bound and drained to it at
// thread exit; the global list keeps about kGlobalCacheBytes per class and frees the rest.
// The hot path — allocate/deallocate hitting the thread cache — takes no lock and makes no
// virtual call.
//
// Counters: nodes_live() and bytes_live() count blocks and bytes currently HANDED OUT
// (allocate minus deallocate); cached free blocks are not live. They are relaxed atomics and
// exist in every build, so the buffer-release invariant can be checked in release fixtures.
//
// AddressSanitizer builds (kBypassCaches): no cache at all. allocate() is operator new of the
// class capacity and deallocate() is sized operator delete, so ASan reports a use after
// release, a double release and a release with the wrong capacity, which a pool would hide.
// Capacities are rounded exactly as in other builds, so behaviour does not change.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <mutex>

#if defined(__SANITIZE_ADDRESS__)
#define FAULTLOOP_NODE_POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FAULTLOOP_NODE_POOL_ASAN 1
#endif
#endif
#ifndef FAULTLOOP_NODE_POOL_ASAN
#define FAULTLOOP_NODE_POOL_ASAN 0
#endif

namespace faultloop {

/// Process-wide size-class pool of LinkBuffer node memory. Thread-safe.
class NodePool {
 public:
  /// Smallest class: 64 bytes (2^6).
  static constexpr size_t kMinClassShift = 6;
  /// Largest class: 8 MiB (2^23, netpoll mallocMax); larger sizes bypass the classes.
  static constexpr size_t kMaxClassShift = 23;
  /// Number of size classes (64 B, 128 B, ..., 8 MiB).
  static constexpr size_t kNumClasses = kMaxClassShift - kMinClassShift + 1;
  /// Bytes of the smallest class.
  static constexpr size_t kMinClassBytes = size_t{1} << kMinClassShift;
  /// Bytes of the largest class.
  static constexpr size_t kMaxClassBytes = size_t{1} << kMaxClassShift;
  /// Per thread and class: at most this many cached free blocks...
  static constexpr size_t kThreadCacheMaxBlocks = 64;
  /// ...and about this many bytes (at least one block is kept).
  static constexpr size_t kThreadCacheBytes = size_t{1} << 20;
  /// Global free list, per class: about this many bytes (at least two blocks).
  static constexpr size_t kGlobalCacheBytes = size_t{4} << 20;
  /// True under AddressSanitizer: no caches, straight operator new/delete (see file comment).
  static constexpr bool kBypassCaches = FAULTLOOP_NODE_POOL_ASAN != 0;

  /// The process-wide pool. Never destroyed (usable from static destructors).
  static NodePool& instance();

  NodePool(const NodePool&) = delete;
  NodePool& operator=(const NodePool&) = delete;

  /// Returns a block of at least `size` bytes (aligned like operator new) and sets `size` to
  /// the block's real capacity: its class (64 B ... 8 MiB, power of two), or `size` itself
  /// above 8 MiB. std::bad_alloc when memory runs out.
  void* allocate(size_t& size);
  /// Gives back a block from allocate(); `capacity` is the capacity allocate() reported.
  /// Passing a wrong capacity or releasing twice is undefined (ASan builds report it).
  void deallocate(void* p, size_t capacity) noexcept;

  /// Blocks handed out and not yet given back (cached free blocks do not count).
  int64_t nodes_live() const noexcept { return nodes_live_.load(std::memory_order_relaxed); }
  /// Sum of the capacities of the blocks counted by nodes_live().
  int64_t bytes_live() const noexcept { return bytes_live_.load(std::memory_order_relaxed); }

  /// Frees every cached block: the calling thread's cache and the global list (for tests and
  /// memory pressure). Returns the number of blocks freed.
  size_t trim();
  /// Free blocks in the global list (tests: a thread's cache is drained there at exit).
  size_t global_cached_blocks() const;
  /// Free blocks in the calling thread's cache.
  static size_t thread_cached_blocks() noexcept;

  /// The capacity allocate(size) hands out: the class of `size`, or `size` above 8 MiB.
  static constexpr size_t class_capacity(size_t size) noexcept {
    if (size > kMaxClassBytes) {
      return size;
    }
    return size_t{1} << (class_index(size) + kMinClassShift);
  }

 private:
  friend struct ThreadCacheAccess;

  struct GlobalBin {
    void* head = nullptr;  // intrusive list through the blocks' first word
    size_t count = 0;
  };

  NodePool() = default;

  // Class of a size <= kMaxClassBytes: 0 for 64 B, 1 for 128 B, ...
  static constexpr size_t class_index(size_t size) noexcept {
    return size <= kMinClassBytes ? 0
                                  : static_cast<size_t>(std::bit_width(size - 1)) - kMinClassShift;
  }

  void* allocate_slow(size_t cls);
  void deallocate_slow(void* p, size_t cls) noexcept;
  void drain_thread_cache() noexcept;

  std::atomic<int64_t> nodes_live_{0};
  std::atomic<int64_t> bytes_live_{0};
  mutable std::mutex mu_;
  GlobalBin bins_[kNumClasses];
};

}  // namespace faultloop
