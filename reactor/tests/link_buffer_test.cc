// LinkBuffer (label unit), netpoll's linkbuffer tests in spirit: reads across node boundaries,
// slices sharing nodes by reference count, malloc/malloc_ack/flush, book/book_ack, get_bytes,
// no-copy writes with their release callback, append, a reader and a writer thread, and the
// pool back at baseline after every test (FaultTest). Also Errc and Result.
#include "reactor/link_buffer.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <limits>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "reactor/errc.h"
#include "reactor/node_pool.h"
#include "reactor/result.h"
#include "harness/testing/fault_test.h"

namespace faultloop {
namespace {

using faultloop::testing::FaultTest;

std::span<const char> bytes_of(std::string_view s) { return {s.data(), s.size()}; }
std::string str(std::span<const char> s) { return {s.data(), s.size()}; }

// Appends each segment in a node of its own (through append), then flushes: the buffer's
// node boundaries are exactly the segment boundaries.
void fill_segments(LinkBuffer& buffer, const std::vector<std::string>& segments) {
  for (const std::string& segment : segments) {
    LinkBuffer part;
    ASSERT_FALSE(part.write_binary(bytes_of(segment)));
    ASSERT_FALSE(part.flush());
    ASSERT_FALSE(buffer.append(std::move(part)));
  }
  ASSERT_FALSE(buffer.flush());
}

int iovec_count(const LinkBuffer& buffer) {
  iovec iov[64];
  return buffer.get_bytes(iov);
}

// Deterministic stream content for the thread tests.
char pattern(uint64_t i) { return static_cast<char>((i * 131u) ^ (i >> 11)); }

class ErrcMessageTest : public FaultTest {};
class ResultAccessTest : public FaultTest {};
class LinkBufferReadTest : public FaultTest {};
class LinkBufferSliceTest : public FaultTest {};
class LinkBufferMallocTest : public FaultTest {};
class LinkBufferBookTest : public FaultTest {};
class LinkBufferNoCopyTest : public FaultTest {};
class LinkBufferAppendTest : public FaultTest {};
class LinkBufferThreadTest : public FaultTest {};
using LinkBufferDeathTest = LinkBufferReadTest;

// ---- Errc and Result ---------------------------------------------------------------------

TEST_F(ErrcMessageTest, MessagesUseSeedSpellings) {
  EXPECT_STREQ(faultloop_category().name(), "faultloop");
  EXPECT_EQ(std::error_code(Errc::kConnClosed).message(), "ErrConnClosed");
  EXPECT_EQ(std::error_code(Errc::kEof).message(), "ErrEOF");
  EXPECT_EQ(std::error_code(Errc::kReadTimeout).message(), "ErrReadTimeout");
  EXPECT_EQ(std::error_code(Errc::kWriteTimeout).message(), "ErrWriteTimeout");
  EXPECT_EQ(std::error_code(Errc::kDialTimeout).message(), "ErrDialTimeout");
  EXPECT_EQ(std::error_code(Errc::kBufferFull).message(), "ErrBufferFull");
  EXPECT_EQ(std::error_code(Errc::kWouldBlock).message(), "ErrWouldBlock");
  EXPECT_EQ(std::error_code(Errc::kNotEnough).message(), "ErrNotEnough");
  EXPECT_EQ(std::error_code(Errc::kUnsupported).message(), "ErrUnsupported");
  const std::error_code ec = Errc::kEof;
  EXPECT_EQ(ec, Errc::kEof);
  EXPECT_NE(ec, std::make_error_code(std::errc::io_error));
}

TEST_F(ResultAccessTest, ValueOfErrorThrowsLogicError) {
  Result<int> ok = 7;
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 7);
  EXPECT_FALSE(ok.error());
  Result<int> bad = Errc::kEof;
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.error(), Errc::kEof);
  EXPECT_THROW(static_cast<void>(bad.value()), std::logic_error);
  Result<void> done;
  EXPECT_TRUE(done.ok());
  Result<void> failed = std::make_error_code(std::errc::invalid_argument);
  EXPECT_THROW(failed.value(), std::logic_error);
  EXPECT_THROW(Result<int>(std::error_code{}), std::logic_error);
}

// ---- reader ------------------------------------------------------------------------------

TEST_F(LinkBufferReadTest, NextWithinOneNodeReturnsBytesInPlace) {
  LinkBuffer buffer;
  ASSERT_FALSE(buffer.write_binary(bytes_of("hello world")));
  EXPECT_EQ(buffer.len(), 0u);  // not readable before flush
  ASSERT_FALSE(buffer.flush());
  EXPECT_EQ(buffer.len(), 11u);
  iovec iov[1];
  ASSERT_EQ(buffer.get_bytes(iov), 1);
  auto first = buffer.next(5);
  ASSERT_TRUE(first);
  EXPECT_EQ(str(*first), "hello");
  EXPECT_EQ(first->data(), iov[0].iov_base);  // zero copy inside one node
  EXPECT_EQ(str(*buffer.next(6)), " world");
  EXPECT_EQ(buffer.len(), 0u);
  buffer.release();
}

TEST_F(LinkBufferReadTest, NextBeyondLenReturnsNotEnoughAndKeepsData) {
  LinkBuffer buffer;
  fill_segments(buffer, {"abc"});
  auto r = buffer.next(4);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::kNotEnough);
  EXPECT_EQ(buffer.skip(4), Errc::kNotEnough);
  EXPECT_EQ(buffer.peek(4).error(), Errc::kNotEnough);
  EXPECT_EQ(buffer.read_string(4).error(), Errc::kNotEnough);
  EXPECT_EQ(buffer.slice(4).error(), Errc::kNotEnough);
  EXPECT_EQ(buffer.len(), 3u);
  EXPECT_EQ(str(*buffer.next(3)), "abc");
  EXPECT_EQ(buffer.read_byte().error(), Errc::kNotEnough);
  EXPECT_EQ(buffer.next(0)->size(), 0u);
}

TEST_F(LinkBufferReadTest, NextAcrossNodesCopiesContiguously) {
  LinkBuffer buffer;
  fill_segments(buffer, {"01234", "56789", "abcde"});
  EXPECT_EQ(iovec_count(buffer), 3);
  EXPECT_EQ(str(*buffer.next(3)), "012");
  auto across = buffer.next(10);  // 34 | 56789 | abc
  ASSERT_TRUE(across);
  EXPECT_EQ(str(*across), "3456789abc");
  auto rest = buffer.next(2);
  EXPECT_EQ(str(*rest), "de");
  EXPECT_EQ(str(*across), "3456789abc");  // copies stay valid until release()
  buffer.release();
}

TEST_F(LinkBufferReadTest, PeekAcrossNodesDoesNotConsume) {
  LinkBuffer buffer;
  fill_segments(buffer, {"ab", "cd", "ef"});
  EXPECT_EQ(str(*buffer.peek(5)), "abcde");
  EXPECT_EQ(buffer.len(), 6u);
  EXPECT_EQ(str(*buffer.peek(1)), "a");
  EXPECT_EQ(str(*buffer.next(6)), "abcdef");
}

TEST_F(LinkBufferReadTest, SkipAcrossNodesThenNext) {
  LinkBuffer buffer;
  fill_segments(buffer, {"abc", "def", "ghi"});
  ASSERT_FALSE(buffer.skip(4));
  EXPECT_EQ(buffer.len(), 5u);
  EXPECT_EQ(str(*buffer.next(3)), "efg");
  ASSERT_FALSE(buffer.skip(2));
  EXPECT_EQ(buffer.len(), 0u);
  buffer.release();
  EXPECT_EQ(iovec_count(buffer), 0);
}

TEST_F(LinkBufferReadTest, UntilFindsDelimiterAcrossNodes) {
  LinkBuffer buffer;
  fill_segments(buffer, {"GET /", "x HTTP", "/1.1\r", "\nHost"});
  auto line = buffer.until('\n');
  ASSERT_TRUE(line);
  EXPECT_EQ(str(*line), "GET /x HTTP/1.1\r\n");
  auto none = buffer.until('\n');
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error(), Errc::kNotEnough);
  EXPECT_EQ(buffer.len(), 4u);
  EXPECT_EQ(str(*buffer.until('t')), "Host");
}

TEST_F(LinkBufferReadTest, ReadStringBinaryAndByteAcrossNodes) {
  LinkBuffer buffer;
  fill_segments(buffer, {"\x01", "xy", "zw", "12345"});
  EXPECT_EQ(*buffer.read_byte(), 1u);
  EXPECT_EQ(*buffer.read_string(3), "xyz");
  auto v = buffer.read_binary(2);
  ASSERT_TRUE(v);
  EXPECT_EQ(std::string(v->begin(), v->end()), "w1");
  char out[4];
  ASSERT_FALSE(buffer.read_binary(std::span<char>(out)));
  EXPECT_EQ(std::string(out, 4), "2345");
  EXPECT_EQ(buffer.len(), 0u);
}

TEST_F(LinkBufferReadTest, ReleaseFreesReadNodesAndCopies) {
  NodePool& pool = NodePool::instance();
  LinkBuffer buffer;
  const int64_t empty = pool.nodes_live();
  fill_segments(buffer, {"aaaa", "bbbb", "cccc"});
  const int64_t full = pool.nodes_live();
  EXPECT_EQ(full, empty + 3);
  ASSERT_TRUE(buffer.next(6));  // across two nodes: one pooled copy
  EXPECT_EQ(pool.nodes_live(), full + 1);
  buffer.release();  // the sentinel, the "aaaa" node and the copy go; "bbbb" is still read
  EXPECT_EQ(pool.nodes_live(), full - 2);
  ASSERT_TRUE(buffer.next(6));
  buffer.release();  // the last node stays: the writer may still append to it
  EXPECT_EQ(pool.nodes_live(), empty);
}

TEST_F(LinkBufferReadTest, GetBytesCoversReadableDataInOrder) {
  LinkBuffer buffer;
  fill_segments(buffer, {"one", "two", "three"});
  ASSERT_FALSE(buffer.skip(1));
  iovec iov[8];
  ASSERT_EQ(buffer.get_bytes(iov), 3);
  std::string joined;
  for (const iovec& v : std::span(iov, 3)) {
    joined.append(static_cast<const char*>(v.iov_base), v.iov_len);
  }
  EXPECT_EQ(joined, "netwothree");
  EXPECT_EQ(buffer.len(), 10u);  // not consumed
  iovec two[2];
  EXPECT_EQ(buffer.get_bytes(two), 2);  // bounded by the caller's array
  EXPECT_EQ(buffer.get_bytes({}), 0);
}

TEST_F(LinkBufferReadTest, MovedFromBufferIsEmptyAndReusable) {
  LinkBuffer a;
  fill_segments(a, {"xyz"});
  LinkBuffer b(std::move(a));
  EXPECT_EQ(a.len(), 0u);  // NOLINT(bugprone-use-after-move): documented state
  EXPECT_EQ(b.len(), 3u);
  ASSERT_FALSE(a.write_binary(bytes_of("again")));
  ASSERT_FALSE(a.flush());
  EXPECT_EQ(str(*a.next(5)), "again");
  a = std::move(b);
  EXPECT_EQ(str(*a.next(3)), "xyz");
}

// ---- slice -------------------------------------------------------------------------------

TEST_F(LinkBufferSliceTest, SliceSharesNodesWithoutCopy) {
  LinkBuffer buffer;
  fill_segments(buffer, {"abcd", "efgh"});
  iovec before[2];
  ASSERT_EQ(buffer.get_bytes(before), 2);
  auto slice = buffer.slice(6);
  ASSERT_TRUE(slice);
  EXPECT_TRUE(slice->read_only());
  EXPECT_EQ(buffer.len(), 2u);
  EXPECT_EQ(slice->len(), 6u);
  iovec in_slice[2];
  ASSERT_EQ(slice->get_bytes(in_slice), 2);
  EXPECT_EQ(in_slice[0].iov_base, before[0].iov_base);  // same memory, no copy
  EXPECT_EQ(in_slice[1].iov_base, before[1].iov_base);
  EXPECT_EQ(in_slice[1].iov_len, 2u);
  EXPECT_EQ(str(*slice->next(6)), "abcdef");
  EXPECT_EQ(str(*buffer.next(2)), "gh");
}

TEST_F(LinkBufferSliceTest, SliceOutlivesSourceReleasedFirst) {
  NodePool& pool = NodePool::instance();
  const int64_t nodes = pool.nodes_live();
  std::optional<LinkBuffer> slice;
  {
    LinkBuffer source;
    fill_segments(source, {"hello ", "slice"});
    auto s = source.slice(11);
    ASSERT_TRUE(s);
    slice.emplace(std::move(*s));
    source.release();
  }  // source destroyed first: its nodes live on through the slice's references
  EXPECT_GT(pool.nodes_live(), nodes);
  EXPECT_EQ(str(*slice->next(11)), "hello slice");
  slice.reset();
  EXPECT_EQ(pool.nodes_live(), nodes);
}

TEST_F(LinkBufferSliceTest, SliceOfSliceKeepsOwnerAlive) {
  std::optional<LinkBuffer> inner;
  {
    LinkBuffer source;
    fill_segments(source, {"0123", "4567"});
    auto outer = source.slice(8);
    ASSERT_TRUE(outer);
    ASSERT_FALSE(outer->skip(1));
    auto s = outer->slice(6);
    ASSERT_TRUE(s);
    inner.emplace(std::move(*s));
  }
  EXPECT_EQ(*inner->read_string(6), "123456");
}

TEST_F(LinkBufferSliceTest, SliceIsReadOnly) {
  LinkBuffer source;
  fill_segments(source, {"data"});
  auto slice = source.slice(2);
  ASSERT_TRUE(slice);
  EXPECT_EQ(slice->malloc(4).error(), Errc::kUnsupported);
  EXPECT_EQ(slice->write_binary(bytes_of("x")), Errc::kUnsupported);
  EXPECT_TRUE(slice->book(16, 4096).empty());
  LinkBuffer other;
  EXPECT_EQ(slice->append(std::move(other)), Errc::kUnsupported);
  EXPECT_FALSE(slice->flush());
  EXPECT_EQ(str(*slice->next(2)), "da");
}

TEST_F(LinkBufferSliceTest, SliceReleasedOnAnotherThread) {
  LinkBuffer source;
  std::string expected;
  for (int i = 0; i < 64; ++i) {
    expected += std::string(100, static_cast<char>('a' + i % 26));
  }
  ASSERT_FALSE(source.write_binary(bytes_of(expected)));
  ASSERT_FALSE(source.flush());
  auto s = source.slice(expected.size());
  ASSERT_TRUE(s);
  std::string seen;
  std::thread reader([slice = std::move(*s), &seen]() mutable {
    seen = *slice.read_string(slice.len());
    slice.release();
  });
  source.release();  // drops the source's references while the other thread reads
  reader.join();
  EXPECT_EQ(seen, expected);
}

// ---- malloc / malloc_ack / flush ----------------------------------------------------------

TEST_F(LinkBufferMallocTest, MallocIsReadableOnlyAfterFlush) {
  LinkBuffer buffer;
  auto space = buffer.malloc(5);
  ASSERT_TRUE(space);
  ASSERT_EQ(space->size(), 5u);
  std::memcpy(space->data(), "12345", 5);
  EXPECT_EQ(buffer.malloc_len(), 5u);
  EXPECT_EQ(buffer.len(), 0u);
  ASSERT_FALSE(buffer.flush());
  EXPECT_EQ(buffer.malloc_len(), 0u);
  EXPECT_EQ(str(*buffer.next(5)), "12345");
}

TEST_F(LinkBufferMallocTest, MallocAckKeepsPrefixAcrossNodes) {
  LinkBuffer buffer;
  auto a = buffer.malloc(3000);
  ASSERT_TRUE(a);
  std::memset(a->data(), 'a', a->size());
  auto b = buffer.malloc(3000);  // does not fit the first node: a second one
  ASSERT_TRUE(b);
  std::memset(b->data(), 'b', b->size());
  auto c = buffer.malloc(5000);  // a third node, discarded below
  ASSERT_TRUE(c);
  EXPECT_EQ(buffer.malloc_len(), 11000u);
  ASSERT_FALSE(buffer.malloc_ack(3500));
  EXPECT_EQ(buffer.malloc_len(), 3500u);
  ASSERT_FALSE(buffer.flush());
  EXPECT_EQ(buffer.len(), 3500u);
  EXPECT_EQ(*buffer.read_string(3500), std::string(3000, 'a') + std::string(500, 'b'));
  // The next malloc continues after the kept bytes.
  ASSERT_TRUE(buffer.malloc(1));
  ASSERT_FALSE(buffer.malloc_ack(0));
  ASSERT_FALSE(buffer.flush());
  EXPECT_EQ(buffer.len(), 0u);
}

TEST_F(LinkBufferMallocTest, MallocAckBeyondMallocLenIsInvalid) {
  LinkBuffer buffer;
  ASSERT_TRUE(buffer.malloc(10));
  EXPECT_EQ(buffer.malloc_ack(11), std::errc::invalid_argument);
  EXPECT_EQ(buffer.malloc_len(), 10u);
  ASSERT_FALSE(buffer.malloc_ack(0));
}

TEST_F(LinkBufferMallocTest, MallocOfAnImpossibleSizeIsAnErrorNotAWrap) {
  LinkBuffer b;
  auto r = b.malloc(std::numeric_limits<size_t>::max() - 8);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::make_error_code(std::errc::value_too_large));
  EXPECT_EQ(b.malloc_len(), 0u);
}

TEST_F(LinkBufferMallocTest, WriteBinaryLargeCopySpansNodes) {
  LinkBuffer buffer;
  std::string big(100000, '\0');
  for (size_t i = 0; i < big.size(); ++i) {
    big[i] = pattern(i);
  }
  ASSERT_FALSE(buffer.write_binary(bytes_of(big)));  // no callback: always copied
  ASSERT_FALSE(buffer.flush());
  EXPECT_GT(iovec_count(buffer), 1);
  EXPECT_EQ(*buffer.read_string(big.size()), big);
}

// ---- book / book_ack ------------------------------------------------------------------------

TEST_F(LinkBufferBookTest, BookAckMakesBytesReadableAtOnce) {
  LinkBuffer buffer;
  std::span<char> space = buffer.book(8, 4096);
  ASSERT_EQ(space.size(), 8u);
  std::memcpy(space.data(), "abcdef", 6);
  EXPECT_EQ(buffer.book_ack(6), 6u);
  EXPECT_EQ(buffer.len(), 6u);
  EXPECT_EQ(str(*buffer.next(6)), "abcdef");
}

TEST_F(LinkBufferBookTest, BookAckZeroUndoesBooking) {
  LinkBuffer buffer;
  std::span<char> first = buffer.book(16, 4096);
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(buffer.book_ack(0), 0u);
  std::span<char> again = buffer.book(16, 4096);
  EXPECT_EQ(again.data(), first.data());  // the same space is offered again
  EXPECT_EQ(buffer.book(16, 4096).data(), first.data());  // booking twice: same space
  std::memcpy(again.data(), "xy", 2);
  EXPECT_EQ(buffer.book_ack(2), 2u);
  EXPECT_EQ(str(*buffer.next(2)), "xy");
}

TEST_F(LinkBufferBookTest, BookGrowsNewNodeWhenTailIsFull) {
  LinkBuffer buffer;
  size_t total = 0;
  std::span<char> space = buffer.book(1 << 20, 256);
  const size_t node_room = space.size();
  ASSERT_GE(node_room, 256u);
  std::memset(space.data(), 'x', space.size());
  total = buffer.book_ack(space.size());
  EXPECT_EQ(iovec_count(buffer), 1);
  std::span<char> next_space = buffer.book(100, 256);  // tail full: a new node
  ASSERT_EQ(next_space.size(), 100u);
  std::memset(next_space.data(), 'y', 100);
  total = buffer.book_ack(100);
  EXPECT_EQ(total, node_room + 100);
  EXPECT_EQ(iovec_count(buffer), 2);
  auto all = buffer.next(total);
  ASSERT_TRUE(all);
  EXPECT_EQ(str(*all), std::string(node_room, 'x') + std::string(100, 'y'));
}

TEST_F(LinkBufferBookTest, BookAckBeyondBookingThrows) {
  LinkBuffer buffer;
  std::span<char> space = buffer.book(4, 4096);
  ASSERT_EQ(space.size(), 4u);
  std::memcpy(space.data(), "abcd", 4);
  EXPECT_THROW(static_cast<void>(buffer.book_ack(5)), std::logic_error);
  EXPECT_EQ(buffer.book_ack(4), 4u);  // the booking survived the refused ack
  EXPECT_THROW(static_cast<void>(buffer.book_ack(1)), std::logic_error);  // already acked
  ASSERT_TRUE(buffer.malloc(1));
  EXPECT_THROW(static_cast<void>(buffer.book(4, 4096)), std::logic_error);  // mixing
  ASSERT_FALSE(buffer.malloc_ack(0));
}

// ---- write_binary without copy -------------------------------------------------------------

TEST_F(LinkBufferNoCopyTest, LargeWriteLinksCallerMemoryAndCallsBackOnceAtRelease) {
  std::vector<char> data(3 * LinkBuffer::kNoCopyThreshold, 'z');
  int released = 0;
  LinkBuffer buffer;
  ASSERT_FALSE(buffer.write_binary(bytes_of("head")));
  ASSERT_FALSE(buffer.write_binary(std::span<const char>(data), [&released] { ++released; }));
  ASSERT_FALSE(buffer.write_binary(bytes_of("tail")));
  ASSERT_FALSE(buffer.flush());
  iovec iov[4];
  ASSERT_EQ(buffer.get_bytes(iov), 3);
  EXPECT_EQ(iov[1].iov_base, data.data());  // linked, not copied
  ASSERT_FALSE(buffer.skip(4 + data.size()));
  buffer.release();
  EXPECT_EQ(released, 1);
  EXPECT_EQ(str(*buffer.next(4)), "tail");
  buffer.release();
  EXPECT_EQ(released, 1);
}

TEST_F(LinkBufferNoCopyTest, CallbackWaitsForSlicesAndRunsOnDestruction) {
  std::vector<char> data(LinkBuffer::kNoCopyThreshold + 1, 'q');
  int released = 0;
  std::optional<LinkBuffer> slice;
  {
    LinkBuffer buffer;
    ASSERT_FALSE(buffer.write_binary(std::span<const char>(data), [&released] { ++released; }));
    ASSERT_FALSE(buffer.flush());
    auto s = buffer.slice(10);
    ASSERT_TRUE(s);
    slice.emplace(std::move(*s));
  }
  EXPECT_EQ(released, 0);  // the slice still reads the caller's memory
  EXPECT_EQ(*slice->read_string(10), std::string(10, 'q'));
  slice.reset();
  EXPECT_EQ(released, 1);
}

TEST_F(LinkBufferNoCopyTest, SmallWriteCopiesAndCallsBackAtOnce) {
  int released = 0;
  std::string data(LinkBuffer::kNoCopyThreshold, 's');
  LinkBuffer buffer;
  ASSERT_FALSE(buffer.write_binary(bytes_of(data), [&released] { ++released; }));
  EXPECT_EQ(released, 1);
  data.assign(data.size(), 'S');  // the buffer holds its own copy
  ASSERT_FALSE(buffer.flush());
  EXPECT_EQ(*buffer.read_string(4), "ssss");
}

TEST_F(LinkBufferNoCopyTest, MallocAckDiscardingLinkedNodeCallsBack) {
  std::vector<char> data(2 * LinkBuffer::kNoCopyThreshold, 'n');
  int released = 0;
  LinkBuffer buffer;
  ASSERT_FALSE(buffer.write_binary(bytes_of("keep")));
  ASSERT_FALSE(buffer.write_binary(std::span<const char>(data), [&released] { ++released; }));
  ASSERT_FALSE(buffer.malloc_ack(4));
  EXPECT_EQ(released, 1);
  ASSERT_FALSE(buffer.flush());
  EXPECT_EQ(*buffer.read_string(4), "keep");
}

// ---- append ----------------------------------------------------------------------------------

TEST_F(LinkBufferAppendTest, AppendMovesReadableNodesToTail) {
  LinkBuffer a;
  fill_segments(a, {"first-"});
  LinkBuffer b;
  fill_segments(b, {"xxsecond", "-third"});
  ASSERT_FALSE(b.skip(2));
  ASSERT_FALSE(b.write_binary(bytes_of("-pending")));  // flushed by append
  ASSERT_FALSE(a.append(std::move(b)));
  EXPECT_EQ(b.len(), 0u);  // NOLINT(bugprone-use-after-move): documented state
  EXPECT_EQ(a.len(), 6u);  // appended bytes are readable at a's flush
  EXPECT_EQ(a.malloc_len(), 20u);
  ASSERT_FALSE(a.flush());
  EXPECT_EQ(*a.read_string(a.len()), "first-second-third-pending");
  EXPECT_EQ(a.append(std::move(a)), std::errc::invalid_argument);
}

// ---- threads ---------------------------------------------------------------------------------

// The poller's input path against a reader (netpoll inputs/inputAck with an auto-growing
// bookSize): 64 MiB through book/book_ack on one thread and next/release on another.
TEST_F(LinkBufferThreadTest, BookAndNextThreadsMove64MiBByteExact) {
  constexpr uint64_t kTotal = uint64_t{64} << 20;
  constexpr size_t kMaxBuffered = size_t{8} << 20;
  LinkBuffer buffer;
  std::atomic<bool> reader_failed{false};

  std::thread writer([&] {
    uint64_t written = 0;
    size_t book_size = 4096;
    size_t max_size = 8192;
    uint32_t rng = 12345;
    while (written < kTotal && !reader_failed.load(std::memory_order_relaxed)) {
      if (buffer.len() > kMaxBuffered) {
        std::this_thread::yield();
        continue;
      }
      std::span<char> space = buffer.book(book_size, max_size);
      rng = rng * 1103515245u + 12345u;
      size_t n = std::min<uint64_t>(space.size(), kTotal - written);
      if ((rng >> 16) % 7 == 0) {
        n = (rng >> 8) % (n + 1);  // a short read, sometimes 0 (book_ack(0))
      }
      for (size_t i = 0; i < n; ++i) {
        space[i] = pattern(written + i);
      }
      const size_t len = buffer.book_ack(n);
      written += n;
      if (n == book_size && book_size < (size_t{1} << 20)) {
        book_size <<= 1;  // netpoll inputAck: grow bookSize when a read filled it
      }
      max_size = std::clamp<size_t>(len, max_size, size_t{8} << 20);
    }
  });

  uint64_t read = 0;
  uint32_t rng = 777;
  while (read < kTotal) {
    rng = rng * 1103515245u + 12345u;
    const size_t want = std::min<uint64_t>(1 + (rng >> 8) % 100000, kTotal - read);
    if (buffer.len() < want) {
      std::this_thread::yield();
      continue;
    }
    auto bytes = buffer.next(want);
    ASSERT_TRUE(bytes) << bytes.error().message();
    for (size_t i = 0; i < want; ++i) {
      if ((*bytes)[i] != pattern(read + i)) {
        reader_failed = true;
        writer.join();
        FAIL() << "byte " << (read + i) << " differs";
      }
    }
    read += want;
    if ((rng >> 4) % 3 == 0) {
      buffer.release();
    }
  }
  writer.join();
  buffer.release();
  EXPECT_EQ(buffer.len(), 0u);
}

// The output path: a writer with malloc/flush, copies and no-copy writes; a reader with
// peek, slices (released on the reader thread after the source moved on) and skip.
TEST_F(LinkBufferThreadTest, MallocFlushAndSliceThreadsMove16MiBByteExact) {
  constexpr uint64_t kTotal = uint64_t{16} << 20;
  constexpr size_t kMaxBuffered = size_t{4} << 20;
  LinkBuffer buffer;
  std::atomic<int> callbacks{0};
  std::atomic<int> linked{0};
  std::atomic<bool> reader_failed{false};

  std::thread writer([&] {
    uint64_t written = 0;
    uint32_t rng = 99;
    std::vector<std::vector<char>> owned;  // caller memory for no-copy writes
    while (written < kTotal && !reader_failed.load(std::memory_order_relaxed)) {
      if (buffer.len() > kMaxBuffered) {
        std::this_thread::yield();
        continue;
      }
      rng = rng * 1103515245u + 12345u;
      const size_t n = std::min<uint64_t>(1 + (rng >> 8) % 20000, kTotal - written);
      switch ((rng >> 4) % 3) {
        case 0: {
          auto space = buffer.malloc(n + 16);
          ASSERT_TRUE(space);
          for (size_t i = 0; i < n; ++i) {
            (*space)[i] = pattern(written + i);
          }
          ASSERT_FALSE(buffer.malloc_ack(buffer.malloc_len() - 16));
          break;
        }
        case 1: {
          std::vector<char> copy(n);
          for (size_t i = 0; i < n; ++i) {
            copy[i] = pattern(written + i);
          }
          ASSERT_FALSE(buffer.write_binary(std::span<const char>(copy)));
          break;
        }
        default: {
          auto* memory = new std::vector<char>(n);
          for (size_t i = 0; i < n; ++i) {
            (*memory)[i] = pattern(written + i);
          }
          if (n > LinkBuffer::kNoCopyThreshold) {
            linked.fetch_add(1, std::memory_order_relaxed);
          }
          ASSERT_FALSE(buffer.write_binary(std::span<const char>(*memory), [memory, &callbacks] {
            delete memory;
            callbacks.fetch_add(1, std::memory_order_relaxed);
          }));
          break;
        }
      }
      written += n;
      if ((rng >> 12) % 2 == 0) {
        ASSERT_FALSE(buffer.flush());
      }
    }
    ASSERT_FALSE(buffer.flush());
  });

  uint64_t read = 0;
  uint32_t rng = 4242;
  std::vector<LinkBuffer> slices;
  auto check = [&](std::span<const char> bytes) {
    for (size_t i = 0; i < bytes.size(); ++i) {
      if (bytes[i] != pattern(read + i)) {
        return false;
      }
    }
    return true;
  };
  while (read < kTotal) {
    rng = rng * 1103515245u + 12345u;
    const size_t want = std::min<uint64_t>(1 + (rng >> 8) % 30000, kTotal - read);
    if (buffer.len() < want) {
      std::this_thread::yield();
      continue;
    }
    bool ok = true;
    if ((rng >> 4) % 2 == 0) {
      auto bytes = buffer.peek(want);
      ok = bytes && check(*bytes) && !buffer.skip(want);
    } else {
      auto slice = buffer.slice(want);
      ok = slice && slice->len() == want;
      if (ok) {
        auto bytes = slice->next(want);
        ok = bytes && check(*bytes);
        slices.push_back(std::move(*slice));  // released later, after the source moved on
      }
    }
    if (!ok) {
      reader_failed = true;
      writer.join();
      FAIL() << "bytes from " << read << " differ";
    }
    read += want;
    buffer.release();
    if (slices.size() > 16) {
      slices.clear();
    }
  }
  writer.join();
  slices.clear();
  buffer.release();
  EXPECT_EQ(buffer.len(), 0u);
  EXPECT_GE(callbacks.load(), linked.load());
}

// ---- AddressSanitizer: a use after release is reported ---------------------------------------

TEST_F(LinkBufferDeathTest, ReadAfterReleaseIsReportedUnderAsan) {
  if constexpr (!NodePool::kBypassCaches) {
    GTEST_SKIP() << "needs AddressSanitizer (the pool bypasses its caches only there)";
  }
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        LinkBuffer buffer;
        static_cast<void>(buffer.write_binary(bytes_of("0123456789")));
        static_cast<void>(buffer.flush());
        std::span<const char> bytes = *buffer.next(10);
        static_cast<void>(buffer.malloc(LinkBuffer::kMinNodeBytes));  // a second node
        static_cast<void>(buffer.flush());
        buffer.release();  // frees the first node: `bytes` dangles
        volatile char c = bytes[0];
        static_cast<void>(c);
      },
      "heap-use-after-free");
}

TEST_F(LinkBufferDeathTest, ReadAfterDestructionIsReportedUnderAsan) {
  if constexpr (!NodePool::kBypassCaches) {
    GTEST_SKIP() << "needs AddressSanitizer (the pool bypasses its caches only there)";
  }
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::span<const char> bytes;
        {
          LinkBuffer buffer;
          static_cast<void>(buffer.write_binary(bytes_of("abc")));
          static_cast<void>(buffer.flush());
          bytes = *buffer.next(3);
        }
        volatile char c = bytes[1];
        static_cast<void>(c);
      },
      "heap-use-after-free");
}

}  // namespace
}  // namespace faultloop
