// Injection through the seam on data and fd calls (label faults): short transfers, the rule
// gates (nth, after, every, count, probability, seed), selectors (thread, role, conn, fd),
// close errors, sticky EMFILE and race points. Real sockets throughout (STYLE 41).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <chrono>
#include <set>
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

/// One fault of a matrix (STYLE 38): a point, an action and its selectors.
struct FaultCase {
  std::string point;
  std::string action;
  std::string selector;  ///< "" or "nth=3,count=2"

  std::string rule() const {
    return point + ":" + action + (selector.empty() ? "" : "," + selector);
  }
};

/// Alphanumerics only (gtest names): "after=10,every=2" -> "After10Every2", "50%" -> "50pct".
std::string camel(const std::string& text) {
  std::string out;
  bool upper = true;
  for (char c : text) {
    if (c == '%') {
      out += "pct";
      upper = true;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      out += upper && c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
      upper = false;
    } else {
      upper = true;
    }
  }
  return out;
}

// ---- short transfers --------------------------------------------------------------------------

struct ShortWriteCase {
  FaultCase fault;
  std::string expected;  ///< what the peer receives of "abc" "def" "ghi"
};

class SeamShortWriteTest : public testing::FaultTest,
                           public ::testing::WithParamInterface<ShortWriteCase> {};

TEST_P(SeamShortWriteTest, WritevMovesExactlyTheCapAndThePeerGetsIt) {
  SeamSocketPair pair(1);
  ASSERT_TRUE(arm(GetParam().fault.rule()));
  char a[] = "abc", d[] = "def", g[] = "ghi";
  const iovec iov[3] = {{a, 3}, {d, 3}, {g, 3}};
  const ssize_t n = sys::writev(pair.sut(), iov, 3);
  const std::string& expected = GetParam().expected;
  EXPECT_EQ(n, static_cast<ssize_t>(expected.size()));
  EXPECT_EQ(testing::drain_raw(pair.peer()), expected);  // exactly that, nothing more
  // The caller's array is untouched (the seam caps a copy).
  EXPECT_EQ(iov[0].iov_len, 3u);
  EXPECT_EQ(iov[2].iov_len, 3u);
  const auto stats = faults::rule_stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].injected, 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Inline, SeamShortWriteTest,
    ::testing::Values(ShortWriteCase{{"reactor/sys/writev", "short=1", ""}, "a"},
                      ShortWriteCase{{"reactor/sys/writev", "short=4", ""}, "abcd"},
                      ShortWriteCase{{"reactor/sys/writev", "short=50%", ""}, "abcd"},
                      ShortWriteCase{{"reactor/sys/writev", "short=1%", ""}, "a"},
                      ShortWriteCase{{"reactor/sys/writev", "short=100", ""}, "abcdefghi"}),
    [](const auto& p) {
      return camel("writev " + p.param.fault.action + " " + p.param.fault.selector);
    });

class SeamShortReadTest : public testing::FaultTest {};

TEST_F(SeamShortReadTest, ReadvHalfReadsAtMostHalfAndKeepsTheRest) {
  SeamSocketPair pair(1);
  std::string sent(4096, '\0');
  for (size_t i = 0; i < sent.size(); ++i) {
    sent[i] = static_cast<char>('a' + i % 26);
  }
  testing::write_all_raw(pair.peer(), sent);
  ASSERT_TRUE(arm("reactor/sys/readv:short=50%"));
  std::string got(4096, '\0');
  iovec iov[4];
  for (int i = 0; i < 4; ++i) {
    iov[i] = {got.data() + i * 1024, 1024};
  }
  const ssize_t n = sys::readv(pair.sut(), iov, 4);
  ASSERT_GT(n, 0);
  EXPECT_LE(n, 2048);
  faults::disarm();
  // The rest is still there, in order.
  size_t total = static_cast<size_t>(n);
  while (total < got.size()) {
    const ssize_t m = sys::read(pair.sut(), got.data() + total, got.size() - total);
    ASSERT_GT(m, 0) << "errno " << errno;
    total += static_cast<size_t>(m);
  }
  EXPECT_EQ(got, sent);
}

TEST_F(SeamShortReadTest, RecvmsgShortRestoresTheCallersIovec) {
  SeamSocketPair pair(1);
  testing::write_all_raw(pair.peer(), "0123456789");
  ASSERT_TRUE(arm("reactor/sys/recvmsg:short=3"));
  char b1[4], b2[8];
  iovec iov[2] = {{b1, sizeof b1}, {b2, sizeof b2}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  EXPECT_EQ(sys::recvmsg(pair.sut(), &msg, 0), 3);
  EXPECT_EQ(std::string(b1, 3), "012");
  EXPECT_EQ(msg.msg_iov, iov);
  EXPECT_EQ(msg.msg_iovlen, 2u);
  EXPECT_EQ(iov[0].iov_len, sizeof b1);
  faults::disarm();
  EXPECT_EQ(testing::drain_raw(pair.sut()), "3456789");
}

// ---- gates ------------------------------------------------------------------------------------

/// Makes `calls` one-byte sys::read calls on a socketpair holding enough data and returns the
/// 1-based indices of the calls that failed with `error` (the others must read one byte).
std::vector<int> failing_reads(int calls, int error) {
  SeamSocketPair pair(1);
  testing::write_all_raw(pair.peer(), std::string(static_cast<size_t>(calls), 'x'));
  std::vector<int> failed;
  for (int i = 1; i <= calls; ++i) {
    char c = 0;
    const ssize_t n = sys::read(pair.sut(), &c, 1);
    if (n == -1 && errno == error) {
      failed.push_back(i);
    } else {
      EXPECT_EQ(n, 1) << "call " << i << " errno " << errno;
    }
  }
  return failed;
}

struct GateCase {
  FaultCase fault;
  int calls = 0;
  std::vector<int> fired;  ///< the 1-based calls that must fail, and only those
};

class SeamGateTest : public testing::FaultTest, public ::testing::WithParamInterface<GateCase> {};

TEST_P(SeamGateTest, FiresOnExactlyTheSelectedCalls) {
  ASSERT_TRUE(arm(GetParam().fault.rule()));
  EXPECT_EQ(failing_reads(GetParam().calls, EINTR), GetParam().fired);
  const auto stats = faults::rule_stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].eligible, static_cast<uint64_t>(GetParam().calls));
  EXPECT_EQ(stats[0].injected, GetParam().fired.size());
}

const FaultCase kReadEintr{"reactor/sys/read", "error=EINTR", ""};

GateCase gate(const std::string& selector, int calls, std::vector<int> fired) {
  FaultCase f = kReadEintr;
  f.selector = selector;
  return GateCase{f, calls, std::move(fired)};
}

INSTANTIATE_TEST_SUITE_P(
    Inline, SeamGateTest,
    ::testing::Values(gate("nth=3", 6, {3}), gate("nth=1", 3, {1}), gate("every=2", 6, {2, 4, 6}),
                      gate("after=10,every=2", 20, {12, 14, 16, 18, 20}),
                      gate("after=4", 7, {5, 6, 7}), gate("count=2", 5, {1, 2}),
                      gate("every=2,count=2", 10, {2, 4}),
                      gate("after=2,every=3,count=2", 20, {3, 6})),
    [](const auto& p) { return camel("read eintr " + p.param.fault.selector); });

class SeamRuleOrderTest : public testing::FaultTest {};

TEST_F(SeamRuleOrderTest, FirstRuleWinsAndEveryRuleKeepsCounting) {
  // Both rules see call 2; the first wins it. The second counts call 2 as its own 2nd eligible
  // call anyway, so its nth=3 is call 3, not call 4.
  ASSERT_TRUE(arm("reactor/sys/read:error=EINTR,nth=2;reactor/sys/read:error=EIO,nth=3"));
  SeamSocketPair pair(1);
  testing::write_all_raw(pair.peer(), "xxxxx");
  std::vector<int> errors;
  for (int i = 0; i < 5; ++i) {
    char c;
    errors.push_back(sys::read(pair.sut(), &c, 1) == -1 ? errno : 0);
  }
  EXPECT_EQ(errors, (std::vector<int>{0, EINTR, EIO, 0, 0}));
  const auto stats = faults::rule_stats();
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].eligible, 5u);
  EXPECT_EQ(stats[1].eligible, 5u);
  EXPECT_EQ(stats[0].injected, 1u);
  EXPECT_EQ(stats[1].injected, 1u);
}

// ---- probability ------------------------------------------------------------------------------

constexpr uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// DESIGN "Selectors", computed independently of the engine: the calls (1-based) among `calls`
/// at which rule `index` with probability `p` fires.
std::vector<int> designed_draws(uint64_t seed, uint64_t iteration, uint64_t index, double p,
                                int calls) {
  const uint64_t rule_seed = splitmix64(seed) ^ splitmix64(iteration) ^ splitmix64(index);
  std::vector<int> fired;
  for (int k = 1; k <= calls; ++k) {
    const double u = static_cast<double>(splitmix64(rule_seed + uint64_t(k)) >> 11) * 0x1.0p-53;
    if (u < p) {
      fired.push_back(k);
    }
  }
  return fired;
}

class SeamProbabilityTest : public testing::FaultTest {
 protected:
  std::vector<int> run(const std::string& rules, uint64_t seed, uint64_t iteration = 0) {
    faults::reset();
    faults::arm(faults::parse_plan(rules), seed, iteration);
    return failing_reads(kCalls, EINTR);
  }
  static constexpr int kCalls = 200;
  const std::string rule_ = "reactor/sys/read:error=EINTR,probability=0.3";
};

TEST_F(SeamProbabilityTest, SameSeedGivesTheSameCallsAndAnotherSeedOthers) {
  const auto first = run(rule_, 1234);
  const auto again = run(rule_, 1234);
  const auto other = run(rule_, 1235);
  EXPECT_EQ(first, again);
  EXPECT_NE(first, other);
  for (const auto* pattern : {&first, &other}) {
    const double fraction = static_cast<double>(pattern->size()) / kCalls;
    EXPECT_GE(fraction, 0.2);
    EXPECT_LE(fraction, 0.4);
  }
}

TEST_F(SeamProbabilityTest, DrawsFollowTheDesignedCounterBasedFormula) {
  EXPECT_EQ(run(rule_, 1234), designed_draws(1234, 0, 0, 0.3, kCalls));
  EXPECT_EQ(run(rule_, 77, 5), designed_draws(77, 5, 0, 0.3, kCalls));
  // A rule's own seed= replaces the plan seed; the rule index still enters.
  const std::string two =
      "reactor/sys/write:error=EINTR;reactor/sys/read:error=EINTR,probability=0.3,seed=9";
  EXPECT_EQ(run(two, 1), designed_draws(9, 0, 1, 0.3, kCalls));
  EXPECT_EQ(run(two, 2), designed_draws(9, 0, 1, 0.3, kCalls));
}

TEST_F(SeamProbabilityTest, IterationChangesThePattern) {
  EXPECT_NE(run(rule_, 1234, 0), run(rule_, 1234, 1));
}

// ---- selectors --------------------------------------------------------------------------------

class SeamSelectorTest : public testing::FaultTest {};

TEST_F(SeamSelectorTest, ThreadWorkerFiresOnlyOnAWorkerThread) {
  SeamSocketPair pair(1);
  testing::write_all_raw(pair.peer(), std::string(16, 'x'));
  ASSERT_TRUE(arm("reactor/sys/read:error=EINTR,thread=worker"));
  auto read_on = [&](const char* kind) {
    int error = 0;
    std::thread t([&] {
      if (kind != nullptr) {
        sys::set_thread_kind(kind);
      }
      char c;
      error = sys::read(pair.sut(), &c, 1) == -1 ? errno : 0;
    });
    t.join();
    return error;
  };
  EXPECT_EQ(read_on("worker"), EINTR);
  EXPECT_EQ(read_on("poller"), 0);
  EXPECT_EQ(read_on(nullptr), 0);
  EXPECT_EQ(read_on("worker"), EINTR);
  char c;
  EXPECT_EQ(sys::read(pair.sut(), &c, 1), 1);  // this thread registered no kind
  const auto stats = faults::rule_stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].eligible, 2u);  // only worker calls are eligible
}

TEST_F(SeamSelectorTest, RoleSelectorMatchesTaggedRolesAndOtherForUntagged) {
  SeamSocketPair conn(1);
  SeamSocketPair client;
  sys::tag(client.sut(), "client", 2);
  const int untagged = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(untagged, 0);
  ASSERT_TRUE(arm("reactor/sys/getsockname:error=ENOBUFS,role=client|other"));
  auto name_error = [](int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    return sys::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == -1 ? errno : 0;
  };
  EXPECT_EQ(name_error(conn.sut()), 0);
  EXPECT_EQ(name_error(client.sut()), ENOBUFS);
  EXPECT_EQ(name_error(untagged), ENOBUFS);
  EXPECT_EQ(sys::close(untagged), 0);
}

TEST_F(SeamSelectorTest, ConnAndFdSelectorsNarrowTheRule) {
  SeamSocketPair a(7);
  SeamSocketPair b(8);
  auto name_error = [](int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    return sys::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == -1 ? errno : 0;
  };
  ASSERT_TRUE(arm("reactor/sys/getsockname:error=ENOBUFS,conn=7"));
  EXPECT_EQ(name_error(a.sut()), ENOBUFS);
  EXPECT_EQ(name_error(b.sut()), 0);
  ASSERT_TRUE(arm("reactor/sys/getsockname:error=ENOBUFS,fd=" + std::to_string(b.sut())));
  EXPECT_EQ(name_error(a.sut()), 0);
  EXPECT_EQ(name_error(b.sut()), ENOBUFS);
}

// ---- close ------------------------------------------------------------------------------------

class SeamCloseFaultTest : public testing::FaultTest {};

TEST_F(SeamCloseFaultTest, InjectedEioStillReleasesTheFd) {
  const int64_t base = sys::fds_open();
  const int fd = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(arm("reactor/sys/close:error=EIO,nth=1"));
  EXPECT_EQ(sys::close(fd), -1);
  EXPECT_EQ(errno, EIO);
  // Really closed (libfiu's close failure skips the real close: a manufactured leak).
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(sys::fds_open(), base);
  for (const auto& o : faults::open_fds()) {
    EXPECT_NE(o.fd, fd) << "the ledger still holds the fd as open";
  }
  // The number is free: the next socket gets it, and nothing is reported about it.
  const int again = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(again, fd);
  EXPECT_EQ(sys::close(again), 0);
  EXPECT_TRUE(faults::violations().empty());
  EXPECT_EQ(sys::fds_open(), base);
}

// ---- EMFILE -----------------------------------------------------------------------------------

class SeamEmfileTest : public testing::FaultTest {};

TEST_F(SeamEmfileTest, InjectedEmfileLastsUntilTheNextClose) {
  const int listener = sys::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  const int spare = sys::eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(spare, 0);
  ASSERT_TRUE(arm("reactor/sys/accept4:error=EMFILE,nth=1"));
  EXPECT_EQ(sys::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC), -1);
  EXPECT_EQ(errno, EMFILE);
  faults::disarm();  // the rule is gone; the process stays out of fds until a close
  EXPECT_NE(faults::armed_reasons() & faults::kArmEmfile, 0u);
  EXPECT_EQ(sys::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC), -1);
  EXPECT_EQ(errno, EMFILE);
  EXPECT_EQ(sys::socket(AF_INET, SOCK_STREAM, 0), -1);
  EXPECT_EQ(errno, EMFILE);
  EXPECT_EQ(sys::eventfd(0, 0), -1);
  EXPECT_EQ(errno, EMFILE);
  EXPECT_EQ(sys::epoll_create1(0), -1);
  EXPECT_EQ(errno, EMFILE);
  EXPECT_EQ(sys::open("/dev/null", O_RDONLY | O_CLOEXEC), -1);
  EXPECT_EQ(errno, EMFILE);
  // Calls that make no fd are not affected.
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  EXPECT_EQ(sys::getsockname(listener, reinterpret_cast<sockaddr*>(&ss), &len), 0);

  EXPECT_EQ(sys::close(spare), 0);
  EXPECT_EQ(faults::armed_reasons() & faults::kArmEmfile, 0u);
  const int fd = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(sys::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC), -1);
  EXPECT_EQ(errno, EINVAL);  // the kernel's own answer again: the socket is not listening
  if (fd >= 0) {
    EXPECT_EQ(sys::close(fd), 0);
  }
  EXPECT_EQ(sys::close(listener), 0);
}

TEST_F(SeamEmfileTest, InjectedEmfileOnSocketIsStickyToo) {
  const int spare = sys::eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(spare, 0);
  ASSERT_TRUE(arm("reactor/sys/socket:error=EMFILE,nth=1"));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(sys::socket(AF_INET, SOCK_STREAM, 0), -1);
    EXPECT_EQ(errno, EMFILE);
  }
  EXPECT_EQ(sys::close(spare), 0);
  const int fd = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(sys::close(fd), 0);
}

// ---- race points ------------------------------------------------------------------------------

class SeamRacePointTest : public testing::FaultTest {};

void window() { FAULTLOOP_RACE_POINT("reactor/race/test/window"); }

TEST_F(SeamRacePointTest, DelayRuleStretchesTheWindow) {
  sys::race_point_id("reactor/race/test/window");  // registered before a plan names it
  ASSERT_TRUE(arm("reactor/race/test/window:delay=20ms"));
  const auto start = std::chrono::steady_clock::now();
  window();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, std::chrono::milliseconds(20));
  const auto stats = faults::rule_stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].injected, 1u);
}

TEST_F(SeamRacePointTest, UnarmedRacePointDoesNothing) {
  sys::race_point_id("reactor/race/test/window");
  ASSERT_EQ(faults::armed_reasons(), 0u);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 100000; ++i) {
    window();
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::milliseconds(500));  // generous: ~ a load and a branch each
  EXPECT_EQ(faults::injection_count(), 0u);
}

TEST_F(SeamRacePointTest, OnlyDelayAndYieldAreAccepted) {
  sys::race_point_id("reactor/race/test/window");
  EXPECT_THROW(faults::parse_plan("reactor/race/test/window:error=EIO"), faults::PlanError);
  EXPECT_THROW(faults::parse_plan("reactor/race/test/window:reset"), faults::PlanError);
  EXPECT_THROW(faults::parse_plan("reactor/race/test/window:short=1"), faults::PlanError);
  EXPECT_NO_THROW(faults::parse_plan("reactor/race/test/window:yield"));
  EXPECT_NO_THROW(faults::parse_plan("reactor/race/test/window:delay=1us,thread=worker"));
}

}  // namespace
}  // namespace faultloop
