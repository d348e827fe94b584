// io_ops under injected faults (label faults; built only when FAULTLOOP_FAULTS is on): the
// policy must treat an injected errno exactly as the kernel's. Real sockets underneath.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include "faults/engine.h"
#include "harness/testing/fault_test.h"
#include "reactor/io_ops.h"
#include "reactor/sys/sys.h"
#include "reactor/tests/test_sockets.h"

#if !FAULTLOOP_FAULTS
#error "io_ops_faults_test is built only in fault builds"
#endif

namespace faultloop {
namespace {

using testing::SeamSocketPair;

uint64_t injected_by_rule(std::size_t rule) {
  const auto stats = faults::rule_stats();
  return rule < stats.size() ? stats[rule].injected : 0;
}

uint64_t eligible_of_rule(std::size_t rule) {
  const auto stats = faults::rule_stats();
  return rule < stats.size() ? stats[rule].eligible : 0;
}

// ---- readv ------------------------------------------------------------------------------------

class IoOpsReadvFaultTest : public testing::FaultTest {};

// netpoll #212 / BUGZOO 4: on EINTR the retry reuses the booked iovecs; the data arrives once,
// in order, at the start of the buffers the caller booked.
TEST_F(IoOpsReadvFaultTest, InjectedEintrIsRetriedWithTheSameIovecs) {
  SeamSocketPair pair(1);
  testing::write_all_raw(pair.peer(), "0123456789abcdef");
  char a[6] = {};
  char b[32] = {};
  const iovec iov[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
  ASSERT_TRUE(arm("reactor/sys/readv:error=EINTR,nth=1"));
  const io_ops::IoResult r = io_ops::readv(pair.sut(), iov);
  ASSERT_TRUE(r.is_done()) << r.error().message();
  EXPECT_EQ(r.bytes, 16u);
  EXPECT_EQ(std::string(a, 6), "012345");
  EXPECT_EQ(std::string(b, 10), "6789abcdef");
  EXPECT_EQ(injected_by_rule(0), 1u);
  EXPECT_EQ(eligible_of_rule(0), 2u);  // exactly one retry, no extra read
  EXPECT_EQ(iov[0].iov_base, a);       // the caller's booking is untouched
  EXPECT_EQ(iov[0].iov_len, sizeof(a));
  EXPECT_TRUE(io_ops::readv(pair.sut(), iov).is_would_block());  // nothing read twice
}

TEST_F(IoOpsReadvFaultTest, SeveralEintrsInARowAreAllRetried) {
  SeamSocketPair pair(1);
  testing::write_all_raw(pair.peer(), "payload");
  char buf[16];
  const iovec iov[1] = {{buf, sizeof(buf)}};
  ASSERT_TRUE(arm("reactor/sys/readv:error=EINTR,count=5"));
  const io_ops::IoResult r = io_ops::readv(pair.sut(), iov);
  ASSERT_TRUE(r.is_done());
  EXPECT_EQ(std::string(buf, r.bytes), "payload");
  EXPECT_EQ(injected_by_rule(0), 5u);
}

TEST_F(IoOpsReadvFaultTest, InjectedEagainIsWouldBlockAndDataStaysForLater) {
  SeamSocketPair pair(1);
  testing::write_all_raw(pair.peer(), "later");
  char buf[16];
  const iovec iov[1] = {{buf, sizeof(buf)}};
  ASSERT_TRUE(arm("reactor/sys/readv:error=EAGAIN,nth=1"));
  EXPECT_TRUE(io_ops::readv(pair.sut(), iov).is_would_block());
  const io_ops::IoResult r = io_ops::readv(pair.sut(), iov);
  ASSERT_TRUE(r.is_done());
  EXPECT_EQ(std::string(buf, r.bytes), "later");
}

TEST_F(IoOpsReadvFaultTest, InjectedResetIsEconnresetThenEof) {
  SeamSocketPair pair(1);
  char buf[16];
  const iovec iov[1] = {{buf, sizeof(buf)}};
  ASSERT_TRUE(arm("reactor/sys/readv:error=ECONNRESET,nth=1"));
  const io_ops::IoResult r = io_ops::readv(pair.sut(), iov);
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error(), std::errc::connection_reset);
  EXPECT_TRUE(io_ops::readv(pair.sut(), iov).is_eof());  // the kernel's state after an RST
}

// ---- sendmsg ----------------------------------------------------------------------------------

class IoOpsSendmsgFaultTest : public testing::FaultTest {};

TEST_F(IoOpsSendmsgFaultTest, InjectedEintrIsRetriedAndThePeerGetsTheDataOnce) {
  SeamSocketPair pair(1);
  char a[] = "abc";
  char b[] = "def";
  const iovec iov[2] = {{a, 3}, {b, 3}};
  ASSERT_TRUE(arm("reactor/sys/sendmsg:error=EINTR,nth=1"));
  const io_ops::IoResult r = io_ops::sendmsg(pair.sut(), iov);
  ASSERT_TRUE(r.is_done());
  EXPECT_EQ(r.bytes, 6u);
  EXPECT_EQ(testing::drain_raw(pair.peer()), "abcdef");
  EXPECT_EQ(injected_by_rule(0), 1u);
}

TEST_F(IoOpsSendmsgFaultTest, InjectedShortWriteIsDoneWithTheShortCount) {
  SeamSocketPair pair(1);
  char a[] = "abcdef";
  const iovec iov[1] = {{a, 6}};
  ASSERT_TRUE(arm("reactor/sys/sendmsg:short=2,nth=1"));
  const io_ops::IoResult r = io_ops::sendmsg(pair.sut(), iov);
  ASSERT_TRUE(r.is_done());
  EXPECT_EQ(r.bytes, 2u);
  EXPECT_EQ(testing::drain_raw(pair.peer()), "ab");
}

TEST_F(IoOpsSendmsgFaultTest, InjectedEagainIsWouldBlock) {
  SeamSocketPair pair(1);
  char a[] = "x";
  const iovec iov[1] = {{a, 1}};
  ASSERT_TRUE(arm("reactor/sys/sendmsg:error=EAGAIN,nth=1"));
  EXPECT_TRUE(io_ops::sendmsg(pair.sut(), iov).is_would_block());
  EXPECT_EQ(testing::drain_raw(pair.peer()), "");
}

// ---- accept -----------------------------------------------------------------------------------

/// A TCP listener on loopback through the seam, plus raw clients.
class IoOpsAcceptFaultTest : public testing::FaultTest {
 protected:
  void SetUp() override {
    FaultTest::SetUp();
    listen_fd_ = sys::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT_GE(listen_fd_, 0) << std::strerror(errno);
    addr_.sin_family = AF_INET;
    addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr_);
    ASSERT_EQ(sys::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr_), sizeof(addr_)), 0);
    ASSERT_EQ(sys::listen(listen_fd_, 16), 0);
    ASSERT_EQ(sys::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr_), &len), 0);
  }
  void TearDown() override {
    for (int c : clients_) {
      ::close(c);
    }
    if (listen_fd_ >= 0) {
      sys::close(listen_fd_);
    }
    FaultTest::TearDown();
  }

  /// A raw client connection to the listener (closed in TearDown).
  void connect_client() {
    const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(c, 0);
    ASSERT_EQ(::connect(c, reinterpret_cast<const sockaddr*>(&addr_), sizeof(addr_)), 0);
    clients_.push_back(c);
    ASSERT_TRUE(testing::wait_raw(listen_fd_, POLLIN, 5000));
  }

  int listen_fd_ = -1;
  sockaddr_in addr_{};
  std::vector<int> clients_;
};

TEST_F(IoOpsAcceptFaultTest, InjectedEconnabortedIsRetriedAtOnce) {
  connect_client();
  ASSERT_TRUE(arm("reactor/sys/accept4:error=ECONNABORTED,nth=1"));
  const io_ops::AcceptResult r = io_ops::accept(listen_fd_);
  ASSERT_EQ(r.status, io_ops::AcceptStatus::kAccepted) << r.error.message();
  EXPECT_EQ(injected_by_rule(0), 1u);
  EXPECT_EQ(eligible_of_rule(0), 2u);
  io_ops::close_fd(r.fd);
}

TEST_F(IoOpsAcceptFaultTest, InjectedEintrIsRetriedAtOnce) {
  connect_client();
  ASSERT_TRUE(arm("reactor/sys/accept4:error=EINTR,nth=1"));
  const io_ops::AcceptResult r = io_ops::accept(listen_fd_);
  ASSERT_EQ(r.status, io_ops::AcceptStatus::kAccepted) << r.error.message();
  io_ops::close_fd(r.fd);
}

TEST_F(IoOpsAcceptFaultTest, InjectedEmfileIsOutOfResourcesAndTheConnectionWaits) {
  connect_client();
  // A spare fd (muduo's idleFd idea): closing it through the seam ends the injected EMFILE,
  // which lasts until the next close through the seam (DESIGN "Realism").
  const int spare = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(spare, 0);
  ASSERT_TRUE(arm("reactor/sys/accept4:error=EMFILE,nth=1"));
  const io_ops::AcceptResult r = io_ops::accept(listen_fd_);
  EXPECT_EQ(r.status, io_ops::AcceptStatus::kOutOfResources);
  EXPECT_EQ(r.fd, -1);
  EXPECT_EQ(r.error, std::errc::too_many_files_open);
  EXPECT_EQ(eligible_of_rule(0), 1u);  // no retry: the listener pauses with backoff
  EXPECT_EQ(io_ops::accept(listen_fd_).status, io_ops::AcceptStatus::kOutOfResources);  // sticky
  io_ops::close_fd(spare);
  // The connection waited in the backlog and is accepted once fds come back.
  const io_ops::AcceptResult again = io_ops::accept(listen_fd_);
  ASSERT_EQ(again.status, io_ops::AcceptStatus::kAccepted) << again.error.message();
  io_ops::close_fd(again.fd);
}

TEST_F(IoOpsAcceptFaultTest, InjectedEnfileEnobufsEnomemAreOutOfResources) {
  for (const char* err : {"ENFILE", "ENOBUFS", "ENOMEM"}) {
    SCOPED_TRACE(err);
    ASSERT_TRUE(arm(std::string("reactor/sys/accept4:error=") + err + ",nth=1"));
    const io_ops::AcceptResult r = io_ops::accept(listen_fd_);
    EXPECT_EQ(r.status, io_ops::AcceptStatus::kOutOfResources);
    EXPECT_EQ(r.error.value(), err == std::string("ENFILE")    ? ENFILE
                               : err == std::string("ENOBUFS") ? ENOBUFS
                                                                : ENOMEM);
  }
}

TEST_F(IoOpsAcceptFaultTest, OtherErrnosAreAnErrorOfThatOneAccept) {
  ASSERT_TRUE(arm("reactor/sys/accept4:error=EPROTO,nth=1"));
  const io_ops::AcceptResult r = io_ops::accept(listen_fd_);
  EXPECT_EQ(r.status, io_ops::AcceptStatus::kError);
  EXPECT_EQ(r.error, std::errc::protocol_error);
}

}  // namespace
}  // namespace faultloop
