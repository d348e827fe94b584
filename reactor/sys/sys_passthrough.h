// Internal: the release bodies of the seam — inline pass-through to the kernel (libfiu's
// fiu-local.h idea: the release build compiles the shim away and links no libfiu). Included
// only by sys.h when FAULTLOOP_FAULTS is 0.
#pragma once

#include <pthread.h>

#include <cerrno>
#include <cstring>
#include <atomic>

namespace faultloop::sys {

namespace detail {
/// Fds opened minus closed through the seam; relaxed, touched only by open/close calls.
inline std::atomic<int64_t> g_fds_open{0};

/// Counts a successful fd-making call and passes its result through.
inline int count_open(int fd) {
  if (fd >= 0) {
    g_fds_open.fetch_add(1, std::memory_order_relaxed);
  }
  return fd;
}
}  // namespace detail

inline int accept4(int fd, sockaddr* addr, socklen_t* addrlen, int flags) {
  return detail::count_open(::accept4(fd, addr, addrlen, flags));
}
inline int bind(int fd, const sockaddr* addr, socklen_t addrlen) {
  return ::bind(fd, addr, addrlen);
}
inline int close(int fd) {
  const int rc = ::close(fd);
  // Linux releases the number whatever close returns, except for EBADF.
  if (rc == 0 || errno != EBADF) {
    detail::g_fds_open.fetch_sub(1, std::memory_order_relaxed);
  }
  return rc;
}
inline int connect(int fd, const sockaddr* addr, socklen_t addrlen) {
  return ::connect(fd, addr, addrlen);
}
inline int epoll_create1(int flags) { return detail::count_open(::epoll_create1(flags)); }
inline int epoll_ctl(int epfd, int op, int fd, epoll_event* event) {
  return ::epoll_ctl(epfd, op, fd, event);
}
inline int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout_ms) {
  return ::epoll_wait(epfd, events, maxevents, timeout_ms);
}
inline int eventfd(unsigned int initval, int flags) {
  return detail::count_open(::eventfd(initval, flags));
}
inline int getpeername(int fd, sockaddr* addr, socklen_t* addrlen) {
  return ::getpeername(fd, addr, addrlen);
}
inline int getsockname(int fd, sockaddr* addr, socklen_t* addrlen) {
  return ::getsockname(fd, addr, addrlen);
}
inline int getsockopt(int fd, int level, int name, void* value, socklen_t* len) {
  return ::getsockopt(fd, level, name, value, len);
}
inline int listen(int fd, int backlog) { return ::listen(fd, backlog); }
inline int lstat(const char* path, struct stat* st) { return ::lstat(path, st); }
inline int open(const char* path, int flags, mode_t mode) {
  return detail::count_open(::open(path, flags, mode));
}
inline ssize_t read(int fd, void* buf, size_t count) { return ::read(fd, buf, count); }
inline ssize_t readv(int fd, const iovec* iov, int iovcnt) { return ::readv(fd, iov, iovcnt); }
inline ssize_t recvmsg(int fd, msghdr* msg, int flags) { return ::recvmsg(fd, msg, flags); }
inline ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  return ::sendmsg(fd, msg, flags);
}
inline int setsockopt(int fd, int level, int name, const void* value, socklen_t len) {
  return ::setsockopt(fd, level, name, value, len);
}
inline int shutdown(int fd, int how) { return ::shutdown(fd, how); }
inline int socket(int domain, int type, int protocol) {
  return detail::count_open(::socket(domain, type, protocol));
}
inline int unlink(const char* path) { return ::unlink(path); }
inline ssize_t write(int fd, const void* buf, size_t count) { return ::write(fd, buf, count); }
inline ssize_t writev(int fd, const iovec* iov, int iovcnt) {
  return ::writev(fd, iov, iovcnt);
}

inline void tag(int /*fd*/, std::string_view /*role*/, uint64_t /*conn*/) {}
inline void adopt(int fd, std::string_view /*role*/) { detail::count_open(fd); }
inline int64_t fds_open() { return detail::g_fds_open.load(std::memory_order_relaxed); }
inline void set_thread_kind(std::string_view /*kind*/) {}
inline int set_thread_name(const char* name) {
  char cut[16] = {};
  std::strncpy(cut, name, sizeof cut - 1);
  return ::pthread_setname_np(::pthread_self(), cut);
}
inline void register_points() {}
inline bool events_enabled() { return false; }
inline void emit_lifecycle(std::string_view /*type*/,
                           uint64_t /*conn*/,
                           int /*fd*/,
                           int64_t /*value*/,
                           std::string_view /*detail*/) {}

}  // namespace faultloop::sys
