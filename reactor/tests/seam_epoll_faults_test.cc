// The engine's epoll shadow (label faults; DESIGN "Realism"): readiness re-reported after an
// injected EAGAIN or short transfer, `-EV` rules (level mode only), synthetic events that wake
// a blocked poller and wait for the next call when they do not fit, and the engine's own
// eventfd, which must never reach the caller.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "faults/engine.h"
#include "harness/testing/fault_test.h"
#include "reactor/sys/sys.h"
#include "reactor/tests/test_sockets.h"

namespace faultloop {
namespace {

using testing::EpollSet;
using testing::SeamSocketPair;

constexpr uint64_t kData = 0xabcd0001;

/// "data=0x... events=0x..." per entry, for failure messages.
std::string describe(const std::vector<epoll_event>& evs) {
  std::string out;
  char buf[64];
  for (const auto& ev : evs) {
    std::snprintf(buf, sizeof buf, "{data=0x%llx events=0x%x} ",
                  static_cast<unsigned long long>(ev.data.u64), ev.events);
    out += buf;
  }
  return out.empty() ? "none" : out;
}

// ---- re-reported readiness ----------------------------------------------------------------

class SeamReReportTest : public testing::FaultTest {};

TEST_F(SeamReReportTest, EagainOnEdgeTriggeredReadIsReportedAgain) {
  SeamSocketPair pair(1);
  EpollSet ep;
  ASSERT_TRUE(ep.add(pair.sut(), EPOLLIN | EPOLLET, kData));
  testing::write_all_raw(pair.peer(), "ping");
  auto evs = ep.wait(0);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].events, uint32_t{EPOLLIN});
  // The kernel reports an edge once: without the engine the injected EAGAIN below would leave
  // "ping" unread forever.
  EXPECT_TRUE(ep.wait(0).empty());

  ASSERT_TRUE(arm("reactor/sys/readv:error=EAGAIN,nth=1"));
  char buf[16];
  iovec iov{buf, sizeof buf};
  EXPECT_EQ(sys::readv(pair.sut(), &iov, 1), -1);
  EXPECT_EQ(errno, EAGAIN);
  evs = ep.wait(0);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].events, uint32_t{EPOLLIN});
  EXPECT_EQ(evs[0].data.u64, kData);
  EXPECT_EQ(sys::readv(pair.sut(), &iov, 1), 4);
  EXPECT_TRUE(ep.wait(0).empty());  // reported once, like the kernel's edge
}

TEST_F(SeamReReportTest, ShortReadOnEdgeTriggeredIsReportedAgain) {
  SeamSocketPair pair(1);
  EpollSet ep;
  ASSERT_TRUE(ep.add(pair.sut(), EPOLLIN | EPOLLRDHUP | EPOLLET, kData));
  testing::write_all_raw(pair.peer(), "pingpong");
  ASSERT_EQ(ep.wait(0).size(), 1u);
  ASSERT_TRUE(arm("reactor/sys/read:short=4,nth=1"));
  char buf[16];
  EXPECT_EQ(sys::read(pair.sut(), buf, sizeof buf), 4);
  auto evs = ep.wait(0);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].events, uint32_t{EPOLLIN});
  EXPECT_EQ(evs[0].data.u64, kData);
  EXPECT_EQ(sys::read(pair.sut(), buf, sizeof buf), 4);
  EXPECT_EQ(std::string(buf, 4), "pong");
}

TEST_F(SeamReReportTest, EagainOnEdgeTriggeredWriteReportsOutOnlyWhenRegistered) {
  SeamSocketPair with_out(1);
  SeamSocketPair without_out(2);
  EpollSet ep;
  ASSERT_TRUE(ep.add(with_out.sut(), EPOLLIN | EPOLLOUT | EPOLLET, 1));
  ASSERT_TRUE(ep.add(without_out.sut(), EPOLLIN | EPOLLET, 2));
  ASSERT_EQ(ep.wait(0).size(), 1u);  // the first writability edge of `with_out`
  ASSERT_TRUE(ep.wait(0).empty());
  ASSERT_TRUE(arm("reactor/sys/writev:error=EAGAIN"));
  char byte = 'x';
  iovec iov{&byte, 1};
  EXPECT_EQ(sys::writev(with_out.sut(), &iov, 1), -1);
  EXPECT_EQ(sys::writev(without_out.sut(), &iov, 1), -1);
  const auto evs = ep.wait(0);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].data.u64, 1u);
  EXPECT_EQ(evs[0].events, uint32_t{EPOLLOUT});
}

// ---- events rules -------------------------------------------------------------------------

class SeamEventsRuleTest : public testing::FaultTest {};

TEST_F(SeamEventsRuleTest, RemoveInDefersTheEventInLevelMode) {
  SeamSocketPair pair(1);
  EpollSet ep;
  ASSERT_TRUE(ep.add(pair.sut(), EPOLLIN, kData));
  testing::write_all_raw(pair.peer(), "x");
  ASSERT_TRUE(arm("reactor/sys/epoll_wait:events=-IN,fd=" + std::to_string(pair.sut()) +
                  ",nth=1"));
  EXPECT_TRUE(ep.wait(0).empty());  // stripped on this call...
  const auto evs = ep.wait(0);      // ...and reported by the next
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].events, uint32_t{EPOLLIN});
  EXPECT_EQ(evs[0].data.u64, kData);
  EXPECT_EQ(faults::rule_stats().at(0).injected, 1u);
}

TEST_F(SeamEventsRuleTest, RemoveInNeverMakesABlockingWaitReturnZero) {
  // The kernel returns 0 only when the timeout runs out: with every entry stripped, a blocking
  // wait waits again and gets the deferred event from the next (kernel) round.
  SeamSocketPair pair(1);
  EpollSet ep;
  ASSERT_TRUE(ep.add(pair.sut(), EPOLLIN, kData));
  testing::write_all_raw(pair.peer(), "x");
  ASSERT_TRUE(arm("reactor/sys/epoll_wait:events=-IN,fd=" + std::to_string(pair.sut()) +
                  ",nth=1"));
  const auto evs = ep.wait(-1);
  ASSERT_EQ(evs.size(), 1u) << describe(evs);
  EXPECT_EQ(evs[0].events, uint32_t{EPOLLIN});
  EXPECT_EQ(evs[0].data.u64, kData);
  const auto stats = faults::rule_stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].injected, 1u);
  EXPECT_EQ(stats[0].eligible, 1u);  // one unit per (call, fd), however many kernel rounds
}

TEST_F(SeamEventsRuleTest, RemoveInIsNotAppliedInEdgeMode) {
  SeamSocketPair pair(1);
  EpollSet ep;
  ASSERT_TRUE(ep.add(pair.sut(), EPOLLIN | EPOLLET, kData));
  testing::write_all_raw(pair.peer(), "x");
  ASSERT_TRUE(arm("reactor/sys/epoll_wait:events=-IN"));
  const auto evs = ep.wait(0);
  ASSERT_EQ(evs.size(), 1u);  // a dropped edge would starve the loop: never
  EXPECT_EQ(evs[0].events, uint32_t{EPOLLIN});
  const auto stats = faults::rule_stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].eligible, 0u);
  EXPECT_EQ(stats[0].injected, 0u);
}

TEST_F(SeamEventsRuleTest, AddInReportsAFdTheKernelDidNotReport) {
  SeamSocketPair quiet(1);
  SeamSocketPair other(2);
  EpollSet ep;
  ASSERT_TRUE(ep.add(quiet.sut(), EPOLLIN, 1));
  ASSERT_TRUE(ep.add(other.sut(), EPOLLIN, 2));
  ASSERT_TRUE(arm("reactor/sys/epoll_wait:events=+IN,conn=1,nth=1"));
  const auto evs = ep.wait(0);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].data.u64, 1u);
  EXPECT_EQ(evs[0].events, uint32_t{EPOLLIN});
  char buf[4];
  EXPECT_EQ(sys::read(quiet.sut(), buf, sizeof buf), -1);  // a spurious wake-up: no data
  EXPECT_EQ(errno, EAGAIN);
}

// ---- synthetic events ---------------------------------------------------------------------

class SeamSyntheticEventTest : public testing::FaultTest {};

TEST_F(SeamSyntheticEventTest, QueuedEventWakesABlockedPoller) {
  SeamSocketPair pair(1);
  EpollSet ep;
  ASSERT_TRUE(ep.add(pair.sut(), EPOLLIN | EPOLLRDHUP, kData));
  std::atomic<bool> entered{false};
  auto poller = std::async(std::launch::async, [&] {
    sys::set_thread_kind("poller");
    epoll_event evs[8];
    entered.store(true);
    const int n = sys::epoll_wait(ep.fd(), evs, 8, 10'000);
    return std::vector<epoll_event>(evs, evs + (n < 0 ? 0 : n));
  });
  while (!entered.load()) {
    std::this_thread::yield();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // most likely blocked by now
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(faults::queue_event(pair.sut(), EPOLLIN), 1);
  ASSERT_EQ(poller.wait_for(std::chrono::seconds(5)), std::future_status::ready)
      << "the poller did not wake up";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  const auto evs = poller.get();
  ASSERT_EQ(evs.size(), 1u);  // the engine's eventfd is not among them
  EXPECT_EQ(evs[0].events, uint32_t{EPOLLIN});
  EXPECT_EQ(evs[0].data.u64, kData);
  EXPECT_TRUE(ep.wait(0).empty());  // delivered once; the wake-up is drained
  EXPECT_EQ(faults::armed_reasons(), 0u);
}

TEST_F(SeamSyntheticEventTest, EventsThatDoNotFitWaitForTheNextCall) {
  SeamSocketPair a(1), b(2), c(3);
  EpollSet ep;
  ASSERT_TRUE(ep.add(a.sut(), EPOLLIN, 1));
  ASSERT_TRUE(ep.add(b.sut(), EPOLLIN, 2));
  ASSERT_TRUE(ep.add(c.sut(), EPOLLIN, 3));
  EXPECT_EQ(faults::queue_event(a.sut(), EPOLLIN), 1);
  EXPECT_EQ(faults::queue_event(b.sut(), EPOLLIN), 1);
  EXPECT_EQ(faults::queue_event(c.sut(), EPOLLIN), 1);
  std::set<uint64_t> seen;
  const auto start = std::chrono::steady_clock::now();
  for (int call = 0; call < 3; ++call) {
    // A long timeout: queued events must be delivered at once, never after it.
    const auto evs = ep.wait(call == 0 ? 0 : 2000, /*maxevents=*/1);
    ASSERT_EQ(evs.size(), 1u) << "call " << call;
    EXPECT_EQ(evs[0].events, uint32_t{EPOLLIN});
    seen.insert(evs[0].data.u64);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
  EXPECT_EQ(seen, (std::set<uint64_t>{1, 2, 3}));
  EXPECT_TRUE(ep.wait(0, 1).empty());
}

TEST_F(SeamSyntheticEventTest, EventIsMaskedByTheInterestSet) {
  SeamSocketPair pair(1);
  EpollSet ep;
  ASSERT_TRUE(ep.add(pair.sut(), EPOLLIN, kData));
  EXPECT_EQ(faults::queue_event(pair.sut(), EPOLLOUT | EPOLLHUP), 1);
  const auto evs = ep.wait(0);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].events, uint32_t{EPOLLHUP});  // HUP always passes, OUT was not asked for
  EXPECT_EQ(faults::queue_event(pair.sut() + 1000, EPOLLIN), 0);  // registered nowhere
}

TEST_F(SeamSyntheticEventTest, EventDroppedByDelLeavesNoWakeEntryBehind) {
  SeamSocketPair pair(1);
  SeamSocketPair idle(2);
  EpollSet ep;
  ASSERT_TRUE(ep.add(pair.sut(), EPOLLIN, kData));
  ASSERT_TRUE(ep.add(idle.sut(), EPOLLIN, 2));
  EXPECT_EQ(faults::queue_event(pair.sut(), EPOLLIN), 1);
  ASSERT_EQ(sys::epoll_ctl(ep.fd(), EPOLL_CTL_DEL, pair.sut(), nullptr), 0);
  // Nothing is pending any more: the next wait reports nothing, and above all not the
  // engine's eventfd (a level-triggered entry the caller cannot consume: a busy loop).
  for (int call = 0; call < 2; ++call) {
    const auto evs = ep.wait(0);
    EXPECT_TRUE(evs.empty()) << "call " << call << ": " << describe(evs);
  }
}

TEST_F(SeamSyntheticEventTest, EventDroppedByCloseLeavesNoWakeEntryBehind) {
  SeamSocketPair pair(1);
  SeamSocketPair idle(2);
  EpollSet ep;
  ASSERT_TRUE(ep.add(pair.sut(), EPOLLIN, kData));
  ASSERT_TRUE(ep.add(idle.sut(), EPOLLIN, 2));
  EXPECT_EQ(faults::queue_event(pair.sut(), EPOLLIN), 1);
  pair.close_sut();
  for (int call = 0; call < 2; ++call) {
    const auto evs = ep.wait(0);
    EXPECT_TRUE(evs.empty()) << "call " << call << ": " << describe(evs);
  }
}

}  // namespace
}  // namespace faultloop
