// Poll and PollManager on real sockets (label unit: nothing is injected). The socket end under
// test enters the seam with sys::adopt and is closed through sys::close, so FaultTest's leak
// check covers it; peers are raw.
#include "reactor/poll.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness/testing/fault_test.h"
#include "reactor/poll_manager.h"
#include "reactor/tests/loop_helpers.h"
#include "reactor/sys/sys.h"

namespace faultloop {
namespace {

using namespace std::chrono_literals;
using testing::eventually;
using testing::on_loop;

/// A socketpair: `sut` through the seam (adopted), `peer` raw. Closes what is left.
struct Pair {
  int sut = -1;
  int peer = -1;
  Pair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
      ADD_FAILURE() << "socketpair: " << std::strerror(errno);
      return;
    }
    sut = sv[0];
    peer = sv[1];
    sys::adopt(sut, "conn");
  }
  ~Pair() {
    close_sut();
    close_peer();
  }
  void close_sut() {
    if (sut >= 0) {
      sys::close(sut);
      sut = -1;
    }
  }
  void close_peer() {
    if (peer >= 0) {
      ::close(peer);
      peer = -1;
    }
  }
};

/// Reads through inputs()/input_ack() into a string; writes `out` through outputs().
class EchoProbe : public FDOperator {
 public:
  explicit EchoProbe(int fd) : FDOperator(fd), buf_(4096) {}

  int inputs(std::span<iovec> out) noexcept override {
    out[0] = {buf_.data(), buf_.size()};
    return 1;
  }
  void input_ack(const io_ops::IoResult& r) noexcept override {
    std::lock_guard lock(mu_);
    ++acks_;
    if (r.is_done()) {
      received_.append(buf_.data(), r.bytes);
    } else if (r.is_eof()) {
      eof_ = true;
    }
  }
  int outputs(std::span<iovec> out) noexcept override {
    std::lock_guard lock(mu_);
    if (out_.size() == sent_) {
      return 0;
    }
    out[0] = {out_.data() + sent_, out_.size() - sent_};
    return 1;
  }
  void output_ack(const io_ops::IoResult& r) noexcept override {
    std::lock_guard lock(mu_);
    if (r.is_done()) {
      sent_ += r.bytes;
    }
  }
  void on_hup() noexcept override { hups_.fetch_add(1); }

  void set_output(std::string s) {
    std::lock_guard lock(mu_);
    out_ = std::move(s);
    sent_ = 0;
  }
  std::string received() {
    std::lock_guard lock(mu_);
    return received_;
  }
  bool eof() {
    std::lock_guard lock(mu_);
    return eof_;
  }
  int acks() {
    std::lock_guard lock(mu_);
    return acks_;
  }
  std::size_t sent() {
    std::lock_guard lock(mu_);
    return sent_;
  }
  int hups() const { return hups_.load(); }

 private:
  std::vector<char> buf_;
  std::mutex mu_;
  std::string received_;
  std::string out_;
  std::size_t sent_ = 0;
  bool eof_ = false;
  int acks_ = 0;
  std::atomic<int> hups_{0};
};

class PollTest : public testing::FaultTest, public ::testing::WithParamInterface<TriggerMode> {
 protected:
  void SetUp() override {
    FaultTest::SetUp();
    PollOptions options;
    options.trigger = GetParam();
    auto poll = Poll::create(options);
    ASSERT_TRUE(poll) << poll.error().message();
    poll_ = std::move(*poll);
    poll_->start();
  }
  void TearDown() override {
    poll_.reset();
    FaultTest::TearDown();
  }
  std::unique_ptr<Poll> poll_;
};

TEST_P(PollTest, QueuedTaskRunsOnTheLoopThread) {
  const auto id = on_loop(*poll_, [this] {
    EXPECT_TRUE(poll_->in_loop_thread());
    return std::this_thread::get_id();
  });
  EXPECT_NE(id, std::this_thread::get_id());
  EXPECT_FALSE(poll_->in_loop_thread());
}

TEST_P(PollTest, ReadableOperatorReceivesBytesThroughInputAck) {
  Pair pair;
  auto op = std::make_shared<EchoProbe>(pair.sut);
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kReadable); }));
  ASSERT_EQ(::write(pair.peer, "hello", 5), 5);
  EXPECT_TRUE(eventually([&] { return op->received() == "hello"; })) << op->received();
  ASSERT_EQ(::write(pair.peer, " world", 6), 6);
  EXPECT_TRUE(eventually([&] { return op->received() == "hello world"; })) << op->received();
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kDetach); }));
  EXPECT_EQ(on_loop(*poll_, [&] { return poll_->registered(); }), 0u);
}

TEST_P(PollTest, PeerCloseDeliversDataThenEofThenOneHangUp) {
  Pair pair;
  auto op = std::make_shared<EchoProbe>(pair.sut);
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kReadable); }));
  ASSERT_EQ(::write(pair.peer, "last words", 10), 10);
  pair.close_peer();  // AF_UNIX: the sut end sees IN|RDHUP|HUP
  EXPECT_TRUE(eventually([&] { return op->hups() == 1; }));
  EXPECT_EQ(op->received(), "last words");  // every byte before the FIN (netpoll #278)
  EXPECT_TRUE(op->eof());
  EXPECT_EQ(on_loop(*poll_, [&] { return poll_->registered(); }), 0u);  // detached
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(op->hups(), 1);  // once
  EXPECT_EQ(op->poll(), nullptr);
}

/// Reads `size` bytes from the raw `fd` (non-blocking) within 5 s.
std::string read_exactly(int fd, std::size_t size) {
  std::string got;
  char buf[65536];
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (got.size() < size && std::chrono::steady_clock::now() < deadline) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      got.append(buf, size_t(n));
    } else {
      std::this_thread::sleep_for(1ms);
    }
  }
  return got;
}

TEST_P(PollTest, OutputLeftAfterEagainIsWrittenWhenTheSocketDrains) {
  // What a flush does: write at once until the kernel stops taking, then let the poller write
  // the rest (level: R2RW registers OUT; edge: OUT is registered already and the next edge
  // comes when the peer reads).
  Pair pair;
  auto op = std::make_shared<EchoProbe>(pair.sut);
  const std::string payload(300000, 'x');  // more than a socket buffer takes at once
  op->set_output(payload);
  const bool blocked = on_loop(*poll_, [&] {
    EXPECT_FALSE(poll_->control(op, PollEvent::kReadable));
    iovec iov[8];
    while (true) {
      const int n = op->outputs(std::span<iovec>(iov, 8));
      if (n == 0) {
        return false;
      }
      const io_ops::IoResult r = io_ops::sendmsg(pair.sut, std::span<const iovec>(iov, size_t(n)));
      op->output_ack(r);
      if (r.is_would_block()) {
        EXPECT_FALSE(poll_->control(op, PollEvent::kR2RW));
        return true;
      }
    }
  });
  ASSERT_TRUE(blocked) << "the socket buffer took everything: make the payload larger";
  const std::string got = read_exactly(pair.peer, payload.size());
  EXPECT_EQ(got.size(), payload.size());
  EXPECT_TRUE(got == payload);
  EXPECT_TRUE(eventually([&] { return op->sent() == payload.size(); }));
  ASSERT_FALSE(on_loop(*poll_, [&] {
    EXPECT_FALSE(poll_->control(op, PollEvent::kRW2R));
    return poll_->control(op, PollEvent::kDetach);
  }));
}

/// Takes no input until `room` is set (inputs() returns 0), then reads like EchoProbe.
class PausingProbe : public EchoProbe {
 public:
  using EchoProbe::EchoProbe;
  std::atomic<bool> room{false};
  std::atomic<int> asked{0};
  int inputs(std::span<iovec> out) noexcept override {
    asked.fetch_add(1);
    return room.load() ? EchoProbe::inputs(out) : 0;
  }
};

TEST_P(PollTest, NoRoomPausesReadingWithoutSpinningUntilResumed) {
  Pair pair;
  auto op = std::make_shared<PausingProbe>(pair.sut);
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kReadable); }));
  ASSERT_EQ(::write(pair.peer, "waiting", 7), 7);
  ASSERT_TRUE(eventually([&] { return op->asked.load() >= 1; }));
  const uint64_t before = poll_->iterations();
  std::this_thread::sleep_for(100ms);
  // Level mode would report the unread input on every wait if reading were not paused.
  EXPECT_LE(poll_->iterations() - before, 3u);
  EXPECT_EQ(op->asked.load(), 1);
  op->room = true;
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kResumeRead); }));
  EXPECT_TRUE(eventually([&] { return op->received() == "waiting"; })) << op->received();
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kDetach); }));
}

TEST_P(PollTest, EndOfInputIsReportedOnceWithoutSpinning) {
  Pair pair;
  auto op = std::make_shared<EchoProbe>(pair.sut);
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kReadable); }));
  ASSERT_EQ(::write(pair.peer, "bye", 3), 3);
  ASSERT_EQ(::shutdown(pair.peer, SHUT_WR), 0);  // a half-close: the sut stays writable
  ASSERT_TRUE(eventually([&] { return op->eof(); }));
  EXPECT_EQ(op->received(), "bye");
  const int acks = op->acks();
  const uint64_t before = poll_->iterations();
  std::this_thread::sleep_for(100ms);
  EXPECT_LE(poll_->iterations() - before, 3u);  // RDHUP is not reported forever
  EXPECT_EQ(op->acks(), acks);
  EXPECT_EQ(op->hups(), 0);
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kDetach); }));
}

TEST_P(PollTest, ThrowingTaskAndTimerAreCountedAndTheLoopGoesOn) {
  poll_->queue_in_loop([] { throw std::runtime_error("task"); });
  std::promise<void> timer_ran;
  on_loop(*poll_, [&] {
    poll_->add_timer(1ms, [] { throw std::runtime_error("timer"); });
    poll_->add_timer(2ms, [&] { timer_ran.set_value(); });
    return 0;
  });
  EXPECT_EQ(timer_ran.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_EQ(on_loop(*poll_, [] { return 7; }), 7);
  EXPECT_EQ(poll_->exceptions(), 2u);
}

TEST_P(PollTest, TimerArmedLateInAnIterationIsNotEarly) {
  // add_timer counts from the clock, not from when the loop woke up (a slow handler ran first).
  std::promise<std::chrono::steady_clock::time_point> fired;
  std::chrono::steady_clock::time_point armed;
  on_loop(*poll_, [&] {
    std::this_thread::sleep_for(60ms);  // a slow handler before the timer is armed
    armed = std::chrono::steady_clock::now();
    poll_->add_timer(100ms, [&] { fired.set_value(std::chrono::steady_clock::now()); });
    return 0;
  });
  auto f = fired.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_GE(f.get() - armed, 100ms);
}

/// Records when its input arrives, in a shared order log.
class OrderProbe : public EchoProbe {
 public:
  OrderProbe(int fd, std::mutex& mu, std::vector<std::string>& log)
      : EchoProbe(fd), mu_(mu), log_(log) {}
  void input_ack(const io_ops::IoResult& r) noexcept override {
    {
      std::lock_guard lock(mu_);
      log_.push_back("input");
    }
    EchoProbe::input_ack(r);
  }

 private:
  std::mutex& mu_;
  std::vector<std::string>& log_;
};

TEST_P(PollTest, AnEventAndATimerDueInOneWakeUpAreDecidedForTheEvent) {
  // I/O before timers (libuv's order): a connect that completed is not a dial timeout, input
  // that came is not idleness. The loop is held busy past the timer's deadline while the input
  // arrives, so both are due when it next wakes.
  Pair pair;
  std::mutex mu;
  std::vector<std::string> log;
  auto op = std::make_shared<OrderProbe>(pair.sut, mu, log);
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kReadable); }));
  poll_->queue_in_loop([&] {
    poll_->add_timer(20ms, [&] {
      std::lock_guard lock(mu);
      log.push_back("timer");
    });
    std::this_thread::sleep_for(100ms);  // busy: the input below and the deadline both pass
  });
  std::this_thread::sleep_for(10ms);
  ASSERT_EQ(::write(pair.peer, "x", 1), 1);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return std::find(log.begin(), log.end(), "timer") != log.end();
  }));
  std::lock_guard lock(mu);
  // Edge mode reads again until EAGAIN: one or two "input" entries, all before the timer.
  ASSERT_GE(log.size(), 2u);
  EXPECT_EQ(log.front(), "input");
  EXPECT_EQ(log.back(), "timer");
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kDetach); }));
}

/// Records connect completion.
class ConnectProbe : public EchoProbe {
 public:
  using EchoProbe::EchoProbe;
  std::atomic<int> ready{0};
  void on_connect_ready() noexcept override { ready.fetch_add(1); }
};

TEST_P(PollTest, WritableRegistrationReportsTheConnectThenSwitchesToReading) {
  const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(server, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(server, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::listen(server, 4), 0);
  ASSERT_EQ(::getsockname(server, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int fd = sys::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  const int rc = sys::connect(fd, reinterpret_cast<sockaddr*>(&addr), len);
  ASSERT_TRUE(rc == 0 || errno == EINPROGRESS) << std::strerror(errno);
  auto op = std::make_shared<ConnectProbe>(fd);
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kWritable); }));
  ASSERT_TRUE(eventually([&] { return op->ready.load() >= 1; }));
  const int peer = ::accept4(server, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(peer, 0);
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kReadable); }));
  const int ready_before = op->ready.load();
  ASSERT_EQ(::write(peer, "hi", 2), 2);
  EXPECT_TRUE(eventually([&] { return op->received() == "hi"; }));
  EXPECT_EQ(op->ready.load(), ready_before);  // reading now, not connect events
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kDetach); }));
  sys::close(fd);
  ::close(peer);
  ::close(server);
}

// Level mode only: edge mode registers OUT once, and R2RW is a no-op there.
class LevelPollTest : public PollTest {};

TEST_P(LevelPollTest, R2RWFromAnotherThreadStartsTheWriting) {
  Pair pair;
  auto op = std::make_shared<EchoProbe>(pair.sut);
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kReadable); }));
  const std::string payload(300000, 'y');
  op->set_output(payload);
  ASSERT_FALSE(poll_->control(op, PollEvent::kR2RW));  // from this (non-loop) thread
  const std::string got = read_exactly(pair.peer, payload.size());
  EXPECT_EQ(got.size(), payload.size());
  EXPECT_TRUE(got == payload);
  ASSERT_FALSE(poll_->control(op, PollEvent::kRW2R));
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kDetach); }));
}

TEST_P(PollTest, TimerFiresOnTheLoopThreadNotEarly) {
  std::promise<std::chrono::steady_clock::time_point> fired;
  const auto start = std::chrono::steady_clock::now();
  on_loop(*poll_, [&] {
    poll_->timers().add(30ms, [&] {
      EXPECT_TRUE(poll_->in_loop_thread());
      fired.set_value(std::chrono::steady_clock::now());
    });
    return 0;
  });
  auto f = fired.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_GE(f.get() - start, 30ms);
}

TEST_P(PollTest, ManyThreadsHandingWorkOverNeverLoseAWakeUp) {
  // Four threads hand 2,000 tasks each to the loop and wait for each one: a lost wake-up (the
  // loop asleep while a task waits) shows as a task not run within 5 s.
  constexpr int kThreads = 4;
  constexpr int kTasks = 2000;
  std::atomic<int> lost{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kTasks && lost.load() == 0; ++i) {
        auto done = std::make_shared<std::promise<void>>();
        auto f = done->get_future();
        poll_->queue_in_loop([done] { done->set_value(); });
        if (f.wait_for(5s) != std::future_status::ready) {
          lost.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(lost.load(), 0);
}

TEST_P(PollTest, IdleLoopDoesNotSpin) {
  const uint64_t before = poll_->iterations();
  std::this_thread::sleep_for(200ms);
  // No timer, no fd, no task: the loop sleeps in epoll_wait(-1).
  EXPECT_LE(poll_->iterations() - before, 2u);
}

TEST_P(PollTest, RegisteringTheSameOperatorTwiceIsRefused) {
  Pair pair;
  auto op = std::make_shared<EchoProbe>(pair.sut);
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kReadable); }));
  EXPECT_EQ(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kReadable); }),
            std::make_error_code(std::errc::invalid_argument));
  ASSERT_FALSE(on_loop(*poll_, [&] { return poll_->control(op, PollEvent::kDetach); }));
}

/// Detaches `victim` and registers `reuser` in the same batch, from its own input_ack.
class DetachingProbe : public EchoProbe {
 public:
  using EchoProbe::EchoProbe;
  std::function<void()> on_first_ack;
  void input_ack(const io_ops::IoResult& r) noexcept override {
    EchoProbe::input_ack(r);
    if (on_first_ack) {
      auto fn = std::move(on_first_ack);
      on_first_ack = nullptr;
      fn();
    }
  }
};

TEST_P(PollTest, EventOfAFdDetachedAndReusedInTheSameBatchIsDropped) {
  // Two readable fds in one batch: the first one's handler detaches and closes the second and
  // registers a new operator on the same number; the batch's event for the old registration
  // must not reach the new operator (libuv invalidate_fd, nbio #404, netpoll #142).
  Pair a;
  auto victim_pair = std::make_unique<Pair>();
  auto first = std::make_shared<DetachingProbe>(a.sut);
  auto victim = std::make_shared<EchoProbe>(victim_pair->sut);
  std::shared_ptr<EchoProbe> reuser;
  int reused_fd = -1;
  int raw_peer = -1;
  first->on_first_ack = [&] {
    EXPECT_FALSE(poll_->control(victim, PollEvent::kDetach));
    const int old_fd = victim_pair->sut;
    victim_pair->close_sut();
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    sys::adopt(sv[0], "conn");
    reused_fd = sv[0];
    raw_peer = sv[1];
    if (sv[0] != old_fd) {
      return;  // the kernel handed out another number: nothing to check
    }
    reuser = std::make_shared<EchoProbe>(sv[0]);
    EXPECT_FALSE(poll_->control(reuser, PollEvent::kReadable));
  };
  on_loop(*poll_, [&] {
    EXPECT_FALSE(poll_->control(first, PollEvent::kReadable));
    EXPECT_FALSE(poll_->control(victim, PollEvent::kReadable));
    // Both become readable before the loop waits again: one batch.
    EXPECT_EQ(::write(a.peer, "1", 1), 1);
    EXPECT_EQ(::write(victim_pair->peer, "2", 1), 1);
    return 0;
  });
  // Whatever happens below, the pair made inside the batch is closed (FaultTest checks leaks).
  struct CloseReused {
    int& sut;
    int& peer;
    ~CloseReused() {
      if (sut >= 0) {
        sys::close(sut);
      }
      if (peer >= 0) {
        ::close(peer);
      }
    }
  } close_reused{reused_fd, raw_peer};
  ASSERT_TRUE(eventually([&] { return first->acks() >= 1; }));
  on_loop(*poll_, [] { return 0; });  // the batch is over
  if (!reuser) {
    on_loop(*poll_, [&] { return poll_->control(first, PollEvent::kDetach); });
    GTEST_SKIP() << "the kernel did not reuse the number";
  }
  EXPECT_EQ(reuser->acks(), 0) << "a stale event reached the operator that reused the number";
  EXPECT_EQ(victim->acks(), 0);
  on_loop(*poll_, [&] {
    EXPECT_FALSE(poll_->control(first, PollEvent::kDetach));
    EXPECT_FALSE(poll_->control(reuser, PollEvent::kDetach));
    return 0;
  });
}

INSTANTIATE_TEST_SUITE_P(Level, PollTest, ::testing::Values(TriggerMode::kLevel));
INSTANTIATE_TEST_SUITE_P(Edge, PollTest, ::testing::Values(TriggerMode::kEdge));
INSTANTIATE_TEST_SUITE_P(Level, LevelPollTest, ::testing::Values(TriggerMode::kLevel));

class PollManagerTest : public testing::FaultTest {};

TEST_F(PollManagerTest, RoundRobinVisitsEveryLoopInTurn) {
  PollManagerOptions options;
  options.num_loops = 3;
  auto manager = PollManager::create(options);
  ASSERT_TRUE(manager) << manager.error().message();
  std::vector<int> picked;
  for (int i = 0; i < 6; ++i) {
    picked.push_back((*manager)->pick().index());
  }
  EXPECT_EQ(picked, (std::vector<int>{0, 1, 2, 0, 1, 2}));
}

TEST_F(PollManagerTest, RandomIsSeededAndCoversEveryLoop) {
  PollManagerOptions options;
  options.num_loops = 4;
  options.balance = LoadBalance::kRandom;
  options.seed = 7;
  auto a = PollManager::create(options);
  auto b = PollManager::create(options);
  ASSERT_TRUE(a && b);
  std::vector<int> seen(4, 0);
  for (int i = 0; i < 400; ++i) {
    const int x = (*a)->pick().index();
    EXPECT_EQ(x, (*b)->pick().index());
    ++seen[static_cast<std::size_t>(x)];
  }
  for (int count : seen) {
    EXPECT_GT(count, 50);
  }
}

TEST_F(PollManagerTest, ZeroLoopsIsRefused) {
  PollManagerOptions options;
  options.num_loops = 0;
  auto manager = PollManager::create(options);
  ASSERT_FALSE(manager);
  EXPECT_EQ(manager.error(), std::make_error_code(std::errc::invalid_argument));
}

TEST_F(PollManagerTest, LoopThreadsAreNamed) {
  PollManagerOptions options;
  options.num_loops = 2;
  auto manager = PollManager::create(options);
  ASSERT_TRUE(manager);
  (*manager)->start();
  char name[32] = {};
  on_loop((*manager)->loop(1), [&] {
    ::pthread_getname_np(::pthread_self(), name, sizeof name);
    return 0;
  });
  EXPECT_STREQ(name, "fl-poll-1");
}

}  // namespace
}  // namespace faultloop
