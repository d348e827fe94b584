// Internal: NodePool — thread caches, the global free list, the ASan bypass.
#include "reactor/node_pool.h"

#include <algorithm>
#include <new>

namespace faultloop {
namespace {

// A free block's first word links it to the next free block of its list.
struct FreeBlock {
  FreeBlock* next;
};

struct ThreadBin {
  FreeBlock* head;
  uint32_t count;
};

// Trivially destructible on purpose: it stays usable (as "dead") after the drainer below has
// run at thread exit, e.g. from static destructors of the main thread that release buffers.
struct ThreadCache {
  ThreadBin bins[NodePool::kNumClasses];
  bool registered;  // the drainer is armed for this thread
  bool dead;        // the thread is exiting: blocks go to the global list
};

constinit thread_local ThreadCache t_cache{};

constexpr size_t class_bytes(size_t cls) { return size_t{1} << (cls + NodePool::kMinClassShift); }

constexpr size_t thread_bound(size_t cls) {
  return std::clamp<size_t>(NodePool::kThreadCacheBytes / class_bytes(cls), 1,
                            NodePool::kThreadCacheMaxBlocks);
}

constexpr size_t global_bound(size_t cls) {
  return std::max<size_t>(NodePool::kGlobalCacheBytes / class_bytes(cls), 2);
}

}  // namespace

// Runs the drain at thread exit; a friend so it can reach the private drain.
struct ThreadCacheAccess {
  static void drain() noexcept { NodePool::instance().drain_thread_cache(); }
};

namespace {

struct ThreadCacheDrainer {
  ThreadCacheDrainer() = default;
  ThreadCacheDrainer(const ThreadCacheDrainer&) = delete;
  ThreadCacheDrainer& operator=(const ThreadCacheDrainer&) = delete;
  ~ThreadCacheDrainer() { ThreadCacheAccess::drain(); }
};

// Arms the thread-exit drain the first time a thread caches a block (slow path only).
void register_thread_cache() {
  static thread_local ThreadCacheDrainer drainer;
  static_cast<void>(drainer);
  t_cache.registered = true;
}

}  // namespace

NodePool& NodePool::instance() {
  // Never destroyed: buffers released by static destructors still find the pool.
  static NodePool* const pool = new NodePool();
  return *pool;
}

void* NodePool::allocate(size_t& size) {
  if (size > kMaxClassBytes) {
    void* p = ::operator new(size);
    nodes_live_.fetch_add(1, std::memory_order_relaxed);
    bytes_live_.fetch_add(static_cast<int64_t>(size), std::memory_order_relaxed);
    return p;
  }
  const size_t cls = class_index(size);
  size = class_bytes(cls);
  void* p = nullptr;
  if constexpr (kBypassCaches) {
    p = ::operator new(size);
  } else {
    ThreadBin& bin = t_cache.bins[cls];
    if (bin.head != nullptr) {
      FreeBlock* b = bin.head;
      bin.head = b->next;
      --bin.count;
      p = b;
    } else {
      p = allocate_slow(cls);
    }
  }
  nodes_live_.fetch_add(1, std::memory_order_relaxed);
  bytes_live_.fetch_add(static_cast<int64_t>(size), std::memory_order_relaxed);
  return p;
}

void NodePool::deallocate(void* p, size_t capacity) noexcept {
  if (p == nullptr) {
    return;
  }
  nodes_live_.fetch_sub(1, std::memory_order_relaxed);
  bytes_live_.fetch_sub(static_cast<int64_t>(capacity), std::memory_order_relaxed);
  if (kBypassCaches || capacity > kMaxClassBytes) {
    ::operator delete(p, capacity);
    return;
  }
  const size_t cls = class_index(capacity);
  ThreadBin& bin = t_cache.bins[cls];
  if (t_cache.registered && !t_cache.dead && bin.count < thread_bound(cls)) {
    auto* b = static_cast<FreeBlock*>(p);
    b->next = bin.head;
    bin.head = b;
    ++bin.count;
    return;
  }
  deallocate_slow(p, cls);
}

void* NodePool::allocate_slow(size_t cls) {
  ThreadCache& tc = t_cache;
  if (!tc.registered && !tc.dead) {
    register_thread_cache();
  }
  const size_t bytes = class_bytes(cls);
  {
    std::lock_guard<std::mutex> lock(mu_);
    GlobalBin& g = bins_[cls];
    if (g.head != nullptr) {
      auto* first = static_cast<FreeBlock*>(g.head);
      g.head = first->next;
      --g.count;
      // Refill half of the thread's bound in the same critical section.
      if (!tc.dead) {
        ThreadBin& bin = tc.bins[cls];
        size_t want = thread_bound(cls) / 2;
        while (want > 0 && g.head != nullptr) {
          auto* b = static_cast<FreeBlock*>(g.head);
          g.head = b->next;
          --g.count;
          b->next = bin.head;
          bin.head = b;
          ++bin.count;
          --want;
        }
      }
      return first;
    }
  }
  return ::operator new(bytes);
}

void NodePool::deallocate_slow(void* p, size_t cls) noexcept {
  ThreadCache& tc = t_cache;
  auto* block = static_cast<FreeBlock*>(p);
  if (!tc.dead && !tc.registered) {
    // First block this thread caches: arm the exit drain, then cache it.
    register_thread_cache();
    ThreadBin& bin = tc.bins[cls];
    block->next = bin.head;
    bin.head = block;
    ++bin.count;
    return;
  }
  // Over the thread bound (or the thread is exiting): move this block and, if the thread is
  // alive, half of its bin to the global list; free what the global list does not keep.
  FreeBlock* to_free = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    GlobalBin& g = bins_[cls];
    auto put = [&](FreeBlock* b) {
      if (g.count < global_bound(cls)) {
        b->next = static_cast<FreeBlock*>(g.head);
        g.head = b;
        ++g.count;
      } else {
        b->next = to_free;
        to_free = b;
      }
    };
    put(block);
    if (!tc.dead) {
      ThreadBin& bin = tc.bins[cls];
      size_t move = bin.count / 2;
      while (move > 0 && bin.head != nullptr) {
        FreeBlock* b = bin.head;
        bin.head = b->next;
        --bin.count;
        put(b);
        --move;
      }
    }
  }
  const size_t bytes = class_bytes(cls);
  while (to_free != nullptr) {
    FreeBlock* next = to_free->next;
    ::operator delete(to_free, bytes);
    to_free = next;
  }
}

void NodePool::drain_thread_cache() noexcept {
  ThreadCache& tc = t_cache;
  tc.dead = true;
  FreeBlock* to_free[kNumClasses] = {};
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t cls = 0; cls < kNumClasses; ++cls) {
      ThreadBin& bin = tc.bins[cls];
      GlobalBin& g = bins_[cls];
      while (bin.head != nullptr) {
        FreeBlock* b = bin.head;
        bin.head = b->next;
        if (g.count < global_bound(cls)) {
          b->next = static_cast<FreeBlock*>(g.head);
          g.head = b;
          ++g.count;
        } else {
          b->next = to_free[cls];
          to_free[cls] = b;
        }
      }
      bin.count = 0;
    }
  }
  for (size_t cls = 0; cls < kNumClasses; ++cls) {
    while (to_free[cls] != nullptr) {
      FreeBlock* next = to_free[cls]->next;
      ::operator delete(to_free[cls], class_bytes(cls));
      to_free[cls] = next;
    }
  }
}

size_t NodePool::trim() {
  size_t freed = 0;
  ThreadCache& tc = t_cache;
  for (size_t cls = 0; cls < kNumClasses; ++cls) {
    ThreadBin& bin = tc.bins[cls];
    while (bin.head != nullptr) {
      FreeBlock* next = bin.head->next;
      ::operator delete(bin.head, class_bytes(cls));
      bin.head = next;
      ++freed;
    }
    bin.count = 0;
  }
  GlobalBin taken[kNumClasses];
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::swap(taken, bins_);
  }
  for (size_t cls = 0; cls < kNumClasses; ++cls) {
    auto* b = static_cast<FreeBlock*>(taken[cls].head);
    while (b != nullptr) {
      FreeBlock* next = b->next;
      ::operator delete(b, class_bytes(cls));
      b = next;
      ++freed;
    }
  }
  return freed;
}

size_t NodePool::global_cached_blocks() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const GlobalBin& g : bins_) {
    n += g.count;
  }
  return n;
}

size_t NodePool::thread_cached_blocks() noexcept {
  size_t n = 0;
  for (const ThreadBin& bin : t_cache.bins) {
    n += bin.count;
  }
  return n;
}

}  // namespace faultloop
