// Internal: socket pairs and byte helpers for the Connection tests (unit and faults).
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>
#include <cerrno>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "harness/testing/fault_test.h"
#include "reactor/connection.h"
#include "reactor/executor.h"
#include "reactor/poll.h"
#include "reactor/sys/sys.h"
#include "reactor/tests/loop_helpers.h"

namespace faultloop::testing {

// A stream pair: `sut` non-blocking and adopted by the seam (the Connection's), `peer` raw and
// blocking with a 5 s receive timeout (the test's side).
struct Pair {
  int sut = -1;
  int peer = -1;
};

inline void set_peer_timeouts(int fd) {
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

inline Pair unix_pair() {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  ::fcntl(sv[0], F_SETFL, ::fcntl(sv[0], F_GETFL) | O_NONBLOCK);
  sys::adopt(sv[0], "conn");
  set_peer_timeouts(sv[1]);
  return {sv[0], sv[1]};
}

// A raw TCP socket bound to 127.0.0.1:0 (its address in `*addr`), listening with `backlog`
// unless backlog < 0 (bound only: a port nobody listens on while it stays open).
inline int loopback_socket(int backlog, sockaddr_in* addr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  if (backlog >= 0) {
    EXPECT_EQ(::listen(fd, backlog), 0);
  }
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  *addr = a;
  return fd;
}

inline Pair tcp_pair() {
  sockaddr_in a{};
  const int lfd = loopback_socket(4, &a);
  const int peer = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(::connect(peer, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const int sut = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  ::close(lfd);
  EXPECT_GE(sut, 0);
  sys::adopt(sut, "conn");
  set_peer_timeouts(peer);
  return {sut, peer};
}

inline void send_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    ASSERT_GT(n, 0) << std::strerror(errno);
    off += static_cast<std::size_t>(n);
  }
}

// Reads until `n` bytes or EOF/timeout.
inline std::string recv_n(int fd, std::size_t n) {
  std::string out;
  char buf[65536];
  while (out.size() < n) {
    const ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (r <= 0) {
      break;
    }
    out.append(buf, static_cast<std::size_t>(r));
  }
  return out;
}

// True when the peer reads end of input (0) within the receive timeout.
inline bool recv_eof(int fd) {
  char c;
  return ::recv(fd, &c, 1, 0) == 0;
}

inline std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  }
  return s;
}

// Echo handler: whatever is there goes back. A close may come from another thread at any
// point (the close-race tests): then the writer calls fail with the close's error and the
// handler returns; any other failure fails the test. Byte-exactness is checked by the peer.
inline void echo(Connection& c) {
  const std::size_t n = c.len();
  auto data = c.next(n);
  if (!data) {
    ASSERT_FALSE(c.is_active()) << "next on an open connection: " << data.error().message();
    return;
  }
  const std::error_code ec = c.write_binary(*data);
  if (ec) {
    ASSERT_FALSE(c.is_active()) << "write_binary on an open connection: " << ec.message();
    return;
  }
  c.flush();
}

// Base of the Connection tests: a started Poll, an inline executor and a pool made on demand.
// start() makes and starts a connection over a pair; TearDown closes every connection it
// started, waits for their finalizers, closes the peers, then lets FaultTest check that every
// fd and pool node came back.
class ConnectionFixture : public FaultTest {
 protected:
  void start_poll(TriggerMode trigger) {
    PollOptions options;
    options.trigger = trigger;
    auto poll = Poll::create(options);
    ASSERT_TRUE(poll) << poll.error().message();
    poll_ = std::move(*poll);
    poll_->start();
  }

  void TearDown() override {
    for (auto& c : conns_) {
      c->close();
    }
    for (auto& c : conns_) {
      EXPECT_TRUE(eventually([&] { return c->finalized(); })) << "conn " << c->id();
    }
    for (int fd : peers_) {
      ::close(fd);
    }
    if (pool_) {
      pool_->shutdown(std::chrono::steady_clock::now() + std::chrono::seconds(5));
    }
    poll_.reset();
    conns_.clear();
    pool_.reset();
    FaultTest::TearDown();
  }

  PoolExecutor& pool() {
    if (!pool_) {
      pool_ = std::make_unique<PoolExecutor>(PoolOptions{.min_workers = 1, .max_workers = 8});
    }
    return *pool_;
  }

  // A started connection over `pair` (inline executor unless one is given); its peer fd is
  // closed at TearDown.
  ConnectionPtr start(Pair pair, ConnectionHandlers handlers, Executor* executor = nullptr,
                      ConnectionOptions options = {}) {
    peers_.push_back(pair.peer);
    auto conn = Connection::create(pair.sut, *poll_, executor ? *executor : inline_,
                                   std::make_shared<const ConnectionHandlers>(std::move(handlers)),
                                   options);
    conns_.push_back(conn);
    EXPECT_FALSE(conn->start());
    return conn;
  }

  // The test closed (or will close) this peer itself.
  void forget_peer(int fd) {
    peers_.erase(std::remove(peers_.begin(), peers_.end(), fd), peers_.end());
  }

  void close_peer(int fd) {
    ::close(fd);
    forget_peer(fd);
  }

  std::unique_ptr<Poll> poll_;
  InlineExecutor inline_;
  std::unique_ptr<PoolExecutor> pool_;
  std::vector<ConnectionPtr> conns_;
  std::vector<int> peers_;
};

}  // namespace faultloop::testing
