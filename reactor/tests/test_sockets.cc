#include "reactor/tests/test_sockets.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <system_error>

#include "reactor/sys/sys.h"

namespace faultloop::testing {

namespace {

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::system_category(), what);
}

}  // namespace

// ---- SeamSocketPair -------------------------------------------------------------------------

SeamSocketPair::SeamSocketPair(uint64_t conn) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    fail("socketpair");
  }
  sut_ = fds[0];
  peer_ = fds[1];
  sys::adopt(sut_, "conn");
  if (conn != sys::kNoConn) {
    sys::tag(sut_, "conn", conn);
  }
}

SeamSocketPair::~SeamSocketPair() {
  close_sut();
  close_peer();
}

void SeamSocketPair::close_sut() {
  if (sut_ >= 0) {
    sys::close(sut_);
    sut_ = -1;
  }
}

void SeamSocketPair::close_peer() {
  if (peer_ >= 0) {
    ::close(peer_);
    peer_ = -1;
  }
}

// ---- SeamTcpPair ----------------------------------------------------------------------------

SeamTcpPair::SeamTcpPair(uint64_t conn) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) {
    fail("socket(listener)");
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 4) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int saved = errno;
    ::close(listener);
    errno = saved;
    fail("bind/listen(listener)");
  }
  sut_ = sys::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sut_ < 0) {
    ::close(listener);
    fail("sys::socket");
  }
  sys::tag(sut_, "conn", conn);
  // A blocking connect on loopback completes at once: the listener's backlog takes it.
  if (sys::connect(sut_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int saved = errno;
    ::close(listener);
    close_sut();
    errno = saved;
    fail("sys::connect");
  }
  peer_ = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  const int saved = errno;
  ::close(listener);
  if (peer_ < 0) {
    close_sut();
    errno = saved;
    fail("accept4(peer)");
  }
  const int flags = ::fcntl(sut_, F_GETFL);
  if (flags < 0 || ::fcntl(sut_, F_SETFL, flags | O_NONBLOCK) != 0) {
    const int saved_fcntl = errno;
    close_sut();
    ::close(peer_);
    peer_ = -1;
    errno = saved_fcntl;
    fail("fcntl(O_NONBLOCK)");
  }
}

SeamTcpPair::~SeamTcpPair() {
  close_sut();
  if (peer_ >= 0) {
    ::close(peer_);
  }
}

void SeamTcpPair::reset_peer() {
  if (peer_ < 0) {
    return;
  }
  const linger lg{1, 0};
  if (::setsockopt(peer_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) != 0) {
    fail("setsockopt(SO_LINGER)");
  }
  ::close(peer_);
  peer_ = -1;
}

void SeamTcpPair::close_sut() {
  if (sut_ >= 0) {
    sys::close(sut_);
    sut_ = -1;
  }
}

// ---- raw helpers ----------------------------------------------------------------------------

void write_all_raw(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      wait_raw(fd, POLLOUT, 1000);
      continue;
    }
    fail("write_all_raw");
  }
}

std::string drain_raw(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

bool wait_raw(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  const int n = ::poll(&p, 1, timeout_ms);
  return n > 0 && (p.revents & (events | POLLERR | POLLHUP)) != 0;
}

std::string temp_path(std::string_view stem) {
  static std::atomic<int> counter{0};
  const char* dir = std::getenv("TMPDIR");
  std::string path = (dir != nullptr && *dir != '\0') ? dir : "/tmp";
  path += "/faultloop-";
  path += stem;
  path += "-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  return path;
}

EpollSet::EpollSet() : epfd_(sys::epoll_create1(EPOLL_CLOEXEC)) {}

EpollSet::~EpollSet() {
  if (epfd_ >= 0) {
    sys::close(epfd_);
  }
}

bool EpollSet::add(int fd, uint32_t events, uint64_t data) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = data;
  return sys::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

std::vector<epoll_event> EpollSet::wait(int timeout_ms, int maxevents) {
  std::vector<epoll_event> evs(static_cast<size_t>(maxevents));
  const int n = sys::epoll_wait(epfd_, evs.data(), maxevents, timeout_ms);
  EXPECT_GE(n, 0) << "errno " << errno;
  evs.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return evs;
}

}  // namespace faultloop::testing
