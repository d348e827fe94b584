// Public: LinkBuffer, netpoll's linked buffer in C++ (DESIGN "reactor/", seed 002, STYLE 31).
//
// A chain of reference-counted nodes whose memory comes from NodePool. Data is appended at the
// tail and consumed at the head:
//
//   head_ ... read_ ............ flush_ ......... write_
//   [released by release()]  [readable: len()]  [malloc'ed, not yet flushed: malloc_len()]
//
// Threads: single producer, single consumer, like netpoll. One thread at a time may use the
// writer and poller-input calls (malloc, malloc_ack, flush, write_binary, append, book,
// book_ack) while one other thread uses the reader calls (next, peek, skip, until,
// read_string, read_binary, read_byte, slice, release, get_bytes, len). The readable length is
// an atomic published with release by flush()/book_ack() and read with acquire, so the reader
// sees every byte it counts. Construction, destruction and moves need exclusive access.
//
// Nodes carry an intrusive atomic reference count: slice() hands out a read-only LinkBuffer
// whose nodes point into this buffer's memory without copying, and it may be used on another
// thread and outlive this buffer. A node's memory goes back to the pool (and a node made by
// write_binary(data, on_release) runs its callback, exactly once) when the last reference is
// released. NodePool::nodes_live()/bytes_live() return to their baseline once every buffer
// has been released or destroyed.
//
// Errors: reading more than len() bytes returns Errc::kNotEnough and changes nothing (the
// Connection layer turns it into waiting); writing to a read-only buffer (from slice()) returns
// Errc::kUnsupported. Misuse (book_ack beyond the booked size, malloc_ack beyond malloc_len())
// throws std::logic_error or returns std::errc::invalid_argument as documented per call.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "reactor/errc.h"
#include "reactor/result.h"

namespace faultloop {

/// A linked buffer of pooled, reference-counted nodes. Movable, not copyable.
class LinkBuffer {
 public:
  /// write_binary() links caller memory without copying above this many bytes (netpoll
  /// BinaryInplaceThreshold, 4 KiB); at or below it the bytes are copied.
  static constexpr size_t kNoCopyThreshold = 4096;
  /// Smallest block a writer node is given (netpoll's 4 KiB node minimum), header included.
  static constexpr size_t kMinNodeBytes = 4096;

  /// An empty buffer (allocates one empty header node from NodePool).
  LinkBuffer();
  /// Releases every node and every next()/peek() copy.
  ~LinkBuffer();
  /// Takes other's nodes; other is left empty (usable again, from one thread).
  LinkBuffer(LinkBuffer&& other) noexcept;
  /// Releases this buffer's nodes, then takes other's; other is left empty.
  LinkBuffer& operator=(LinkBuffer&& other) noexcept;
  LinkBuffer(const LinkBuffer&) = delete;
  LinkBuffer& operator=(const LinkBuffer&) = delete;

  // ---- reader ------------------------------------------------------------------------------

  /// Readable bytes (acquire). Reader thread; from the writer thread it is a lower bound.
  size_t len() const noexcept { return len_.load(std::memory_order_acquire); }
  /// True for a buffer made by slice(): writer and poller calls are refused.
  bool read_only() const noexcept { return read_only_; }

  /// Consumes n bytes and returns them contiguous. Inside one node the span points into the
  /// node; across nodes the bytes are copied into a pooled buffer (netpoll's caches). Either
  /// way the span stays valid until release() or destruction. n = 0 gives an empty span.
  /// Errc::kNotEnough when n > len() (nothing consumed).
  Result<std::span<const char>> next(size_t n);
  /// Like next(n) without consuming. Errc::kNotEnough when n > len().
  Result<std::span<const char>> peek(size_t n);
  /// Consumes n bytes. Errc::kNotEnough when n > len() (nothing consumed).
  std::error_code skip(size_t n);
  /// Consumes and returns the bytes up to and including the first `delim` (like next(k)).
  /// Errc::kNotEnough when no readable byte equals `delim` (nothing consumed).
  Result<std::span<const char>> until(char delim);
  /// Consumes n bytes into a new string. Errc::kNotEnough when n > len().
  Result<std::string> read_string(size_t n);
  /// Consumes n bytes into a new vector. Errc::kNotEnough when n > len().
  Result<std::vector<char>> read_binary(size_t n);
  /// Consumes out.size() bytes into `out`. Errc::kNotEnough when out.size() > len().
  std::error_code read_binary(std::span<char> out);
  /// Consumes one byte. Errc::kNotEnough when len() == 0.
  Result<uint8_t> read_byte();
  /// Consumes n bytes and returns them as a new read-only LinkBuffer sharing this buffer's
  /// nodes by reference count (zero copy). The slice may move to another thread and outlive
  /// this buffer. Errc::kNotEnough when n > len().
  Result<LinkBuffer> slice(size_t n);
  /// Frees the nodes before the read position and the next()/peek() copies; spans returned
  /// before this call become invalid (netpoll Release).
  void release();
  /// Fills `out` with iovecs over the readable bytes from the read position, without
  /// consuming (for writev/sendmsg; then skip(n) + release()). Returns the count used.
  int get_bytes(std::span<iovec> out) const;

  // ---- writer ------------------------------------------------------------------------------

  /// Returns n contiguous writable bytes at the tail; they become readable at flush().
  /// n = 0 gives an empty span. Errc::kUnsupported on a read-only buffer.
  Result<std::span<char>> malloc(size_t n);
  /// Keeps the first n bytes of what was malloc'ed (or written) since the last flush and
  /// discards the rest (netpoll MallocAck). std::errc::invalid_argument when n > malloc_len().
  std::error_code malloc_ack(size_t n);
  /// Bytes malloc'ed or written since the last flush.
  size_t malloc_len() const noexcept { return malloc_len_; }
  /// Appends a copy of `data` (readable at flush()).
  std::error_code write_binary(std::span<const char> data);
  /// Appends `data`; above kNoCopyThreshold bytes the caller's memory is linked as a read-only
  /// node WITHOUT copying and must stay valid and unchanged until `on_release` runs, which
  /// happens exactly once, when that node (and every slice of it) has been released. At or
  /// below the threshold the bytes are copied and `on_release` runs before this returns. The
  /// callback must not throw. Errc::kUnsupported on a read-only buffer (callback run at once).
  std::error_code write_binary(std::span<const char> data, std::function<void()> on_release);
  /// Moves every byte of `other` (its pending malloc'ed bytes are flushed first) to the tail
  /// of this buffer without copying; they become readable at this buffer's flush(). `other`
  /// is left empty. std::errc::invalid_argument when `other` is this buffer.
  std::error_code append(LinkBuffer&& other);
  /// Makes everything malloc'ed or written readable; publishes len() with release.
  std::error_code flush();

  // ---- poller (input side) -----------------------------------------------------------------

  /// netpoll book: returns writable space at the tail of at least 1 and at most `book_size`
  /// bytes, in the tail node; when the tail node is full, first links a new node whose block
  /// holds max_size data bytes. Booking again before book_ack returns the same space. Not
  /// mixed with malloc() on one buffer (std::logic_error if bytes are malloc'ed). Returns an
  /// empty span on a read-only buffer.
  std::span<char> book(size_t book_size, size_t max_size);
  /// netpoll bookAck: the first n booked bytes became data and are readable at once; the rest
  /// of the booking is dropped (n = 0 undoes it). Returns the new len(). std::logic_error
  /// when n exceeds the booked size (each book has exactly one book_ack: netpoll #212).
  size_t book_ack(size_t n);

 private:
  struct Node;

  void init();
  void destroy() noexcept;
  void ensure_init();
  static Node* new_header_node();
  static Node* new_data_node(size_t block_bytes);
  void link_tail(Node* node) noexcept;
  void settle() noexcept;
  void advance(size_t n) noexcept;
  void copy_out(size_t n, char* dst) const noexcept;
  // next() (consume) and peek(): n readable bytes, contiguous (copied when they span nodes).
  Result<std::span<const char>> view(size_t n, bool consume);
  char* cache_alloc(size_t n);
  void flush_pending() noexcept;
  std::error_code write_copy(std::span<const char> data);

  template <class F>
  void for_each_chunk(size_t n, F&& f) const;

  static void release_node(Node* node) noexcept;

  struct Cache {
    char* data;
    size_t capacity;
  };

  // Reader-owned.
  Node* head_ = nullptr;
  Node* read_ = nullptr;
  std::vector<Cache> caches_;
  // Writer-owned.
  Node* flush_ = nullptr;
  Node* write_ = nullptr;
  size_t malloc_len_ = 0;
  size_t booked_ = 0;
  // Shared.
  std::atomic<size_t> len_{0};
  bool read_only_ = false;
};

}  // namespace faultloop
