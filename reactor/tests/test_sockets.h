// Internal: real-socket helpers for the seam's tests (STYLE 41: socketpair and loopback, no
// mocks). The end that is "the system under test" enters the seam (sys::adopt or sys::socket)
// and is closed through sys::close, so the fd ledger and sys::fds_open() stay balanced; the
// peer end is raw POSIX and never goes through the seam (faults are for the system under test).
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace faultloop::testing {

/// A connected AF_UNIX stream pair, both ends non-blocking and close-on-exec. `sut()` entered
/// the seam with sys::adopt(fd, "conn") (and is tagged with `conn` when it is not 0); `peer()`
/// is raw. The destructor closes what is still open: sut through sys::close, peer with ::close.
class SeamSocketPair {
 public:
  /// Throws std::system_error when socketpair fails.
  explicit SeamSocketPair(uint64_t conn = 0);
  ~SeamSocketPair();
  SeamSocketPair(const SeamSocketPair&) = delete;
  SeamSocketPair& operator=(const SeamSocketPair&) = delete;

  int sut() const { return sut_; }
  int peer() const { return peer_; }

  /// Closes the sut end through the seam now (sys::close) and forgets it.
  void close_sut();
  /// Closes the peer end now (raw) and forgets it.
  void close_peer();

 private:
  int sut_ = -1;
  int peer_ = -1;
};

/// A loopback TCP connection. `sut()` was made by sys::socket + sys::connect (tagged "conn",
/// with `conn` when it is not 0); `peer()` was accepted with a raw accept4 from a raw listener
/// that is closed again before the constructor returns. Both ends are non-blocking.
class SeamTcpPair {
 public:
  /// Throws std::system_error when any step of the set-up fails.
  explicit SeamTcpPair(uint64_t conn = 0);
  ~SeamTcpPair();
  SeamTcpPair(const SeamTcpPair&) = delete;
  SeamTcpPair& operator=(const SeamTcpPair&) = delete;

  int sut() const { return sut_; }
  int peer() const { return peer_; }

  /// The peer resets the connection: SO_LINGER {1, 0} then close, so the kernel sends an RST.
  void reset_peer();
  /// Closes the sut end through the seam now and forgets it.
  void close_sut();

 private:
  int sut_ = -1;
  int peer_ = -1;
};

/// Writes all of `data` to the raw fd `fd` (waiting with poll while it is full). Throws
/// std::system_error on an error.
void write_all_raw(int fd, std::string_view data);

/// Reads what the raw fd `fd` holds right now (until EAGAIN or end of input).
std::string drain_raw(int fd);

/// Waits with a raw poll(2) until `fd` reports any of `events` (POLL* bits); false on timeout.
bool wait_raw(int fd, short events, int timeout_ms);

/// A fresh path under $TMPDIR (or /tmp) for a test file: "<dir>/faultloop-<stem>-<pid>-<n>".
/// The file is not created.
std::string temp_path(std::string_view stem);

/// An epoll set made through the seam (sys::epoll_create1), closed through the seam.
class EpollSet {
 public:
  EpollSet();
  ~EpollSet();
  EpollSet(const EpollSet&) = delete;
  EpollSet& operator=(const EpollSet&) = delete;

  /// The epoll fd.
  int fd() const { return epfd_; }

  /// sys::epoll_ctl ADD of `fd` with `events` and data.u64 = `data`; true on success.
  bool add(int fd, uint32_t events, uint64_t data);

  /// One sys::epoll_wait; the entries it returned (a failed call is a test failure).
  std::vector<epoll_event> wait(int timeout_ms, int maxevents = 16);

 private:
  int epfd_ = -1;
};

}  // namespace faultloop::testing
