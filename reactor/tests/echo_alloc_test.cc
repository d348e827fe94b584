// No heap allocation per round trip on the inline echo path (issue 4, "Speed"). This binary
// replaces the global operator new/delete with counting versions; the poll thread counts while
// a client runs 64-byte ping-pong round trips against an inline echo Connection after a
// warm-up. Steady state must allocate nothing: the buffers' nodes come from NodePool's thread
// cache, dispatch runs the handler directly (no task object), and the handler's next()/
// write_binary()/flush() only move pointers. Also counts malloc-sized NodePool growth through
// the pool's own counters.
//
// Skipped under sanitizers (they replace operator new themselves).
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "harness/testing/fault_test.h"
#include "reactor/connection.h"
#include "reactor/executor.h"
#include "reactor/poll.h"
#include "reactor/tests/conn_helpers.h"
#include "reactor/tests/loop_helpers.h"

namespace {

std::atomic<uint64_t> g_counted_news{0};
thread_local bool t_counting = false;

}  // namespace

// Counting replacements of the global allocation functions (every form a new-expression uses
// in this binary goes through these). g++ cannot see that these frees pair with the malloc in
// the replaced operator new and warns.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
  if (t_counting) {
    g_counted_news.fetch_add(1, std::memory_order_relaxed);
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) {
    return p;
  }
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace faultloop {
namespace {

using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

class EchoAllocTest : public testing::FaultTest {};

TEST_F(EchoAllocTest, TheCounterSeesAnAllocationOnThePollThread) {
  // The control: the measurement below can fail.
  if (kSanitized) {
    GTEST_SKIP() << "sanitizers replace operator new";
  }
  auto poll = Poll::create();
  ASSERT_TRUE(poll);
  (*poll)->start();
  const uint64_t before = g_counted_news.load();
  testing::on_loop(**poll, [] {
    t_counting = true;
    auto* volatile s = new std::string(100, 'x');
    delete s;
    t_counting = false;
  });
  EXPECT_GE(g_counted_news.load() - before, 1u);
  (*poll)->stop();
}

TEST_F(EchoAllocTest, InlineEchoRoundTripsAllocateNothingAtSteadyState) {
  if (kSanitized) {
    GTEST_SKIP() << "sanitizers replace operator new";
  }
  auto poll = Poll::create();
  ASSERT_TRUE(poll);
  (*poll)->start();
  InlineExecutor inline_executor;
  auto p = testing::unix_pair();
  auto conn = Connection::create(
      p.sut, **poll, inline_executor,
      std::make_shared<const ConnectionHandlers>(ConnectionHandlers{.on_request = testing::echo}),
      {});
  ASSERT_FALSE(conn->start());

  const std::string msg = testing::pattern(64);
  auto round_trips = [&](int n) {
    char buf[64];
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(::send(p.peer, msg.data(), msg.size(), 0), 64);
      std::size_t got = 0;
      while (got < sizeof buf) {
        const ssize_t r = ::recv(p.peer, buf + got, sizeof buf - got, 0);
        ASSERT_GT(r, 0);
        got += static_cast<std::size_t>(r);
      }
      ASSERT_EQ(std::string(buf, sizeof buf), msg);
    }
  };
  round_trips(2000);  // warm-up: nodes cached, vectors grown, timers wheel settled
  testing::on_loop(**poll, [] { t_counting = true; });
  const uint64_t before = g_counted_news.load();
  constexpr int kRounds = 20000;
  round_trips(kRounds);
  const uint64_t allocations = g_counted_news.load() - before;
  testing::on_loop(**poll, [] { t_counting = false; });
  // Every round trip crossed the poll thread: a per-request allocation would count >= 20000.
  EXPECT_EQ(allocations, 0u) << "allocations on the poll thread over " << kRounds
                             << " round trips";
  RecordProperty("allocations_per_round_trip",
                 std::to_string(static_cast<double>(allocations) / kRounds));

  conn->close();
  ASSERT_TRUE(testing::eventually([&] { return conn->finalized(); }));
  ::close(p.peer);
  (*poll)->stop();
}

}  // namespace
}  // namespace faultloop
