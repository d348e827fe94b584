#include "reactor/errc.h"
#include "reactor/io_ops.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "reactor/log.h"
#include "reactor/sys/sys.h"

namespace faultloop::io_ops {
namespace {

// EAGAIN and EWOULDBLOCK are one value on Linux; asio checks both where they differ.
constexpr bool is_would_block(int err) {
#if EAGAIN == EWOULDBLOCK
  return err == EAGAIN;
#else
  return err == EAGAIN || err == EWOULDBLOCK;
#endif
}

int iov_count(std::span<const iovec> iov) {
  return static_cast<int>(std::min<std::size_t>(iov.size(), IOV_MAX));
}

bool any_room(std::span<const iovec> iov) {
  return std::any_of(iov.begin(), iov.begin() + iov_count(iov),
                     [](const iovec& v) { return v.iov_len != 0; });
}

}  // namespace

IoResult readv(int fd, std::span<const iovec> iov) {
  const int count = iov_count(iov);
  for (;;) {
    // netpoll #212: the retry below reuses exactly these iovecs; nothing is booked again.
    const ssize_t n = sys::readv(fd, iov.data(), count);
    if (n > 0) {
      return IoResult::done(static_cast<std::size_t>(n));  // errno untouched: not read
    }
    if (n == 0) {
      // netpoll #189: 0 for a request with room is end of input, not "try again".
      return any_room(iov) ? IoResult::eof() : IoResult::done(0);
    }
    const int err = errno;
    if (err == EINTR) {
      continue;
    }
    if (is_would_block(err)) {
      return IoResult::would_block();
    }
    return IoResult::failed(err);
  }
}

IoResult sendmsg(int fd, std::span<const iovec> iov) {
  msghdr msg{};
  // msghdr's iov pointer is not const; sendmsg only reads through it.
  msg.msg_iov = const_cast<iovec*>(iov.data());
  msg.msg_iovlen = static_cast<std::size_t>(iov_count(iov));
  for (;;) {
    const ssize_t n = sys::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n >= 0) {
      return IoResult::done(static_cast<std::size_t>(n));
    }
    const int err = errno;
    if (err == EINTR) {
      continue;
    }
    if (is_would_block(err)) {
      return IoResult::would_block();
    }
    return IoResult::failed(err);
  }
}

AcceptResult accept(int listen_fd, sockaddr_storage* peer, socklen_t* peer_len) {
  for (;;) {
    socklen_t len = sizeof(sockaddr_storage);
    const int fd = sys::accept4(listen_fd, reinterpret_cast<sockaddr*>(peer),
                                peer != nullptr ? &len : nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    const int err = errno;
    if (fd >= 0) {
      if (peer != nullptr && peer_len != nullptr) {
        *peer_len = len;
      }
      return {AcceptStatus::kAccepted, fd, {}};
    }
    switch (err) {
      case EINTR:
      case ECONNABORTED:  // that connection is gone; the next one may be waiting
        continue;
      case EAGAIN:
        return {AcceptStatus::kWouldBlock, -1, {}};
      case EMFILE:
      case ENFILE:
      case ENOBUFS:
      case ENOMEM:
        return {AcceptStatus::kOutOfResources, -1, system_error(err)};
      default:
        return {AcceptStatus::kError, -1, system_error(err)};
    }
  }
}

std::error_code set_nonblocking_defaults(int fd) {
  const int on = 1;
  const int rc = sys::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  const int err = errno;
  if (rc == 0 || err == ENOPROTOOPT || err == EOPNOTSUPP) {
    return {};  // not TCP (a unix socket): nothing to set
  }
  return system_error(err);
}

std::error_code socket_error(int fd) {
  int value = 0;
  socklen_t len = sizeof(value);
  const int rc = sys::getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &len);
  const int err = errno;
  if (rc != 0) {
    return system_error(err);
  }
  return value == 0 ? std::error_code() : system_error(value);
}

std::error_code shutdown_write(int fd) {
  const int rc = sys::shutdown(fd, SHUT_WR);
  const int err = errno;
  return rc == 0 ? std::error_code() : system_error(err);
}

void close_fd(int fd) {
  const int rc = sys::close(fd);
  const int err = errno;
  // Never retried (see the header): the number is released even when close fails.
  if (rc != 0) {
    if (err == EBADF) {
      FAULTLOOP_LOG(kError, "close fd={} failed: EBADF (double close?)", fd);
    } else {
      FAULTLOOP_LOG(kWarn, "close fd={} failed: {}", fd, system_error(err).message());
    }
  }
}

}  // namespace faultloop::io_ops
