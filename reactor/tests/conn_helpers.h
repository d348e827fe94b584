// Internal: socket pairs and byte helpers for the Connection tests (unit and faults).
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "reactor/connection.h"
#include "reactor/sys/sys.h"

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

inline Pair tcp_pair() {
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::listen(lfd, 4), 0);
  EXPECT_EQ(::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len), 0);
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

}  // namespace faultloop::testing
