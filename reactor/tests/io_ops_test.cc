// Unit tests of io_ops (label unit, every preset): real sockets through the seam, nothing
// injected (STYLE 41). The end under test enters the seam (sys::adopt or sys::socket) and is
// closed through sys::close, so FaultTest's leak check covers it. Also the log hook.
#include "reactor/io_ops.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "harness/testing/fault_test.h"
#include "reactor/log.h"
#include "reactor/sys/sys.h"
#include "reactor/tests/test_sockets.h"

namespace faultloop {
namespace {

using testing::SeamSocketPair;
using testing::SeamTcpPair;

// ---- readv ------------------------------------------------------------------------------------

class IoOpsReadvTest : public testing::FaultTest {};

TEST_F(IoOpsReadvTest, AvailableDataIsDoneAcrossTheIovecsInOrder) {
  SeamSocketPair pair;
  testing::write_all_raw(pair.peer(), "hello world");
  char a[4];
  char b[32];
  const iovec iov[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
  const io_ops::IoResult r = io_ops::readv(pair.sut(), iov);
  ASSERT_TRUE(r.is_done()) << r.error().message();
  EXPECT_EQ(r.bytes, 11u);
  EXPECT_EQ(std::string(a, 4) + std::string(b, 7), "hello world");
}

TEST_F(IoOpsReadvTest, EmptySocketWouldBlock) {
  SeamSocketPair pair;
  char buf[16];
  const iovec iov[1] = {{buf, sizeof(buf)}};
  const io_ops::IoResult r = io_ops::readv(pair.sut(), iov);
  EXPECT_TRUE(r.is_would_block());
  EXPECT_EQ(r.bytes, 0u);
  EXPECT_FALSE(r.error());
}

TEST_F(IoOpsReadvTest, PeerCloseIsEofAfterTheBufferedData) {
  SeamSocketPair pair;
  testing::write_all_raw(pair.peer(), "last words");
  pair.close_peer();
  char buf[64];
  const iovec iov[1] = {{buf, sizeof(buf)}};
  io_ops::IoResult r = io_ops::readv(pair.sut(), iov);
  ASSERT_TRUE(r.is_done());
  EXPECT_EQ(std::string(buf, r.bytes), "last words");
  r = io_ops::readv(pair.sut(), iov);
  EXPECT_TRUE(r.is_eof());  // netpoll #189: 0 is EOF, not "try again"
  r = io_ops::readv(pair.sut(), iov);
  EXPECT_TRUE(r.is_eof());
}

TEST_F(IoOpsReadvTest, ZeroLengthRequestIsDoneNotEof) {
  SeamSocketPair pair;
  testing::write_all_raw(pair.peer(), "x");
  char buf[1];
  const iovec iov[1] = {{buf, 0}};
  const io_ops::IoResult r = io_ops::readv(pair.sut(), iov);
  EXPECT_TRUE(r.is_done());
  EXPECT_EQ(r.bytes, 0u);
}

TEST_F(IoOpsReadvTest, ResetPeerIsAnErrorInTheSystemCategory) {
  SeamTcpPair pair;
  pair.reset_peer();
  ASSERT_TRUE(testing::wait_raw(pair.sut(), POLLIN, 5000));
  char buf[16];
  const iovec iov[1] = {{buf, sizeof(buf)}};
  const io_ops::IoResult r = io_ops::readv(pair.sut(), iov);
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error(), std::errc::connection_reset);
  EXPECT_EQ(&r.error().category(), &std::system_category());
  EXPECT_TRUE(io_ops::readv(pair.sut(), iov).is_eof());  // the kernel: ECONNRESET, then 0
}

// ---- sendmsg ----------------------------------------------------------------------------------

class IoOpsSendmsgTest : public testing::FaultTest {};

TEST_F(IoOpsSendmsgTest, GatherWriteReachesThePeer) {
  SeamSocketPair pair;
  char a[] = "abc";
  char b[] = "defg";
  const iovec iov[2] = {{a, 3}, {b, 4}};
  const io_ops::IoResult r = io_ops::sendmsg(pair.sut(), iov);
  ASSERT_TRUE(r.is_done()) << r.error().message();
  EXPECT_EQ(r.bytes, 7u);
  EXPECT_EQ(testing::drain_raw(pair.peer()), "abcdefg");
}

TEST_F(IoOpsSendmsgTest, FullSocketGivesAShortCountThenWouldBlock) {
  SeamSocketPair pair;
  std::vector<char> big(8 << 20, 'z');
  const iovec iov[1] = {{big.data(), big.size()}};
  const io_ops::IoResult first = io_ops::sendmsg(pair.sut(), iov);
  ASSERT_TRUE(first.is_done()) << first.error().message();
  EXPECT_GT(first.bytes, 0u);
  EXPECT_LT(first.bytes, big.size());  // the caller keeps the rest
  const io_ops::IoResult second = io_ops::sendmsg(pair.sut(), iov);
  EXPECT_TRUE(second.is_would_block());
}

TEST_F(IoOpsSendmsgTest, ClosedPeerGivesEpipeAndNoSigpipe) {
  // SIGPIPE at its default action would kill this process: MSG_NOSIGNAL must prevent it.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  struct sigaction old {};
  ASSERT_EQ(::sigaction(SIGPIPE, &dfl, &old), 0);
  SeamSocketPair pair;
  pair.close_peer();
  char data[] = "into the void";
  const iovec iov[1] = {{data, sizeof(data)}};
  const io_ops::IoResult r = io_ops::sendmsg(pair.sut(), iov);
  const io_ops::IoResult again = io_ops::sendmsg(pair.sut(), iov);
  ::sigaction(SIGPIPE, &old, nullptr);
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error(), std::errc::broken_pipe);
  EXPECT_EQ(&r.error().category(), &std::system_category());
  EXPECT_EQ(again.error(), std::errc::broken_pipe);  // and we are still alive
}

TEST_F(IoOpsSendmsgTest, ResetTcpPeerGivesAnErrorAndNoSigpipe) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  struct sigaction old {};
  ASSERT_EQ(::sigaction(SIGPIPE, &dfl, &old), 0);
  SeamTcpPair pair;
  pair.reset_peer();
  ASSERT_TRUE(testing::wait_raw(pair.sut(), POLLIN, 5000));
  char data[] = "x";
  const iovec iov[1] = {{data, 1}};
  const io_ops::IoResult r = io_ops::sendmsg(pair.sut(), iov);
  const io_ops::IoResult again = io_ops::sendmsg(pair.sut(), iov);
  ::sigaction(SIGPIPE, &old, nullptr);
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error(), std::errc::connection_reset);  // the pending error, consumed
  EXPECT_EQ(again.error(), std::errc::broken_pipe);
}

// ---- accept and socket options ----------------------------------------------------------------

/// A non-blocking TCP listener on 127.0.0.1:<ephemeral>, opened through the seam.
class SeamListener {
 public:
  SeamListener() {
    fd_ = sys::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      throw std::system_error(errno, std::system_category(), "socket");
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (sys::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        sys::listen(fd_, 16) != 0 ||
        sys::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      const int err = errno;
      sys::close(fd_);
      throw std::system_error(err, std::system_category(), "bind/listen");
    }
    addr_ = addr;
  }
  ~SeamListener() { sys::close(fd_); }
  SeamListener(const SeamListener&) = delete;
  SeamListener& operator=(const SeamListener&) = delete;

  int fd() const { return fd_; }

  /// A raw (outside the seam) blocking client connected to the listener; the caller closes it.
  int connect_raw() const {
    const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0 || ::connect(c, reinterpret_cast<const sockaddr*>(&addr_), sizeof(addr_)) != 0) {
      throw std::system_error(errno, std::system_category(), "connect");
    }
    return c;
  }

 private:
  int fd_ = -1;
  sockaddr_in addr_{};
};

class IoOpsAcceptTest : public testing::FaultTest {};

TEST_F(IoOpsAcceptTest, EmptyListenerWouldBlock) {
  SeamListener listener;
  const io_ops::AcceptResult r = io_ops::accept(listener.fd());
  EXPECT_EQ(r.status, io_ops::AcceptStatus::kWouldBlock);
  EXPECT_EQ(r.fd, -1);
}

TEST_F(IoOpsAcceptTest, PendingConnectionIsAcceptedNonBlockingWithItsPeerAddress) {
  SeamListener listener;
  const int client = listener.connect_raw();
  ASSERT_TRUE(testing::wait_raw(listener.fd(), POLLIN, 5000));
  sockaddr_storage peer{};
  socklen_t peer_len = 0;
  const io_ops::AcceptResult r = io_ops::accept(listener.fd(), &peer, &peer_len);
  ASSERT_EQ(r.status, io_ops::AcceptStatus::kAccepted) << r.error.message();
  ASSERT_GE(r.fd, 0);
  EXPECT_EQ(peer.ss_family, AF_INET);
  EXPECT_EQ(peer_len, sizeof(sockaddr_in));

  EXPECT_FALSE(io_ops::set_nonblocking_defaults(r.fd));
  int nodelay = 0;
  socklen_t len = sizeof(nodelay);
  ASSERT_EQ(::getsockopt(r.fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len), 0);
  EXPECT_NE(nodelay, 0);
  EXPECT_NE(::fcntl(r.fd, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(r.fd, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_FALSE(io_ops::socket_error(r.fd));

  // Accepted and empty: would-block, not EOF.
  char buf[8];
  const iovec iov[1] = {{buf, sizeof(buf)}};
  EXPECT_TRUE(io_ops::readv(r.fd, iov).is_would_block());

  const int64_t open_before = sys::fds_open();
  io_ops::close_fd(r.fd);
  EXPECT_EQ(sys::fds_open(), open_before - 1);
  ::close(client);
}

TEST_F(IoOpsAcceptTest, NodelayIsIgnoredOnUnixSockets) {
  SeamSocketPair pair;
  EXPECT_FALSE(io_ops::set_nonblocking_defaults(pair.sut()));
}

TEST_F(IoOpsAcceptTest, SocketErrorReportsAndConsumesAReset) {
  SeamTcpPair pair;
  pair.reset_peer();
  ASSERT_TRUE(testing::wait_raw(pair.sut(), POLLIN, 5000));
  EXPECT_EQ(io_ops::socket_error(pair.sut()), std::errc::connection_reset);
  EXPECT_FALSE(io_ops::socket_error(pair.sut()));
}

TEST_F(IoOpsAcceptTest, SocketErrorOfABadFdIsTheGetsockoptErrno) {
  // A number far above anything open: no ledger entry is touched by a failing getsockopt.
  EXPECT_EQ(io_ops::socket_error(1 << 20), std::errc::bad_file_descriptor);
}

TEST_F(IoOpsAcceptTest, ShutdownWriteSendsOurFinAndKeepsReading) {
  SeamSocketPair pair;
  EXPECT_FALSE(io_ops::shutdown_write(pair.sut()));
  char byte = 0;
  EXPECT_EQ(::read(pair.peer(), &byte, 1), 0);  // the peer sees end of input
  testing::write_all_raw(pair.peer(), "still here");
  char buf[32];
  const iovec iov[1] = {{buf, sizeof(buf)}};
  const io_ops::IoResult r = io_ops::readv(pair.sut(), iov);
  ASSERT_TRUE(r.is_done());
  EXPECT_EQ(std::string(buf, r.bytes), "still here");
  char data[] = "x";
  const iovec out[1] = {{data, 1}};
  EXPECT_EQ(io_ops::sendmsg(pair.sut(), out).error(), std::errc::broken_pipe);
}

TEST_F(IoOpsAcceptTest, CloseFdClosesOnceThroughTheSeam) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  sys::adopt(fds[0], "conn");
  const int64_t open_before = sys::fds_open();
  io_ops::close_fd(fds[0]);
  EXPECT_EQ(sys::fds_open(), open_before - 1);
  char byte = 0;
  EXPECT_EQ(::read(fds[1], &byte, 1), 0);  // the other end sees the close
  ::close(fds[1]);
}

// ---- log ----------------------------------------------------------------------------------------

/// Captures log lines; restores the default sink afterwards.
class LogSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_sink([this](LogLevel level, std::string_view line) {
      std::lock_guard lock(mutex_);
      lines_.emplace_back(level, std::string(line));
    });
  }
  void TearDown() override { set_log_sink(nullptr); }

  std::mutex mutex_;
  std::vector<std::pair<LogLevel, std::string>> lines_;
};

TEST_F(LogSinkTest, ReplacedSinkReceivesFormattedLines) {
  FAULTLOOP_LOG(kWarn, "conn={} fd={} state={}", 7, 12, "kConnected");
  FAULTLOOP_LOG(kError, "plain");
  ASSERT_EQ(lines_.size(), 2u);
  EXPECT_EQ(lines_[0].first, LogLevel::kWarn);
  EXPECT_EQ(lines_[0].second, "conn=7 fd=12 state=kConnected");
  EXPECT_EQ(lines_[1].second, "plain");
  EXPECT_EQ(log_level_name(LogLevel::kWarn), "WARN");
}

TEST_F(LogSinkTest, LevelsBelowTheCompiledMinimumAreNotEvaluated) {
  int evaluated = 0;
  auto count = [&evaluated] { return ++evaluated; };
  FAULTLOOP_LOG(kTrace, "trace {}", count());  // the default minimum is info or debug
  EXPECT_EQ(evaluated, 0);
  FAULTLOOP_LOG(kDebug, "debug {}", count());
  EXPECT_EQ(evaluated, kLogMinLevel <= 1 ? 1 : 0);
  FAULTLOOP_LOG(kInfo, "info {}", count());
  EXPECT_EQ(lines_.back().second, "info " + std::to_string(evaluated));
}

TEST_F(LogSinkTest, ThrowingSinkLosesTheLineButNeverThrows) {
  set_log_sink([](LogLevel, std::string_view) { throw std::runtime_error("sink down"); });
  EXPECT_NO_THROW(FAULTLOOP_LOG(kError, "lost {}", 1));
}

TEST(LogDefaultSinkTest, WritesOneLineToStderr) {
  set_log_sink(nullptr);
  ::testing::internal::CaptureStderr();
  FAULTLOOP_LOG(kWarn, "to stderr {}", 42);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("WARN  to stderr 42\n"), std::string::npos) << err;
  EXPECT_EQ(err.front(), '[');
}

TEST_F(IoOpsAcceptTest, CloseFdOfAClosedNumberLogsEbadfAndDoesNotRetry) {
  std::vector<std::pair<LogLevel, std::string>> lines;
  set_log_sink([&lines](LogLevel level, std::string_view line) {
    lines.emplace_back(level, std::string(line));
  });
  io_ops::close_fd(1 << 20);  // never open: EBADF (the kernel refused it: no ledger entry)
  set_log_sink(nullptr);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].first, LogLevel::kError);
  EXPECT_NE(lines[0].second.find("EBADF"), std::string::npos);
}

}  // namespace
}  // namespace faultloop
