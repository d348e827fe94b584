// Realism of the emulated kernel states (label faults; DESIGN "Realism"). Each test measures
// the real kernel in the same test — an RST from a loopback peer with SO_LINGER {1, 0}, a
// socketpair peer that closes or shuts down its write side — and compares what the seam shows
// under the injected fault (`events=+ERR`, `reset`, `error=ECONNRESET`, `events=+HUP`,
// `events=+RDHUP`) with it, observable by observable. Nothing the kernel gives is hard-coded.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

#include "faults/engine.h"
#include "harness/testing/fault_test.h"
#include "reactor/sys/sys.h"
#include "reactor/tests/test_sockets.h"

namespace faultloop {
namespace {

constexpr uint64_t kData = 0x5eed0000c0ffeeULL;

/// "IN|OUT|ERR|HUP|RDHUP" for an epoll mask ("-" for none).
std::string mask_name(uint32_t m) {
  std::string out;
  const std::pair<uint32_t, const char*> bits[] = {{EPOLLIN, "IN"},   {EPOLLPRI, "PRI"},
                                                   {EPOLLOUT, "OUT"}, {EPOLLERR, "ERR"},
                                                   {EPOLLHUP, "HUP"}, {EPOLLRDHUP, "RDHUP"}};
  for (const auto& [bit, name] : bits) {
    if ((m & bit) != 0) {
      out += out.empty() ? "" : "|";
      out += name;
      m &= ~bit;
    }
  }
  if (m != 0) {
    out += (out.empty() ? "0x" : "|0x") + std::to_string(m);
  }
  return out.empty() ? "-" : out;
}

/// A call's outcome: its result, or -errno when it failed.
std::string outcome(ssize_t result, int error) {
  if (result >= 0) {
    return std::to_string(result);
  }
  return "-" + std::string(strerrorname_np(error) != nullptr ? strerrorname_np(error) : "?");
}

/// An epoll set with one fd registered (data kData), made through the seam.
class Poller {
 public:
  Poller(int fd, uint32_t interest) {
    epfd_ = sys::epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = interest;
    ev.data.u64 = kData;
    ok_ = epfd_ >= 0 && sys::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
  }
  ~Poller() {
    if (epfd_ >= 0) {
      sys::close(epfd_);
    }
  }
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;
  bool ok() const { return ok_; }

  /// One epoll_wait with timeout 0: the mask reported for our fd ("-" when none); an entry
  /// with other data (the engine's eventfd, say) shows up as "foreign".
  std::string mask_now() {
    epoll_event evs[8];
    const int n = sys::epoll_wait(epfd_, evs, 8, 0);
    if (n < 0) {
      return outcome(-1, errno);
    }
    std::string out = "-";
    for (int i = 0; i < n; ++i) {
      if (evs[i].data.u64 != kData) {
        return "foreign entry " + std::to_string(evs[i].data.u64);
      }
      out = mask_name(evs[i].events);
    }
    return out;
  }

 private:
  int epfd_ = -1;
  bool ok_ = false;
};

// ---- reset ------------------------------------------------------------------------------------

enum class Consumer { kRead, kSend, kSoError };

/// What a reactor sees of a reset connection, step by step.
struct RstSequence {
  std::string mask_before;  ///< epoll before anything consumed the error ("" when not taken)
  std::string first;        ///< the first consumer (readv, sendmsg or SO_ERROR)
  std::string mask_after;   ///< epoll after it
  std::string read2;        ///< the next readv
  std::string send;         ///< sendmsg(MSG_NOSIGNAL) after that
  std::string so_error;     ///< getsockopt(SO_ERROR) last
  std::string mask_again;   ///< epoll once more (edge mode: nothing new)

  friend bool operator==(const RstSequence&, const RstSequence&) = default;
  friend std::ostream& operator<<(std::ostream& os, const RstSequence& s) {
    return os << "{epoll " << s.mask_before << "; first " << s.first << "; epoll "
              << s.mask_after << "; readv " << s.read2 << "; sendmsg " << s.send
              << "; SO_ERROR " << s.so_error << "; epoll " << s.mask_again << "}";
  }
};

std::string do_readv(int fd) {
  char buf[64];
  iovec iov{buf, sizeof buf};
  const ssize_t n = sys::readv(fd, &iov, 1);
  return outcome(n, errno);
}

std::string do_send(int fd) {
  char byte = 'x';
  iovec iov{&byte, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  const ssize_t n = sys::sendmsg(fd, &msg, MSG_NOSIGNAL);
  return outcome(n, errno);
}

std::string do_so_error(int fd) {
  int value = -1;
  socklen_t len = sizeof value;
  if (sys::getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &len) != 0) {
    return outcome(-1, errno);
  }
  return value == 0 ? "0" : outcome(-1, value);
}

std::string consume(Consumer c, int fd) {
  switch (c) {
    case Consumer::kRead:
      return do_readv(fd);
    case Consumer::kSend:
      return do_send(fd);
    case Consumer::kSoError:
      return do_so_error(fd);
  }
  return "?";
}

/// The steps after the state exists: `poll_first` takes an epoll mask before the consumer.
RstSequence observe(int fd, Poller& poller, Consumer c, bool poll_first) {
  RstSequence s;
  if (poll_first) {
    s.mask_before = poller.mask_now();
  }
  s.first = consume(c, fd);
  s.mask_after = poller.mask_now();
  s.read2 = do_readv(fd);
  s.send = do_send(fd);
  s.so_error = do_so_error(fd);
  s.mask_again = poller.mask_now();
  return s;
}

struct ResetCase {
  uint32_t interest;
  Consumer consumer;
};

class SeamResetRealismTest : public testing::FaultTest,
                             public ::testing::WithParamInterface<ResetCase> {
 protected:
  /// A real RST: the peer lingers 0 and closes; we wait (raw poll, which consumes nothing)
  /// until it has arrived, then observe.
  RstSequence real(bool poll_first) {
    testing::SeamTcpPair tcp;
    Poller poller(tcp.sut(), GetParam().interest);
    EXPECT_TRUE(poller.ok());
    tcp.reset_peer();
    EXPECT_TRUE(testing::wait_raw(tcp.sut(), POLLIN, 2000)) << "no RST within 2 s";
    return observe(tcp.sut(), poller, GetParam().consumer, poll_first);
  }

  /// The same workload on a healthy connection, with `rule` (where %FD% names the sut fd)
  /// armed just before observing.
  RstSequence injected(const std::string& rule, bool poll_first) {
    faults::reset();
    testing::SeamTcpPair tcp;
    Poller poller(tcp.sut(), GetParam().interest);
    EXPECT_TRUE(poller.ok());
    std::string text = rule;
    text.replace(text.find("%FD%"), 4, std::to_string(tcp.sut()));
    EXPECT_TRUE(arm(text));
    RstSequence s = observe(tcp.sut(), poller, GetParam().consumer, poll_first);
    faults::disarm();
    return s;
  }
};

TEST_P(SeamResetRealismTest, InjectedErrEventMatchesARealRst) {
  const RstSequence kernel = real(/*poll_first=*/true);
  const RstSequence emulated =
      injected("reactor/sys/epoll_wait:events=+ERR,fd=%FD%,nth=1", /*poll_first=*/true);
  EXPECT_EQ(emulated, kernel);
  RecordProperty("kernel", ::testing::PrintToString(kernel));
}

/// The same cases for the actions that fire on the consuming call itself (socket I/O only).
class SeamResetActionRealismTest : public SeamResetRealismTest {};

TEST_P(SeamResetActionRealismTest, ResetActionMatchesARealRstSeenByThatCall) {
  const RstSequence kernel = real(/*poll_first=*/false);
  const std::string point = GetParam().consumer == Consumer::kRead ? "readv" : "sendmsg";
  const RstSequence reset =
      injected("reactor/sys/" + point + ":reset,fd=%FD%,nth=1", /*poll_first=*/false);
  EXPECT_EQ(reset, kernel) << "reset on " << point;
  RecordProperty("kernel", ::testing::PrintToString(kernel));
  const RstSequence econnreset = injected(
      "reactor/sys/" + point + ":error=ECONNRESET,fd=%FD%,nth=1", /*poll_first=*/false);
  EXPECT_EQ(econnreset, kernel) << "error=ECONNRESET on " << point;
}

std::string case_name(const ::testing::TestParamInfo<ResetCase>& p) {
  std::string name;
  const uint32_t m = p.param.interest;
  name += (m & EPOLLET) != 0 ? "Edge" : "Level";
  name += "In";
  name += (m & EPOLLOUT) != 0 ? "Out" : "";
  name += (m & EPOLLRDHUP) != 0 ? "Rdhup" : "";
  switch (p.param.consumer) {
    case Consumer::kRead:
      return name + "ReadFirst";
    case Consumer::kSend:
      return name + "SendFirst";
    case Consumer::kSoError:
      return name + "SoErrorFirst";
  }
  return name;
}

std::vector<ResetCase> reset_cases(std::initializer_list<Consumer> consumers) {
  std::vector<ResetCase> cases;
  for (uint32_t interest : {uint32_t{EPOLLIN}, uint32_t{EPOLLIN | EPOLLRDHUP},
                            uint32_t{EPOLLIN | EPOLLOUT | EPOLLRDHUP}}) {
    for (uint32_t edge : {0u, uint32_t{EPOLLET}}) {
      for (Consumer c : consumers) {
        cases.push_back(ResetCase{interest | edge, c});
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(
    Inline, SeamResetRealismTest,
    ::testing::ValuesIn(reset_cases({Consumer::kRead, Consumer::kSend, Consumer::kSoError})),
    case_name);
INSTANTIATE_TEST_SUITE_P(Inline, SeamResetActionRealismTest,
                         ::testing::ValuesIn(reset_cases({Consumer::kRead, Consumer::kSend})),
                         case_name);

// ---- peer close and half-close ----------------------------------------------------------------

/// What a reactor sees of a peer that wrote "abc" and then went away (or half away).
struct PeerGoneSequence {
  std::string mask_before;
  std::string read1;  ///< the buffered data
  std::string read2;  ///< end of input
  std::string read3;  ///< still end of input
  std::string send;   ///< sendmsg(MSG_NOSIGNAL)
  std::string mask_after;

  friend bool operator==(const PeerGoneSequence&, const PeerGoneSequence&) = default;
  friend std::ostream& operator<<(std::ostream& os, const PeerGoneSequence& s) {
    return os << "{epoll " << s.mask_before << "; read " << s.read1 << "; read " << s.read2
              << "; read " << s.read3 << "; sendmsg " << s.send << "; epoll " << s.mask_after
              << "}";
  }
};

std::string do_read(int fd) {
  char buf[64];
  const ssize_t n = sys::read(fd, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : outcome(n, errno);
}

PeerGoneSequence observe_peer_gone(int fd, Poller& poller) {
  PeerGoneSequence s;
  s.mask_before = poller.mask_now();
  s.read1 = do_read(fd);
  s.read2 = do_read(fd);
  s.read3 = do_read(fd);
  s.send = do_send(fd);
  s.mask_after = poller.mask_now();
  return s;
}

struct PeerGoneCase {
  uint32_t interest;
  bool full_close;  ///< true: the peer closes (+HUP); false: it shuts down writing (+RDHUP)
};

class SeamPeerGoneRealismTest : public testing::FaultTest,
                                public ::testing::WithParamInterface<PeerGoneCase> {};

TEST_P(SeamPeerGoneRealismTest, InjectedEventMatchesTheRealPeer) {
  const uint32_t interest = GetParam().interest;
  PeerGoneSequence kernel;
  {
    testing::SeamSocketPair pair(1);
    Poller poller(pair.sut(), interest);
    ASSERT_TRUE(poller.ok());
    testing::write_all_raw(pair.peer(), "abc");
    if (GetParam().full_close) {
      pair.close_peer();
    } else {
      ASSERT_EQ(::shutdown(pair.peer(), SHUT_WR), 0);
    }
    kernel = observe_peer_gone(pair.sut(), poller);
  }
  PeerGoneSequence emulated;
  {
    testing::SeamSocketPair pair(2);
    Poller poller(pair.sut(), interest);
    ASSERT_TRUE(poller.ok());
    testing::write_all_raw(pair.peer(), "abc");
    ASSERT_TRUE(arm(std::string("reactor/sys/epoll_wait:events=") +
                    (GetParam().full_close ? "+HUP" : "+RDHUP") +
                    ",fd=" + std::to_string(pair.sut()) + ",nth=1"));
    emulated = observe_peer_gone(pair.sut(), poller);
    faults::disarm();
  }
  EXPECT_EQ(emulated, kernel);
  RecordProperty("kernel", ::testing::PrintToString(kernel));
}

std::vector<PeerGoneCase> peer_gone_cases() {
  std::vector<PeerGoneCase> cases;
  for (uint32_t interest : {uint32_t{EPOLLIN}, uint32_t{EPOLLIN | EPOLLRDHUP},
                            uint32_t{EPOLLIN | EPOLLOUT | EPOLLRDHUP},
                            uint32_t{EPOLLIN | EPOLLRDHUP | EPOLLET},
                            uint32_t{EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET}}) {
    for (bool full_close : {true, false}) {
      cases.push_back(PeerGoneCase{interest, full_close});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(
    Inline, SeamPeerGoneRealismTest, ::testing::ValuesIn(peer_gone_cases()),
    [](const ::testing::TestParamInfo<PeerGoneCase>& p) {
      const uint32_t m = p.param.interest;
      std::string name = p.param.full_close ? "Hup" : "Rdhup";
      name += (m & EPOLLET) != 0 ? "Edge" : "Level";
      name += "In";
      name += (m & EPOLLOUT) != 0 ? "Out" : "";
      name += (m & EPOLLRDHUP) != 0 ? "Rdhup" : "";
      return name;
    });

}  // namespace
}  // namespace faultloop
