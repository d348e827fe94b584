// Connection under injected faults (label faults: fault builds only). Byte-exact echo under
// EAGAIN, EINTR and short transfers on the poller's readv and on both senders' sendmsg; an
// injected reset closes by the poller exactly once; delays at the close race's race points
// (race_points.h) widen the windows between the close CAS, the processing unlock, the detach
// and the fd close while the user and the peer close at once — exactly one winner, each close
// callback once, the fd closed once (the ledger, checked by FaultTest), every node released.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "harness/testing/fault_test.h"
#include "reactor/connection.h"
#include "reactor/errc.h"
#include "reactor/executor.h"
#include "reactor/observer.h"
#include "reactor/poll.h"
#include "reactor/race_points.h"
#include "reactor/tests/conn_helpers.h"
#include "reactor/tests/loop_helpers.h"

namespace faultloop {
namespace {

using namespace std::chrono_literals;
using testing::echo;
using testing::eventually;
using testing::pattern;
using testing::recv_n;
using testing::send_all;

enum class Exec { kInline, kPool };

class ConnectionFaultsTest
    : public testing::ConnectionFixture,
      public ::testing::WithParamInterface<std::tuple<TriggerMode, Exec>> {
 protected:
  void SetUp() override {
    FaultTest::SetUp();
    start_poll(std::get<0>(GetParam()));
    executor_ = std::get<1>(GetParam()) == Exec::kPool ? static_cast<Executor*>(&pool())
                                                       : &inline_;
  }

  ConnectionPtr start(testing::Pair pair, ConnectionHandlers handlers) {
    return ConnectionFixture::start(pair, std::move(handlers), executor_);
  }

  void echo_round(std::size_t bytes) {
    auto p = testing::tcp_pair();
    start(p, {.on_request = echo});
    const std::string data = pattern(bytes);
    std::thread writer([&] { send_all(p.peer, data); });
    const std::string back = recv_n(p.peer, data.size());
    writer.join();
    EXPECT_EQ(back.size(), data.size());
    EXPECT_TRUE(back == data) << "first difference at "
                              << std::mismatch(back.begin(), back.end(), data.begin()).first -
                                     back.begin();
  }

  Executor* executor_ = nullptr;
};

INSTANTIATE_TEST_SUITE_P(
    Modes, ConnectionFaultsTest,
    ::testing::Combine(::testing::Values(TriggerMode::kLevel, TriggerMode::kEdge),
                       ::testing::Values(Exec::kInline, Exec::kPool)),
    [](const auto& param_info) {
      return std::string(std::get<0>(param_info.param) == TriggerMode::kLevel ? "Level"
                                                                              : "Edge") +
             (std::get<1>(param_info.param) == Exec::kInline ? "Inline" : "Pool");
    });

TEST_P(ConnectionFaultsTest, EchoIsByteExactUnderEagainAndShortTransfers) {
  ASSERT_TRUE(arm("reactor/sys/sendmsg:short=1,probability=0.5,role=conn;"
                  "reactor/sys/readv:error=EAGAIN,probability=0.3,role=conn"));
  echo_round(256 * 1024);
}

TEST_P(ConnectionFaultsTest, EchoIsByteExactUnderEintrAndPercentShortWrites) {
  ASSERT_TRUE(arm("reactor/sys/readv:error=EINTR,probability=0.3,role=conn;"
                  "reactor/sys/sendmsg:short=30%,probability=0.5,role=conn;"
                  "reactor/sys/sendmsg:error=EAGAIN,probability=0.2,role=conn"));
  echo_round(512 * 1024);
}

TEST_P(ConnectionFaultsTest, AnInjectedResetClosesByThePollerExactlyOnce) {
  auto p = testing::tcp_pair();
  std::atomic<int> disconnects{0};
  std::atomic<int> callbacks{0};
  auto conn = start(p, {.on_request = echo,
                        .on_disconnect = [&](Connection&) { disconnects.fetch_add(1); }});
  conn->add_close_callback([&](Connection&) { callbacks.fetch_add(1); });
  send_all(p.peer, "one");
  EXPECT_EQ(recv_n(p.peer, 3), "one");
  ASSERT_TRUE(arm("reactor/sys/readv:reset,nth=1,role=conn"));
  send_all(p.peer, "two");  // the next read meets the reset
  ASSERT_TRUE(eventually([&] { return conn->finalized(); }));
  EXPECT_EQ(conn->closed_by(), CloseWho::kPoller);
  EXPECT_EQ(disconnects.load(), 1);
  EXPECT_EQ(callbacks.load(), 1);
}

TEST_P(ConnectionFaultsTest, AnInjectedHangUpEventClosesAndReleasesEverything) {
  auto p = testing::unix_pair();
  std::atomic<int> disconnects{0};
  auto conn = start(p, {.on_request = echo,
                        .on_disconnect = [&](Connection&) { disconnects.fetch_add(1); }});
  ASSERT_TRUE(arm("reactor/sys/epoll_wait:events=+HUP,nth=1,role=conn"));
  // Events rules act when epoll_wait returns (faults/engine.h): give the loop a reason to.
  send_all(p.peer, "x");
  ASSERT_TRUE(eventually([&] { return conn->finalized(); }));
  EXPECT_EQ(conn->closed_by(), CloseWho::kPoller);
  EXPECT_EQ(disconnects.load(), 1);
}

// Records the close winners and callbacks the observer sees, per connection.
class WinnerCounter final : public Observer {
 public:
  void on_event(const LifecycleEvent& event) noexcept override {
    if (event.kind == LifecycleKind::kCloseWinner) {
      winners.fetch_add(1);
    } else if (event.kind == LifecycleKind::kFdClose) {
      fd_closes.fetch_add(1);
    }
  }
  std::atomic<int> winners{0};
  std::atomic<int> fd_closes{0};
};

TEST_P(ConnectionFaultsTest, UserAndPeerCloseAtOnceResolveExactlyOnceWithStretchedWindows) {
  WinnerCounter observer;
  set_observer(&observer);
  ASSERT_TRUE(arm("reactor/race/conn/after_close_cas:delay=2ms;"
                  "reactor/race/conn/after_handler_return:yield;"
                  "reactor/race/conn/after_processing_unlock:delay=1ms,probability=0.5;"
                  "reactor/race/conn/before_detach:delay=1ms;"
                  "reactor/race/conn/after_fd_close:delay=1ms"));
  constexpr int kRounds = 30;
  for (int round = 0; round < kRounds; ++round) {
    auto p = (round % 2 == 0) ? testing::unix_pair() : testing::tcp_pair();
    std::atomic<int> disconnects{0};
    std::atomic<int> callbacks{0};
    auto conn = start(p, {.on_request = echo,
                          .on_disconnect = [&](Connection&) { disconnects.fetch_add(1); }});
    conn->add_close_callback([&](Connection&) { callbacks.fetch_add(1); });
    send_all(p.peer, "ping");
    std::thread user([&] {
      if (round % 3 != 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(100 * (round % 5)));
      }
      conn->close();
    });
    ::close(p.peer);
    forget_peer(p.peer);
    user.join();
    ASSERT_TRUE(eventually([&] { return conn->finalized(); })) << "round " << round;
    EXPECT_EQ(callbacks.load(), 1) << "round " << round;
    EXPECT_EQ(disconnects.load(), conn->closed_by() == CloseWho::kPoller ? 1 : 0)
        << "round " << round;
  }
  set_observer(nullptr);
  EXPECT_EQ(observer.winners.load(), kRounds);
  EXPECT_EQ(observer.fd_closes.load(), kRounds);
}

TEST_P(ConnectionFaultsTest, ACloseDuringARequestWithADelayedUnlockStillCompletesOnce) {
  // netpoll #304 with the window between the handler's return and the unlock stretched.
  ASSERT_TRUE(arm("reactor/race/conn/after_handler_return:delay=5ms;"
                  "reactor/race/conn/after_processing_unlock:delay=5ms"));
  for (int round = 0; round < 10; ++round) {
    auto p = testing::unix_pair();
    std::atomic<int> callbacks{0};
    std::atomic<bool> in_request{false};
    auto conn = start(p, {.on_request = [&](Connection& c) {
                            in_request = true;
                            echo(c);
                          }});
    conn->add_close_callback([&](Connection&) { callbacks.fetch_add(1); });
    send_all(p.peer, "x");
    ASSERT_TRUE(eventually([&] { return in_request.load(); }));
    conn->close();
    ASSERT_TRUE(eventually([&] { return conn->finalized(); })) << "round " << round;
    EXPECT_EQ(callbacks.load(), 1) << "round " << round;
  }
}

}  // namespace
}  // namespace faultloop
