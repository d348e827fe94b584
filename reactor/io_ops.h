// Public: io_ops, the policy layer over the syscall seam (STYLE 17), modelled on asio's
// socket_ops::non_blocking_recv1: the seam (reactor/sys) makes the raw call; these functions
// decide what its result means — EINTR is retried, EAGAIN is "not done", 0 from a read is end
// of input, anything else is a kernel error kept in std::system_category() (STYLE 33).
//
// Every call goes through faultloop::sys, so in the fault build an injected errno reaches this
// policy exactly like one from the kernel. errno is saved on the line after each call and
// nothing (no logging) runs between a call and the check of its result (STYLE 34).
//
// EINTR retries are unbounded, as in asio and libuv: a kernel never returns EINTR forever, and
// a fault plan that does makes a visible hang rather than a fake error.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>

namespace faultloop::io_ops {

/// What a read or write did.
enum class IoStatus : uint8_t {
  kDone,        ///< `bytes` were moved (for a write possibly fewer than asked: a short count)
  kWouldBlock,  ///< EAGAIN/EWOULDBLOCK: nothing moved; wait for readiness
  kEof,         ///< a read returned 0 for a non-empty request: the peer closed its side
  kError,       ///< `error()` holds the errno (std::system_category())
};

/// Result of readv() and sendmsg(). Check `status` first; `bytes` is meaningful for kDone,
/// `error()` for kError. The errno is kept as an int: a std::error_code member would call
/// the out-of-line std::system_category() on every construction, twice per echo round trip
/// (~27 Ir/rt under callgrind, echo_cost.sh).
struct [[nodiscard]] IoResult {
  IoStatus status = IoStatus::kDone;  ///< what happened
  std::size_t bytes = 0;              ///< bytes moved (kDone)
  int err = 0;                        ///< the kernel's errno (kError), else 0

  /// kDone with `n` bytes.
  static IoResult done(std::size_t n) { return {IoStatus::kDone, n, 0}; }
  /// kWouldBlock.
  static IoResult would_block() { return {IoStatus::kWouldBlock, 0, 0}; }
  /// kEof.
  static IoResult eof() { return {IoStatus::kEof, 0, 0}; }
  /// kError with errno `e`.
  static IoResult failed(int e) { return {IoStatus::kError, 0, e}; }

  /// The error in std::system_category() (empty unless kError).
  std::error_code error() const {
    return err == 0 ? std::error_code() : std::error_code(err, std::system_category());
  }

  /// True for kDone.
  bool is_done() const { return status == IoStatus::kDone; }
  /// True for kWouldBlock.
  bool is_would_block() const { return status == IoStatus::kWouldBlock; }
  /// True for kEof.
  bool is_eof() const { return status == IoStatus::kEof; }
  /// True for kError.
  bool is_error() const { return status == IoStatus::kError; }
};

/// Reads into `iov` with sys::readv. EINTR: retried at once with the same iovecs — the caller
/// booked them once and must acknowledge them once (netpoll #212, BUGZOO 4). EAGAIN: kWouldBlock.
/// 0 when some iovec has room: kEof (netpoll #189, BUGZOO 5); 0 for an empty request: done(0).
/// At most IOV_MAX entries are used (a longer array reads less, which is a legal short read).
/// ECONNRESET, ETIMEDOUT and other errnos: kError.
IoResult readv(int fd, std::span<const iovec> iov);

/// Writes `iov` with sys::sendmsg(..., MSG_NOSIGNAL): no SIGPIPE, ever (DESIGN). EINTR:
/// retried at once. EAGAIN: kWouldBlock. A short count is done(n): the caller keeps the rest
/// and writes it later. EPIPE, ECONNRESET, ENOBUFS and other errnos: kError. At most IOV_MAX
/// entries are used (a short count for a longer array).
IoResult sendmsg(int fd, std::span<const iovec> iov);

/// What an accept did.
enum class AcceptStatus : uint8_t {
  kAccepted,        ///< `fd` is a new connection, non-blocking and close-on-exec
  kWouldBlock,      ///< EAGAIN: the backlog is empty
  kOutOfResources,  ///< EMFILE, ENFILE, ENOBUFS, ENOMEM: pause the listener, retry with backoff
  kError,           ///< anything else (EPROTO, EPERM, network errors of the new connection, ...):
                    ///< that one connection failed; the listener goes on accepting
};

/// Result of accept(). `error` is set for kOutOfResources and kError.
struct [[nodiscard]] AcceptResult {
  AcceptStatus status = AcceptStatus::kAccepted;  ///< what happened
  int fd = -1;                                    ///< the new fd (kAccepted), opened via the seam
  std::error_code error;                          ///< the kernel's error (kOutOfResources, kError)
};

/// Accepts one connection with sys::accept4(SOCK_NONBLOCK | SOCK_CLOEXEC). EINTR and
/// ECONNABORTED (a connection reset while in the backlog) are retried at once (DESIGN, gnet
/// #453). When `peer` is not null it receives the peer address and `*peer_len` its length.
/// The caller owns the new fd (tag it with sys::tag, close it with close_fd).
AcceptResult accept(int listen_fd, sockaddr_storage* peer = nullptr,
                    socklen_t* peer_len = nullptr);

/// Per-connection socket options of the reactor: TCP_NODELAY on TCP sockets. On a socket that
/// is not TCP (unix sockets) ENOPROTOOPT/EOPNOTSUPP are ignored. Returns the first other
/// error. The fd must already be non-blocking (accept() and the dialer create it with
/// SOCK_NONBLOCK; the seam has no fcntl).
[[nodiscard]] std::error_code set_nonblocking_defaults(int fd);

/// The socket's pending error (getsockopt SO_ERROR), which reading consumes: {} when there is
/// none, else that error (e.g. ECONNREFUSED after a non-blocking connect, ECONNRESET after an
/// RST). If getsockopt itself fails, its errno.
[[nodiscard]] std::error_code socket_error(int fd);

/// Sends our FIN: sys::shutdown(fd, SHUT_WR). Returns the errno on failure; ENOTCONN means the
/// peer is already gone and callers usually ignore it.
[[nodiscard]] std::error_code shutdown_write(int fd);

/// Closes `fd` with sys::close exactly once and NEVER retries, not even on EINTR: Linux has
/// released the number whatever close returns, and a retry could close a number another thread
/// just got from accept4 (gnet #621, nbio #404). An error is logged (EBADF at kError: it means
/// a double close somewhere).
void close_fd(int fd);

}  // namespace faultloop::io_ops
