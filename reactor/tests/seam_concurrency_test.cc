// The engine under concurrent seam calls (label faults; run under TSan in the tsan preset):
// per-rule counters shared by threads, synthetic events queued from many threads to a blocked
// poller, plans swapped while threads call, and open/close churn through the ledger.
#include <sys/epoll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "faults/engine.h"
#include "faults/fd_ledger.h"
#include "faults/plan.h"
#include "harness/testing/fault_test.h"
#include "reactor/sys/sys.h"
#include "reactor/tests/test_sockets.h"

namespace faultloop {
namespace {

using testing::SeamSocketPair;

class SeamConcurrencyTest : public testing::FaultTest {
 protected:
  /// `threads` threads, each with its own socketpair, make `calls` one-byte reads each.
  /// Returns how many failed with EINTR in all.
  static int concurrent_eintr_reads(int threads, int calls) {
    std::vector<std::unique_ptr<SeamSocketPair>> pairs;
    for (int t = 0; t < threads; ++t) {
      pairs.push_back(std::make_unique<SeamSocketPair>(uint64_t(t) + 1));
      testing::write_all_raw(pairs.back()->peer(), std::string(static_cast<size_t>(calls), 'x'));
    }
    std::atomic<int> failed{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, fd = pairs[static_cast<size_t>(t)]->sut()] {
        sys::set_thread_kind("worker");
        for (int i = 0; i < calls; ++i) {
          char c;
          const ssize_t n = sys::read(fd, &c, 1);
          if (n == -1 && errno == EINTR) {
            failed.fetch_add(1);
          } else {
            EXPECT_EQ(n, 1);
          }
        }
      });
    }
    for (auto& w : workers) {
      w.join();
    }
    return failed.load();
  }
};

TEST_F(SeamConcurrencyTest, CountCapHoldsExactlyAcrossThreads) {
  ASSERT_TRUE(arm("reactor/sys/read:error=EINTR,count=50"));
  EXPECT_EQ(concurrent_eintr_reads(4, 150), 50);
  const auto stats = faults::rule_stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].eligible, 600u);
  EXPECT_EQ(stats[0].injected, 50u);
}

TEST_F(SeamConcurrencyTest, EveryGateCountsEligibleCallsOfAllThreads) {
  ASSERT_TRUE(arm("reactor/sys/read:error=EINTR,every=3"));
  EXPECT_EQ(concurrent_eintr_reads(4, 150), 200);  // calls 3, 6, ... 600 of the rule
}

TEST_F(SeamConcurrencyTest, EventsQueuedFromManyThreadsWakeTheBlockedPoller) {
  constexpr int kProducers = 3;
  constexpr int kRounds = 40;
  std::vector<std::unique_ptr<SeamSocketPair>> pairs;
  const int epfd = sys::epoll_create1(EPOLL_CLOEXEC);
  ASSERT_GE(epfd, 0);
  for (int p = 0; p < kProducers; ++p) {
    pairs.push_back(std::make_unique<SeamSocketPair>(uint64_t(p) + 1));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = uint64_t(p);
    ASSERT_EQ(sys::epoll_ctl(epfd, EPOLL_CTL_ADD, pairs.back()->sut(), &ev), 0);
  }
  std::atomic<int> seen[kProducers] = {};
  std::atomic<bool> stop{false};
  std::atomic<int> foreign{0};
  std::thread poller([&] {
    sys::set_thread_kind("poller");
    while (!stop.load()) {
      epoll_event evs[4];
      const int n = sys::epoll_wait(epfd, evs, 4, 2000);
      for (int i = 0; i < n; ++i) {
        if (evs[i].data.u64 < uint64_t(kProducers)) {
          seen[evs[i].data.u64].fetch_add(1);
        } else {
          foreign.fetch_add(1);
        }
      }
    }
  });
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      const int fd = pairs[static_cast<size_t>(p)]->sut();
      for (int round = 1; round <= kRounds; ++round) {
        EXPECT_EQ(faults::queue_event(fd, EPOLLIN), 1);
        // Ping-pong: the next event only after the poller delivered this one.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (seen[p].load() < round && std::chrono::steady_clock::now() < deadline) {
          std::this_thread::yield();
        }
        ASSERT_GE(seen[p].load(), round) << "producer " << p << " round " << round;
      }
    });
  }
  for (auto& t : producers) {
    t.join();
  }
  stop.store(true);
  faults::queue_event(pairs[0]->sut(), EPOLLIN);  // wake the poller so it sees `stop`
  poller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(foreign.load(), 0);
  pairs.clear();
  EXPECT_EQ(sys::close(epfd), 0);
}

TEST_F(SeamConcurrencyTest, PlansSwappedWhileThreadsCallStaySafe) {
  SeamSocketPair a(1), b(2);
  std::atomic<bool> stop{false};
  auto caller = [&](int fd) {
    sys::set_thread_kind("worker");
    while (!stop.load(std::memory_order_relaxed)) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      const int rc = sys::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
      EXPECT_TRUE(rc == 0 || errno == ENOBUFS) << "errno " << errno;
    }
  };
  std::thread t1(caller, a.sut()), t2(caller, b.sut());
  const faults::Plan plans[] = {
      faults::parse_plan("reactor/sys/getsockname:error=ENOBUFS,probability=0.5"),
      faults::parse_plan("reactor/sys/getsockname:error=ENOBUFS,every=2,thread=worker"),
      faults::parse_plan("reactor/sys/getsockname:yield,conn=1")};
  for (int i = 0; i < 60; ++i) {
    faults::arm(plans[i % 3], seed(), uint64_t(i));
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (i % 4 == 3) {
      faults::disarm();
    }
  }
  stop.store(true);
  t1.join();
  t2.join();
}

TEST_F(SeamConcurrencyTest, OpenCloseChurnOnManyThreadsKeepsTheLedgerExact) {
  faults::set_scenario_armed(true);
  const int64_t base = sys::fds_open();
  const auto before = faults::ledger_counts();
  constexpr int kThreads = 4;
  constexpr int kRounds = 300;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kRounds; ++i) {
        const int fd = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(fd, 0);
        const uint64_t conn = uint64_t(t) * 100000 + uint64_t(i) + 1;
        sys::tag(fd, "conn", conn);
        sys::ConnScope scope(conn);
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        EXPECT_EQ(sys::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len), 0);
        EXPECT_EQ(sys::close(fd), 0);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  const auto v = faults::violations();
  EXPECT_TRUE(v.empty()) << (v.empty() ? std::string() : v.front().to_string());
  const auto after = faults::ledger_counts();
  EXPECT_EQ(after.opened - before.opened, uint64_t(kThreads * kRounds));
  EXPECT_EQ(after.closed - before.closed, uint64_t(kThreads * kRounds));
  EXPECT_EQ(sys::fds_open(), base);
}

}  // namespace
}  // namespace faultloop
