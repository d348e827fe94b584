// Regression tests of the review fixes to the seam and the fault engine (label faults): each
// test fails on the behaviour before the fix and passes with it.
//   1 concurrent double close      one exchange in ledger_close: exactly one double close
//   2 no spin on a masked state    epoll_has_pending masks by the interest set
//   3 armed flag not stuck         no state on a closed fd; no state cleared behind the counter
//   4 answered calls still count   a sticky EMFILE answers a call, the rules still count it
//   5 previous owner's cross-talk  ledger_check knows who owned the number before it was closed
//   6 epoll_ctl's target           the fd it names is checked, not only the epoll fd
//   7 accept4 re-report            an injected EAGAIN on accept4 keeps the listener's edge
//   8 race point and errno         a race point between calls leaves errno alone
//   9 fixture environment          "set" means set, even when empty; bad numbers are named
//  10 trace numbering              seq and per-fd call indices restart at reset()
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <gmock/gmock.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "faults/engine.h"
#include "faults/fd_ledger.h"
#include "faults/plan.h"
#include "faults/trace.h"
#include "harness/testing/fault_test.h"
#include "reactor/sys/sys.h"
#include "reactor/tests/test_sockets.h"

namespace faultloop {
namespace {

using faults::ViolationKind;
using ::testing::HasSubstr;
using testing::EpollSet;
using testing::SeamSocketPair;

bool fd_state_armed() { return (faults::armed_reasons() & faults::kArmFdState) != 0; }

// ---- 1. concurrent double close ----------------------------------------------------------

/// A reusable barrier that spins. It yields after a while in case the machine is
/// oversubscribed.
class SpinBarrier {
 public:
  explicit SpinBarrier(int parties) : parties_(parties) {}

  void arrive_and_wait() {
    const uint32_t gen = generation_.load(std::memory_order_acquire);
    if (waiting_.fetch_add(1, std::memory_order_acq_rel) + 1 == parties_) {
      waiting_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_acq_rel);
      return;
    }
    for (int spins = 0; generation_.load(std::memory_order_acquire) == gen; ++spins) {
      if (spins > 100000) {
        std::this_thread::yield();
      }
    }
  }

 private:
  const int parties_;
  std::atomic<int> waiting_{0};
  std::atomic<uint32_t> generation_{0};
};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Spins until the steady clock reaches `deadline_ns`. Two threads released this way (the clock
/// is shared by the cores) start within tens of nanoseconds of each other, much closer than a
/// barrier, whose last arriver runs ahead while the other notices the release.
void spin_until(int64_t deadline_ns) {
  while (now_ns() < deadline_ns) {
  }
}

class SeamRegressionLedgerTest : public testing::FaultTest {};

TEST_F(SeamRegressionLedgerTest, TwoThreadsClosingOneFdReportExactlyOneDoubleClose) {
  constexpr int kIterations = 300;
  const int64_t fds_before = sys::fds_open();
  const uint64_t closed_before = faults::ledger_counts().closed;
  SpinBarrier barrier(2);
  std::atomic<int> shared_fd{-1};
  std::atomic<int64_t> go_ns{0};
  std::atomic<int> worker_result{0};
  std::atomic<int> worker_errno{0};
  std::thread worker([&] {
    for (int i = 0; i < kIterations; ++i) {
      barrier.arrive_and_wait();  // the fd and the start time are published
      // Sweep the worker's start over -80..+80 ns around the main thread's, so some iteration
      // hits the window of whatever the close path looks like on this machine.
      spin_until(go_ns.load(std::memory_order_acquire) + (i % 17 - 8) * 10);
      const int rc = sys::close(shared_fd.load(std::memory_order_acquire));
      worker_errno.store(errno, std::memory_order_relaxed);
      worker_result.store(rc, std::memory_order_relaxed);
      barrier.arrive_and_wait();  // done
    }
  });
  int iterations_without_one_double_close = 0;
  int iterations_without_one_ebadf = 0;
  std::string first_bad;
  for (int i = 0; i < kIterations; ++i) {
    const int fd = sys::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    shared_fd.store(fd, std::memory_order_release);
    go_ns.store(now_ns() + 20'000, std::memory_order_release);
    barrier.arrive_and_wait();
    spin_until(go_ns.load(std::memory_order_acquire));
    const int rc = fd < 0 ? -1 : sys::close(fd);
    const int err = errno;
    barrier.arrive_and_wait();
    const auto v = faults::take_violations();
    const bool one = v.size() == 1 && v[0].kind == ViolationKind::kDoubleClose && v[0].fd == fd;
    if (!one) {
      ++iterations_without_one_double_close;
      if (first_bad.empty()) {
        first_bad = "iteration " + std::to_string(i) + ": " + std::to_string(v.size()) +
                    " violation(s)" + (v.empty() ? "" : ", first " + v[0].to_string());
      }
    }
    // Exactly one real close succeeds; the other gets EBADF.
    const int wrc = worker_result.load(std::memory_order_relaxed);
    const int werr = worker_errno.load(std::memory_order_relaxed);
    const bool main_won = rc == 0 && wrc == -1 && werr == EBADF;
    const bool worker_won = wrc == 0 && rc == -1 && err == EBADF;
    if (!(main_won || worker_won)) {
      ++iterations_without_one_ebadf;
    }
  }
  worker.join();
  EXPECT_EQ(iterations_without_one_double_close, 0) << "of " << kIterations << "; " << first_bad;
  EXPECT_EQ(iterations_without_one_ebadf, 0) << "of " << kIterations;
  EXPECT_EQ(sys::fds_open(), fds_before);
  EXPECT_EQ(faults::ledger_counts().closed - closed_before, uint64_t{kIterations});
}

// ---- 5. cross-talk by the number's previous owner -------------------------------------------

TEST_F(SeamRegressionLedgerTest, PreviousOwnerCallingBeforeTheNewTagIsCrossTalk) {
  const int old_fd = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(old_fd, 0);
  sys::tag(old_fd, "conn", 1);
  {
    sys::ConnScope owner(1);
    ASSERT_EQ(sys::close(old_fd), 0);
  }
  const int fd = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  if (fd != old_fd) {
    sys::close(fd);
    GTEST_SKIP() << "the kernel did not hand out the same number again";
  }
  faults::set_scenario_armed(true);
  int type = 0;
  socklen_t len = sizeof type;
  {
    sys::ConnScope stranger(7);  // never owned the number: nothing to say before the tag
    EXPECT_EQ(sys::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len), 0);
  }
  EXPECT_TRUE(faults::violations().empty());
  {
    sys::ConnScope previous_owner(1);  // still thinks the number is its own (gnet #621)
    EXPECT_EQ(sys::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len), 0);
  }
  const auto v = faults::take_violations();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, ViolationKind::kCrossTalk);
  EXPECT_EQ(v[0].fd, fd);
  EXPECT_EQ(v[0].point, "reactor/sys/getsockopt");
  EXPECT_EQ(v[0].owner_conn, 0u);
  EXPECT_EQ(v[0].caller_conn, 1u);
  EXPECT_EQ(sys::close(fd), 0);
  EXPECT_TRUE(faults::violations().empty());
}

// ---- 6. epoll_ctl checks its target ---------------------------------------------------------

TEST_F(SeamRegressionLedgerTest, EpollCtlOnAClosedTargetIsCallAfterClose) {
  EpollSet ep;  // made first, so it cannot take the closed fd's number
  ASSERT_GE(ep.fd(), 0);
  const int fd = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(sys::close(fd), 0);
  faults::set_scenario_armed(true);
  EXPECT_EQ(sys::epoll_ctl(ep.fd(), EPOLL_CTL_DEL, fd, nullptr), -1);
  EXPECT_EQ(errno, EBADF);  // the real call still happens
  const auto v = faults::take_violations();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, ViolationKind::kCallAfterClose);
  EXPECT_EQ(v[0].fd, fd);
  EXPECT_EQ(v[0].point, "reactor/sys/epoll_ctl");
}

// ---- 2. no spin on a state the registration masks away -------------------------------------

class SeamRegressionEpollTest : public testing::FaultTest {};

TEST_F(SeamRegressionEpollTest, HalfCloseMaskedByTheInterestSetWaitsTheWholeTimeout) {
  SeamSocketPair paused(1);  // interest 0: reads paused
  SeamSocketPair full(2);    // interest OUT only, and the send buffer is full
  std::string chunk(64 * 1024, 'x');
  while (::write(full.sut(), chunk.data(), chunk.size()) > 0) {
  }
  ASSERT_EQ(errno, EAGAIN);
  EpollSet ep;
  ASSERT_TRUE(ep.add(paused.sut(), 0, 1));
  ASSERT_TRUE(ep.add(full.sut(), EPOLLOUT, 2));
  ASSERT_TRUE(ep.wait(0).empty());  // the kernel reports neither

  // Both peers half-close (in the engine's emulation): IN|RDHUP, which neither registration
  // asked for, so nothing is reported.
  ASSERT_TRUE(arm("reactor/sys/epoll_wait:events=+RDHUP"));
  EXPECT_TRUE(ep.wait(0).empty());
  const auto stats = faults::rule_stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].injected, 2u);
  faults::disarm();
  ASSERT_TRUE(fd_state_armed());

  // The kernel would sleep the whole timeout; forcing a zero timeout makes a loop spin.
  epoll_event evs[8];
  const auto start = std::chrono::steady_clock::now();
  const int n = sys::epoll_wait(ep.fd(), evs, 8, 100);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(n, 0);
  EXPECT_GE(elapsed, std::chrono::milliseconds(80));

  // The state was really entered: end of input on both.
  char buf[16];
  EXPECT_EQ(sys::read(paused.sut(), buf, sizeof buf), 0);
  EXPECT_EQ(sys::read(full.sut(), buf, sizeof buf), 0);
}

// ---- 7. accept4: an injected EAGAIN keeps the listener's edge ------------------------------

TEST_F(SeamRegressionEpollTest, EagainOnEdgeTriggeredAcceptIsReportedAgain) {
  constexpr uint64_t kListenerData = 0x11570001;
  EpollSet ep;
  const int listener = sys::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sys::tag(listener, "listener");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  ASSERT_EQ(sys::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(sys::listen(listener, 16), 0);
  ASSERT_EQ(sys::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // raw: not the SUT
  ASSERT_GE(client, 0);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);

  ASSERT_TRUE(ep.add(listener, EPOLLIN | EPOLLET, kListenerData));
  auto evs = ep.wait(0);
  ASSERT_EQ(evs.size(), 1u);
  ASSERT_TRUE(ep.wait(0).empty());  // the edge was reported once

  ASSERT_TRUE(arm("reactor/sys/accept4:error=EAGAIN,nth=1"));
  EXPECT_EQ(sys::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC), -1);
  EXPECT_EQ(errno, EAGAIN);
  evs = ep.wait(0);
  ASSERT_EQ(evs.size(), 1u) << "the connection waiting in the backlog was never reported again";
  EXPECT_EQ(evs[0].events, uint32_t{EPOLLIN});
  EXPECT_EQ(evs[0].data.u64, kListenerData);
  const int accepted = sys::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  EXPECT_GE(accepted, 0) << "errno " << errno;
  if (accepted >= 0) {
    EXPECT_EQ(sys::close(accepted), 0);
  }
  ::close(client);
  EXPECT_EQ(sys::close(listener), 0);
}

// ---- 3. the armed flag does not stay on ----------------------------------------------------

class SeamRegressionArmedFlagTest : public testing::FaultTest {};

TEST_F(SeamRegressionArmedFlagTest, ResetOnAClosedFdLeavesNoState) {
  const int fd = sys::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(sys::close(fd), 0);
  ASSERT_TRUE(arm("reactor/sys/readv:reset"));
  char buf[8];
  iovec iov{buf, sizeof buf};
  EXPECT_EQ(sys::readv(fd, &iov, 1), -1);
  const auto v = faults::take_violations();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].kind, ViolationKind::kCallAfterClose);
  EXPECT_EQ(v[0].point, "reactor/sys/readv");
  faults::disarm();
  EXPECT_FALSE(fd_state_armed()) << "armed reasons 0x" << std::hex << faults::armed_reasons();
}

TEST_F(SeamRegressionArmedFlagTest, ResetFdClosedAndItsNumberReusedReadsNormally) {
  auto pair = std::make_unique<SeamSocketPair>(1);
  const int number = pair->sut();
  ASSERT_TRUE(arm("reactor/sys/readv:reset,nth=1"));
  char buf[8];
  iovec iov{buf, sizeof buf};
  EXPECT_EQ(sys::readv(number, &iov, 1), -1);
  EXPECT_EQ(errno, ECONNRESET);
  ASSERT_TRUE(fd_state_armed());
  pair->close_sut();
  const int fd = sys::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  pair.reset();
  if (fd != number) {
    sys::close(fd);
    GTEST_SKIP() << "the kernel did not hand out the same number again";
  }
  // Still armed (the plan), so these take the engine's path: a new file, no reset state.
  EXPECT_EQ(sys::read(fd, buf, sizeof buf), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(sys::readv(fd, &iov, 1), -1);
  EXPECT_EQ(errno, EAGAIN);
  faults::disarm();
  EXPECT_FALSE(fd_state_armed()) << "armed reasons 0x" << std::hex << faults::armed_reasons();
  EXPECT_EQ(sys::close(fd), 0);
}

TEST_F(SeamRegressionArmedFlagTest, ResetFdClosedBehindTheSeamAndReusedClearsTheState) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  sys::adopt(sv[0], "conn");
  ASSERT_TRUE(arm("reactor/sys/readv:reset,nth=1"));
  char buf[8];
  iovec iov{buf, sizeof buf};
  EXPECT_EQ(sys::readv(sv[0], &iov, 1), -1);
  ASSERT_TRUE(fd_state_armed());
  ::close(sv[0]);  // behind the seam's back: the ledger still holds it open, with its state
  const int fd = sys::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  const bool reused = fd == sv[0];
  if (reused) {
    EXPECT_EQ(sys::read(fd, buf, sizeof buf), -1);
    EXPECT_EQ(errno, EAGAIN);
    faults::disarm();
    EXPECT_FALSE(fd_state_armed()) << "armed reasons 0x" << std::hex << faults::armed_reasons();
  }
  EXPECT_EQ(sys::close(fd), 0);
  ::close(sv[1]);
  // The adopt was never closed through the seam: balance fds_open with the close of an fd the
  // ledger never saw (a foreign close, -1), and claim that violation.
  const int raw = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(raw, 0);
  const int foreign = ::fcntl(raw, F_DUPFD_CLOEXEC, 4700);
  ::close(raw);
  ASSERT_GE(foreign, 0);
  EXPECT_EQ(sys::close(foreign), 0);
  const auto v = faults::take_violations();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].fd, foreign);
  if (!reused) {
    GTEST_SKIP() << "the kernel did not hand out the same number again";
  }
}

// ---- 4. calls answered by an emulated state still count -------------------------------------

class SeamRegressionRuleCountTest : public testing::FaultTest {};

TEST_F(SeamRegressionRuleCountTest, CallAnsweredByStickyEmfileIsCountedByEveryRule) {
  const int spare = sys::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);  // before arming
  ASSERT_GE(spare, 0);
  ASSERT_TRUE(arm(
      "reactor/sys/socket:error=EMFILE,nth=1;reactor/sys/socket:error=EACCES,nth=3"));
  EXPECT_EQ(sys::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), -1);  // rule 0 fires
  EXPECT_EQ(errno, EMFILE);
  EXPECT_EQ(sys::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), -1);  // the sticky state
  EXPECT_EQ(errno, EMFILE);
  EXPECT_EQ(sys::close(spare), 0);  // ends the sticky EMFILE
  const int third = sys::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);  // rule 1's 3rd call
  EXPECT_EQ(third, -1);
  EXPECT_EQ(errno, EACCES);
  if (third >= 0) {
    sys::close(third);
  }
  const auto stats = faults::rule_stats();
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].eligible, 3u) << stats[0].rule;
  EXPECT_EQ(stats[0].injected, 1u) << stats[0].rule;
  EXPECT_EQ(stats[1].eligible, 3u) << stats[1].rule;
  EXPECT_EQ(stats[1].injected, 1u) << stats[1].rule;
}

// ---- 8. a race point keeps errno ------------------------------------------------------------

class SeamRegressionRacePointTest : public testing::FaultTest {};

void errno_window() { FAULTLOOP_RACE_POINT("reactor/race/test/errno"); }

void on_sigusr1(int) {}

TEST_F(SeamRegressionRacePointTest, DelayKeepsTheCallersErrno) {
  sys::race_point_id("reactor/race/test/errno");  // registered before a plan names it
  ASSERT_TRUE(arm("reactor/race/test/errno:delay=1ms"));
  errno = 12345;
  errno_window();
  EXPECT_EQ(errno, 12345);

  // The delay's sleep interrupted by a signal: nanosleep sets EINTR and sleeps on.
  ASSERT_TRUE(arm("reactor/race/test/errno:delay=150ms"));
  struct sigaction sa {};
  struct sigaction old {};
  sa.sa_handler = on_sigusr1;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old), 0);
  const pthread_t self = ::pthread_self();
  std::thread interrupter([self] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    ::pthread_kill(self, SIGUSR1);
  });
  errno = ENOTCONN;
  errno_window();
  const int after = errno;
  interrupter.join();
  ::sigaction(SIGUSR1, &old, nullptr);
  EXPECT_EQ(after, ENOTCONN);
  const auto stats = faults::rule_stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].injected, 1u);
}

// ---- 9. the fixture environment -------------------------------------------------------------

/// Saves the fixture variables, unsets them, and restores them on destruction (also when an
/// assertion returns early).
class FixtureEnvGuard {
 public:
  FixtureEnvGuard() {
    for (const char* name : kNames) {
      const char* value = std::getenv(name);
      saved_.emplace_back(name, value == nullptr ? std::nullopt
                                                 : std::optional<std::string>(value));
      ::unsetenv(name);
    }
  }
  ~FixtureEnvGuard() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name, value->c_str(), 1);
      } else {
        ::unsetenv(name);
      }
    }
  }
  FixtureEnvGuard(const FixtureEnvGuard&) = delete;
  FixtureEnvGuard& operator=(const FixtureEnvGuard&) = delete;

 private:
  static constexpr const char* kNames[] = {
      "FAULTLOOP_RULES", "FAULTLOOP_PLAN",   "FAULTLOOP_SEED",  "FAULTLOOP_ITERATION",
      "FAULTLOOP_TRACE", "FAULTLOOP_EVENTS", "FAULTLOOP_REPLAY"};
  std::vector<std::pair<const char*, std::optional<std::string>>> saved_;
};

/// The message of the PlanError configure_from_environment() throws; "" (and a failure) when it
/// throws nothing or something else.
std::string configure_error() {
  try {
    faults::configure_from_environment();
  } catch (const faults::PlanError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a PlanError: " << e.what();
    return "";
  }
  ADD_FAILURE() << "configure_from_environment() accepted the environment";
  return "";
}

class SeamRegressionEnvironmentTest : public testing::FaultTest {};

TEST_F(SeamRegressionEnvironmentTest, EmptyRulesWithAPlanFileAreBothSet) {
  FixtureEnvGuard guard;
  ASSERT_EQ(::setenv("FAULTLOOP_RULES", "", 1), 0);
  ASSERT_EQ(::setenv("FAULTLOOP_PLAN", "/nonexistent", 1), 0);
  const std::string message = configure_error();
  EXPECT_THAT(message, HasSubstr("FAULTLOOP_RULES"));
  EXPECT_THAT(message, HasSubstr("FAULTLOOP_PLAN"));
}

TEST_F(SeamRegressionEnvironmentTest, MalformedSeedIsNamed) {
  FixtureEnvGuard guard;
  ASSERT_EQ(::setenv("FAULTLOOP_SEED", "12x", 1), 0);
  EXPECT_THAT(configure_error(), HasSubstr("FAULTLOOP_SEED"));
}

// ---- 10. trace numbering restarts at reset() -------------------------------------------------

class SeamRegressionTraceTest : public testing::FaultTest {
 protected:
  void TearDown() override {
    faults::close_trace();
    if (!path_.empty()) {
      ::unlink(path_.c_str());
    }
    FaultTest::TearDown();
  }
  std::string path_;
};

TEST_F(SeamRegressionTraceTest, SeqAndFdCallRestartAtReset) {
  SeamSocketPair pair(1);  // long-lived: open across the reset
  path_ = testing::temp_path("regression-trace");
  faults::TraceHeader header;
  header.scenario = "regression.trace_numbering";
  faults::open_trace(path_, header);
  char buf[8];

  ASSERT_TRUE(arm("reactor/sys/read:error=EAGAIN,every=1"));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(sys::read(pair.sut(), buf, sizeof buf), -1);
  }
  faults::reset();
  ASSERT_TRUE(arm("reactor/sys/read:error=EAGAIN,every=2"));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(sys::read(pair.sut(), buf, sizeof buf), -1);  // 2 and 4 injected, 1 and 3 real
  }
  const auto stats = faults::rule_stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].injected, 2u);
  faults::close_trace();

  const faults::Trace trace = faults::read_trace(path_);
  EXPECT_EQ(trace.header.scenario, "regression.trace_numbering");
  std::vector<uint64_t> seqs;
  std::vector<uint64_t> fd_calls;
  for (const auto& r : trace.records) {
    seqs.push_back(r.seq);
    fd_calls.push_back(r.fd_call);
    EXPECT_EQ(r.fd, pair.sut());
    EXPECT_EQ(r.point, "reactor/sys/read");
  }
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2, 3, 1, 2}));
  EXPECT_EQ(fd_calls, (std::vector<uint64_t>{1, 2, 3, 2, 4}));
}

}  // namespace
}  // namespace faultloop
