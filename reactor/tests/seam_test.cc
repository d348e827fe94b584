// The seam with nothing injected (label unit; release and fault builds): the always-on count
// of fds opened minus closed through the seam, and data moving through it unchanged.
#include "reactor/sys/sys.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "harness/testing/fault_test.h"
#include "reactor/tests/test_sockets.h"

#if FAULTLOOP_FAULTS
#include "faults/fd_ledger.h"
#endif

namespace faultloop {
namespace {

using faultloop::testing::SeamSocketPair;

class SeamFdCountTest : public faultloop::testing::FaultTest {};

TEST_F(SeamFdCountTest, SocketCountsOneAndCloseGivesItBack) {
  const int64_t base = sys::fds_open();
  const int fd = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(sys::fds_open(), base + 1);
  EXPECT_EQ(sys::close(fd), 0);
  EXPECT_EQ(sys::fds_open(), base);
}

TEST_F(SeamFdCountTest, AcceptCountsEachAcceptedConnection) {
  const int64_t base = sys::fds_open();
  const int listener = sys::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(sys::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(sys::listen(listener, 8), 0);
  ASSERT_EQ(sys::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  // Nothing pending: EAGAIN does not count.
  EXPECT_EQ(sys::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(sys::fds_open(), base + 1);

  const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // the peer: raw
  ASSERT_GE(client, 0);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const int conn = sys::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  ASSERT_GE(conn, 0);
  EXPECT_EQ(sys::fds_open(), base + 2);

  EXPECT_EQ(sys::close(conn), 0);
  EXPECT_EQ(sys::close(listener), 0);
  ::close(client);
  EXPECT_EQ(sys::fds_open(), base);
}

TEST_F(SeamFdCountTest, EventfdAndEpollCountOneEach) {
  const int64_t base = sys::fds_open();
  const int efd = sys::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(efd, 0);
  EXPECT_EQ(sys::fds_open(), base + 1);
  // In the fault build the engine gives every epoll set its own eventfd: it stays outside the
  // count, so an epoll set counts exactly one in both builds.
  const int epfd = sys::epoll_create1(EPOLL_CLOEXEC);
  ASSERT_GE(epfd, 0);
  EXPECT_EQ(sys::fds_open(), base + 2);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 42;
  EXPECT_EQ(sys::epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev), 0);
  EXPECT_EQ(sys::fds_open(), base + 2);
  EXPECT_EQ(sys::close(efd), 0);
  EXPECT_EQ(sys::close(epfd), 0);
  EXPECT_EQ(sys::fds_open(), base);
}

TEST_F(SeamFdCountTest, AdoptCountsLikeAnOpen) {
  const int64_t base = sys::fds_open();
  {
    SeamSocketPair pair;
    EXPECT_EQ(sys::fds_open(), base + 1);  // the adopted end only; the raw peer is not ours
  }
  EXPECT_EQ(sys::fds_open(), base);
}

TEST_F(SeamFdCountTest, FailedOpenDoesNotCount) {
  const int64_t base = sys::fds_open();
  EXPECT_EQ(sys::socket(-1, SOCK_STREAM, 0), -1);
  EXPECT_EQ(errno, EAFNOSUPPORT);
  EXPECT_EQ(sys::open("/nonexistent/faultloop/file", O_RDONLY | O_CLOEXEC), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(sys::fds_open(), base);
}

TEST_F(SeamFdCountTest, EbadfCloseDoesNotDecrement) {
  const int64_t base = sys::fds_open();
  EXPECT_EQ(sys::close(-1), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(sys::fds_open(), base);

  const int fd = sys::eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(sys::close(fd), 0);
  EXPECT_EQ(sys::fds_open(), base);
  // The second close fails with EBADF: the number was already released.
  EXPECT_EQ(sys::close(fd), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(sys::fds_open(), base);
#if FAULTLOOP_FAULTS
  // The fault build's ledger reports it; claimed here (SeamLedgerTest checks the details).
  EXPECT_EQ(faults::take_violations().size(), 1u);
#endif
}

class SeamPassThroughTest : public faultloop::testing::FaultTest {};

TEST_F(SeamPassThroughTest, DataMovesUnchangedBothWays) {
  SeamSocketPair pair;
  const std::string out = "hello through the seam";
  iovec iov[2] = {{const_cast<char*>(out.data()), 5}, {const_cast<char*>(out.data()) + 5,
                                                        out.size() - 5}};
  ASSERT_EQ(sys::writev(pair.sut(), iov, 2), static_cast<ssize_t>(out.size()));
  EXPECT_EQ(faultloop::testing::drain_raw(pair.peer()), out);

  faultloop::testing::write_all_raw(pair.peer(), "reply");
  char buf[16] = {};
  ASSERT_EQ(sys::read(pair.sut(), buf, sizeof buf), 5);
  EXPECT_EQ(std::string(buf, 5), "reply");
  EXPECT_EQ(sys::read(pair.sut(), buf, sizeof buf), -1);
  EXPECT_EQ(errno, EAGAIN);
}

}  // namespace
}  // namespace faultloop
