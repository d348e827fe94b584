// Internal: LinkBuffer — nodes, the single-producer/single-consumer protocol, slices.
//
// Protocol (why the reader never touches memory the writer frees or changes):
//  - Every byte counted by len_ lies in a node at or before flush_ and is never changed
//    again; the writer only writes at or after flush_ (malloc_ack never goes before it), and
//    it frees only nodes that hold no readable byte (malloc_ack's discarded tail).
//  - A node's `end` (readable end) is stored before len_ is raised with release; the reader
//    loads len_ with acquire first, so it sees at least the `end` that goes with that length.
//  - The reader moves read_ to the next node only when readable bytes remain beyond the
//    current one (settle, advance), so read_ never enters a node the writer may discard, and
//    release() frees only nodes strictly before read_, which the writer never touches again.
#include "reactor/link_buffer.h"

#include <algorithm>
#include <limits>
#include <bit>
#include <cstring>
#include <new>
#include <stdexcept>
#include <utility>

#include "reactor/node_pool.h"

namespace faultloop {

// One link of the chain. Lives at the front of its NodePool block; data nodes keep their
// bytes right after the header, view nodes (slice) and caller-memory nodes point elsewhere.
struct LinkBuffer::Node {
  std::atomic<int32_t> refs{1};  // the owning chain's reference + one per view node on it
  bool readonly = false;         // memory not writable: caller memory or a view
  char* buf = nullptr;           // first byte of the node's memory
  size_t cap = 0;                // bytes at buf
  size_t block = 0;              // capacity of this node's pool block (header included)
  size_t off = 0;                // reader: read offset
  std::atomic<size_t> end{0};    // readable end; writer stores, reader loads after len_
  size_t malloc = 0;             // writer: end of the malloc'ed/booked bytes
  std::atomic<Node*> next{nullptr};
  Node* origin = nullptr;            // view nodes: the node owning the memory (one ref held)
  std::function<void()> on_release;  // caller-memory nodes: run once, when freed
};

namespace {

constexpr size_t round16(size_t n) { return (n + 15) & ~size_t{15}; }

size_t writable_room(const auto* node) { return node->readonly ? 0 : node->cap - node->malloc; }

}  // namespace

LinkBuffer::Node* LinkBuffer::new_header_node() {
  size_t block = round16(sizeof(Node));
  void* mem = NodePool::instance().allocate(block);
  Node* node = new (mem) Node();
  node->block = block;
  return node;
}

LinkBuffer::Node* LinkBuffer::new_data_node(size_t block_bytes) {
  const size_t header = round16(sizeof(Node));
  size_t block = std::max(block_bytes, header + 1);
  void* mem = NodePool::instance().allocate(block);
  Node* node = new (mem) Node();
  node->block = block;
  node->buf = static_cast<char*>(mem) + header;
  node->cap = block - header;
  return node;
}

void LinkBuffer::release_node(Node* node) noexcept {
  while (node != nullptr) {
    if (node->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) {
      return;
    }
    Node* origin = node->origin;
    std::function<void()> on_release = std::move(node->on_release);
    const size_t block = node->block;
    node->~Node();
    NodePool::instance().deallocate(node, block);
    if (on_release) {
      on_release();
    }
    node = origin;  // a view gives back its reference on the memory's owner
  }
}

// ---- lifetime --------------------------------------------------------------------------------

LinkBuffer::LinkBuffer() { init(); }

LinkBuffer::~LinkBuffer() { destroy(); }

LinkBuffer::LinkBuffer(LinkBuffer&& other) noexcept
    : head_(std::exchange(other.head_, nullptr)),
      read_(std::exchange(other.read_, nullptr)),
      caches_(std::move(other.caches_)),
      flush_(std::exchange(other.flush_, nullptr)),
      write_(std::exchange(other.write_, nullptr)),
      malloc_len_(std::exchange(other.malloc_len_, 0)),
      booked_(std::exchange(other.booked_, 0)),
      len_(other.len_.exchange(0, std::memory_order_relaxed)),
      read_only_(std::exchange(other.read_only_, false)) {
  other.caches_.clear();
}

LinkBuffer& LinkBuffer::operator=(LinkBuffer&& other) noexcept {
  if (this != &other) {
    destroy();
    head_ = std::exchange(other.head_, nullptr);
    read_ = std::exchange(other.read_, nullptr);
    caches_ = std::move(other.caches_);
    other.caches_.clear();
    flush_ = std::exchange(other.flush_, nullptr);
    write_ = std::exchange(other.write_, nullptr);
    malloc_len_ = std::exchange(other.malloc_len_, 0);
    booked_ = std::exchange(other.booked_, 0);
    len_.store(other.len_.exchange(0, std::memory_order_relaxed), std::memory_order_relaxed);
    read_only_ = std::exchange(other.read_only_, false);
  }
  return *this;
}

void LinkBuffer::init() {
  Node* sentinel = new_header_node();  // empty: no memory, nothing to read or write
  head_ = read_ = flush_ = write_ = sentinel;
}

void LinkBuffer::ensure_init() {
  if (write_ == nullptr) {
    init();
  }
}

void LinkBuffer::destroy() noexcept {
  Node* node = head_;
  while (node != nullptr) {
    Node* next = node->next.load(std::memory_order_relaxed);
    release_node(node);
    node = next;
  }
  for (const Cache& c : caches_) {
    NodePool::instance().deallocate(c.data, c.capacity);
  }
  caches_.clear();
  head_ = read_ = flush_ = write_ = nullptr;
  malloc_len_ = 0;
  booked_ = 0;
  len_.store(0, std::memory_order_relaxed);
}

// ---- reader ----------------------------------------------------------------------------------

// Calls f(node, offset, count) for the first n readable bytes, in order, until f returns
// false. Precondition: n <= len() as loaded (acquire) by the caller.
template <class F>
void LinkBuffer::for_each_chunk(size_t n, F&& f) const {
  Node* node = read_;
  size_t off = node->off;
  size_t left = n;
  while (left > 0) {
    const size_t end = node->end.load(std::memory_order_relaxed);
    const size_t k = std::min(end - off, left);
    if (k > 0) {
      left -= k;
      if (!f(node, off, k)) {
        return;
      }
    }
    if (left == 0) {
      return;
    }
    node = node->next.load(std::memory_order_acquire);
    off = node->off;
  }
}

// Moves read_ past fully read nodes. Precondition: len() > 0 (so bytes remain beyond).
void LinkBuffer::settle() noexcept {
  while (read_->off == read_->end.load(std::memory_order_relaxed)) {
    read_ = read_->next.load(std::memory_order_acquire);
  }
}

// Consumes n bytes. Precondition: 0 < n <= len().
void LinkBuffer::advance(size_t n) noexcept {
  Node* node = read_;
  size_t left = n;
  for (;;) {
    const size_t k = std::min(node->end.load(std::memory_order_relaxed) - node->off, left);
    node->off += k;
    left -= k;
    if (left == 0) {
      break;
    }
    node = node->next.load(std::memory_order_acquire);
  }
  read_ = node;
  len_.fetch_sub(n, std::memory_order_acq_rel);
}

void LinkBuffer::copy_out(size_t n, char* dst) const noexcept {
  for_each_chunk(n, [&dst](Node* node, size_t off, size_t k) {
    std::memcpy(dst, node->buf + off, k);
    dst += k;
    return true;
  });
}

char* LinkBuffer::cache_alloc(size_t n) {
  caches_.reserve(caches_.size() + 1);
  size_t capacity = n;
  void* p = NodePool::instance().allocate(capacity);
  caches_.push_back({static_cast<char*>(p), capacity});
  return static_cast<char*>(p);
}

Result<std::span<const char>> LinkBuffer::next(size_t n) { return view(n, /*consume=*/true); }

Result<std::span<const char>> LinkBuffer::peek(size_t n) { return view(n, /*consume=*/false); }

Result<std::span<const char>> LinkBuffer::view(size_t n, bool consume) {
  if (n > len()) {
    return Errc::kNotEnough;
  }
  if (n == 0) {
    return std::span<const char>{};
  }
  settle();
  Node* r = read_;
  if (r->end.load(std::memory_order_relaxed) - r->off >= n) {
    const char* p = r->buf + r->off;  // contiguous in one node: no copy
    if (consume) {
      r->off += n;
      len_.fetch_sub(n, std::memory_order_acq_rel);
    }
    return std::span<const char>(p, n);
  }
  char* copy = cache_alloc(n);  // spans nodes: one copy, freed at release()
  copy_out(n, copy);
  if (consume) {
    advance(n);
  }
  return std::span<const char>(copy, n);
}


std::error_code LinkBuffer::skip(size_t n) {
  if (n > len()) {
    return Errc::kNotEnough;
  }
  if (n > 0) {
    advance(n);
  }
  return {};
}

Result<std::span<const char>> LinkBuffer::until(char delim) {
  const size_t avail = len();
  size_t pos = 0;
  bool found = false;
  if (avail > 0) {
    for_each_chunk(avail, [&](Node* node, size_t off, size_t k) {
      const char* start = node->buf + off;
      const void* hit = std::memchr(start, static_cast<unsigned char>(delim), k);
      if (hit != nullptr) {
        pos += static_cast<size_t>(static_cast<const char*>(hit) - start);
        found = true;
        return false;
      }
      pos += k;
      return true;
    });
  }
  if (!found) {
    return Errc::kNotEnough;
  }
  return next(pos + 1);
}

Result<std::string> LinkBuffer::read_string(size_t n) {
  if (n > len()) {
    return Errc::kNotEnough;
  }
  std::string s(n, '\0');
  if (n > 0) {
    copy_out(n, s.data());
    advance(n);
  }
  return s;
}

Result<std::vector<char>> LinkBuffer::read_binary(size_t n) {
  if (n > len()) {
    return Errc::kNotEnough;
  }
  std::vector<char> v(n);
  if (n > 0) {
    copy_out(n, v.data());
    advance(n);
  }
  return v;
}

std::error_code LinkBuffer::read_binary(std::span<char> out) {
  if (out.size() > len()) {
    return Errc::kNotEnough;
  }
  if (!out.empty()) {
    copy_out(out.size(), out.data());
    advance(out.size());
  }
  return {};
}

Result<uint8_t> LinkBuffer::read_byte() {
  if (len() == 0) {
    return Errc::kNotEnough;
  }
  char c = 0;
  copy_out(1, &c);
  advance(1);
  return static_cast<uint8_t>(c);
}

Result<LinkBuffer> LinkBuffer::slice(size_t n) {
  if (n > len()) {
    return Errc::kNotEnough;
  }
  LinkBuffer out;
  out.read_only_ = true;
  if (n == 0) {
    return out;
  }
  Node* tail = out.write_;
  for_each_chunk(n, [&tail](Node* src, size_t off, size_t k) {
    Node* view = new_header_node();
    Node* owner = src->origin != nullptr ? src->origin : src;
    owner->refs.fetch_add(1, std::memory_order_relaxed);
    view->origin = owner;
    view->readonly = true;
    view->buf = src->buf + off;
    view->cap = k;
    view->malloc = k;
    view->end.store(k, std::memory_order_relaxed);
    tail->next.store(view, std::memory_order_relaxed);
    tail = view;  // linked at once: `out` releases it if a later allocation throws
    return true;
  });
  out.flush_ = out.write_ = tail;
  out.len_.store(n, std::memory_order_relaxed);
  advance(n);
  return out;
}

void LinkBuffer::release() {
  if (read_ != nullptr) {
    if (len() > 0) {
      settle();
    }
    while (head_ != read_) {
      Node* node = head_;
      head_ = node->next.load(std::memory_order_acquire);
      release_node(node);
    }
  }
  for (const Cache& c : caches_) {
    NodePool::instance().deallocate(c.data, c.capacity);
  }
  caches_.clear();
}

int LinkBuffer::get_bytes(std::span<iovec> out) const {
  const size_t avail = len();
  if (avail == 0 || out.empty()) {
    return 0;
  }
  size_t count = 0;
  for_each_chunk(avail, [&](Node* node, size_t off, size_t k) {
    out[count].iov_base = node->buf + off;
    out[count].iov_len = k;
    ++count;
    return count < out.size();
  });
  return static_cast<int>(count);
}

// ---- writer ----------------------------------------------------------------------------------

void LinkBuffer::link_tail(Node* node) noexcept {
  write_->next.store(node, std::memory_order_release);
  write_ = node;
}

Result<std::span<char>> LinkBuffer::malloc(size_t n) {
  if (read_only_) {
    return Errc::kUnsupported;
  }
  ensure_init();
  if (n == 0) {
    return std::span<char>{};
  }
  Node* w = write_;
  if (writable_room(w) < n) {
    if (n > std::numeric_limits<size_t>::max() / 2) {
      return std::make_error_code(std::errc::value_too_large);  // n + header would wrap
    }
    w = new_data_node(std::max(n + round16(sizeof(Node)), kMinNodeBytes));
    link_tail(w);
  }
  char* p = w->buf + w->malloc;
  w->malloc += n;
  malloc_len_ += n;
  return std::span<char>(p, n);
}

std::error_code LinkBuffer::malloc_ack(size_t n) {
  if (read_only_) {
    return Errc::kUnsupported;
  }
  if (n > malloc_len_) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  if (write_ == nullptr) {
    return {};  // empty (moved-from) buffer, n == 0
  }
  Node* node = flush_;
  size_t left = n;
  for (;;) {
    const size_t end = node->end.load(std::memory_order_relaxed);
    const size_t pending = node->malloc - end;
    Node* next = node->next.load(std::memory_order_relaxed);
    if (left <= pending || next == nullptr) {
      node->malloc = end + std::min(left, pending);
      break;
    }
    left -= pending;
    node = next;
  }
  // Nodes after the kept one hold no readable byte: the reader never entered them.
  Node* rest = node->next.load(std::memory_order_relaxed);
  node->next.store(nullptr, std::memory_order_relaxed);
  write_ = node;
  while (rest != nullptr) {
    Node* next = rest->next.load(std::memory_order_relaxed);
    release_node(rest);
    rest = next;
  }
  malloc_len_ = n;
  return {};
}

std::error_code LinkBuffer::write_copy(std::span<const char> data) {
  const char* p = data.data();
  size_t left = data.size();
  const size_t header = round16(sizeof(Node));
  while (left > 0) {
    Node* w = write_;
    size_t room = writable_room(w);
    if (room == 0) {
      const size_t want = left + header;
      size_t block = kMinNodeBytes;
      if (want > kMinNodeBytes) {
        // Up to 64 KiB one node holds it all; above, power-of-two blocks without rounding up.
        block = want <= (size_t{64} << 10) ? std::bit_ceil(want)
                                          : std::min(std::bit_floor(want), NodePool::kMaxClassBytes);
      }
      w = new_data_node(block);
      link_tail(w);
      room = w->cap;
    }
    const size_t k = std::min(room, left);
    std::memcpy(w->buf + w->malloc, p, k);
    w->malloc += k;
    malloc_len_ += k;
    p += k;
    left -= k;
  }
  return {};
}

std::error_code LinkBuffer::write_binary(std::span<const char> data) {
  if (read_only_) {
    return Errc::kUnsupported;
  }
  ensure_init();
  return write_copy(data);
}

std::error_code LinkBuffer::write_binary(std::span<const char> data,
                                         std::function<void()> on_release) {
  if (read_only_ || data.size() <= kNoCopyThreshold) {
    // Copied (or refused): the caller's memory is free again at once — also when the copy
    // throws, so the callback runs exactly once either way.
    struct RunOnExit {
      std::function<void()>& fn;
      ~RunOnExit() {
        if (fn) {
          fn();
        }
      }
    } run_on_exit{on_release};
    return write_binary(data);
  }
  Node* node = nullptr;
  try {
    ensure_init();
    node = new_header_node();
  } catch (...) {
    if (on_release) {
      on_release();  // exactly once, even when linking failed
    }
    throw;
  }
  node->readonly = true;
  node->buf = const_cast<char*>(data.data());  // never written: readonly
  node->cap = data.size();
  node->malloc = data.size();
  node->on_release = std::move(on_release);
  link_tail(node);
  malloc_len_ += data.size();
  return {};
}

void LinkBuffer::flush_pending() noexcept {
  for (Node* node = flush_;; node = node->next.load(std::memory_order_relaxed)) {
    node->end.store(node->malloc, std::memory_order_relaxed);
    if (node == write_) {
      break;
    }
  }
  flush_ = write_;
  if (malloc_len_ > 0) {
    len_.fetch_add(malloc_len_, std::memory_order_release);
    malloc_len_ = 0;
  }
}

std::error_code LinkBuffer::flush() {
  if (write_ != nullptr && !read_only_) {
    flush_pending();
  }
  return {};
}

std::error_code LinkBuffer::append(LinkBuffer&& other) {
  if (&other == this) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  if (read_only_) {
    return Errc::kUnsupported;
  }
  ensure_init();
  if (other.write_ == nullptr) {
    return {};
  }
  other.flush_pending();
  const size_t n = other.len_.load(std::memory_order_relaxed);
  if (n == 0) {
    other.destroy();
    return {};
  }
  other.settle();
  Node* first = other.read_;
  Node* last = other.write_;
  // What `other` had already read goes, as in other.release().
  while (other.head_ != first) {
    Node* node = other.head_;
    other.head_ = node->next.load(std::memory_order_relaxed);
    release_node(node);
  }
  other.head_ = nullptr;  // the chain from `first` is ours now
  other.destroy();
  // Its readable bytes become this buffer's pending bytes: [off, end) -> end = off,
  // malloc = old end, so flush(), malloc_ack() and the reader see them as written here.
  for (Node* node = first;; node = node->next.load(std::memory_order_relaxed)) {
    node->malloc = node->end.load(std::memory_order_relaxed);
    node->end.store(node->off, std::memory_order_relaxed);
    if (node == last) {
      break;
    }
  }
  write_->next.store(first, std::memory_order_release);
  write_ = last;
  malloc_len_ += n;
  return {};
}

// ---- poller ----------------------------------------------------------------------------------

std::span<char> LinkBuffer::book(size_t book_size, size_t max_size) {
  if (read_only_) {
    return {};
  }
  ensure_init();
  if (malloc_len_ != 0) {
    throw std::logic_error("LinkBuffer::book: malloc'ed bytes are pending (book and malloc mix)");
  }
  Node* w = write_;
  size_t room = writable_room(w);
  if (room == 0) {
    w = new_data_node(round16(sizeof(Node)) + std::max<size_t>(max_size, 1));
    link_tail(w);
    room = w->cap;
  }
  booked_ = std::min(room, std::max<size_t>(book_size, 1));
  return {w->buf + w->malloc, booked_};
}

size_t LinkBuffer::book_ack(size_t n) {
  if (n > booked_) {
    throw std::logic_error("LinkBuffer::book_ack: n exceeds the booked size");
  }
  booked_ = 0;
  if (n == 0) {
    return len();
  }
  Node* w = write_;
  w->malloc += n;
  w->end.store(w->malloc, std::memory_order_relaxed);
  flush_ = w;
  return len_.fetch_add(n, std::memory_order_release) + n;
}

}  // namespace faultloop
