// Public: the syscall seam — the only place where the reactor meets the kernel.
//
// Every syscall the stack makes is declared here, one function each in faultloop::sys, with
// the syscall's own name, parameters and -1/errno contract (asio socket_ops, muduo sockets::).
// The seam is thin: no EINTR retry, no logging, no errno translation — policy lives one layer
// up (reactor/io_ops). Functions are not noexcept: glibc's calls are cancellation points.
//
// Two builds (DESIGN "reactor/sys"), chosen by the PUBLIC definition FAULTLOOP_FAULTS:
//  - 0 (release): inline pass-through bodies (sys_passthrough.h) plus one relaxed counter of
//    fds opened minus closed, touched only by fd-making calls and close;
//  - 1 (faults): out-of-line bodies (sys_faults.cc) that keep the fd ledger and the epoll
//    shadow, test one armed flag, and when armed consult the fault engine (faults/).
#pragma once

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <string_view>

#ifndef FAULTLOOP_FAULTS
#error "FAULTLOOP_FAULTS must be defined (0 or 1) by the faultloop::sys target"
#endif

/// The one list of the seam's syscalls, sorted. Each entry is
///   X(name, default errno of a bare libfiu enable, legal actions, traits)
/// where the last two are expressions over faultloop::faults names, evaluated only where the
/// list is expanded in the fault build. The list drives the point names
/// ("reactor/sys/<name>"), the default libfiu action, the docs table and the CI symbol check.
/// Adding a syscall is one line here plus its declaration below.
#define FAULTLOOP_SYS_CALLS(X)                                                 \
  X(accept4, EMFILE, kFdActions, kTraitCreatesFd)                              \
  X(bind, EADDRINUSE, kFdActions, kTraitNone)                                  \
  X(close, EIO, kFdActions, kTraitClosesFd)                                    \
  X(connect, ECONNREFUSED, kFdActions, kTraitNone)                             \
  X(epoll_create1, EMFILE, kFdActions, kTraitCreatesFd)                        \
  X(epoll_ctl, ENOMEM, kFdActions, kTraitEpollCtl)                             \
  X(epoll_wait, EINTR, kPollActions, kTraitEpollWait)                          \
  X(eventfd, EMFILE, kFdActions, kTraitCreatesFd)                              \
  X(getpeername, ENOTCONN, kFdActions, kTraitNone)                             \
  X(getsockname, ENOBUFS, kFdActions, kTraitNone)                              \
  X(getsockopt, ENOBUFS, kFdActions, kTraitSockopt)                            \
  X(listen, EADDRINUSE, kFdActions, kTraitNone)                                \
  X(lstat, ENOENT, kFdActions, kTraitNone)                                     \
  X(open, EMFILE, kFdActions, kTraitCreatesFd)                                 \
  X(read, EAGAIN, kIoActions, kTraitReads | kTraitSocketIo)                    \
  X(readv, EAGAIN, kIoActions, kTraitReads | kTraitSocketIo)                   \
  X(recvmsg, EAGAIN, kIoActions, kTraitReads | kTraitSocketIo)                 \
  X(sendmsg, EAGAIN, kIoActions, kTraitWrites | kTraitSocketIo)                \
  X(setsockopt, ENOMEM, kFdActions, kTraitNone)                                \
  X(shutdown, ENOTCONN, kFdActions, kTraitNone)                                \
  X(socket, EMFILE, kFdActions, kTraitCreatesFd)                               \
  X(unlink, EACCES, kFdActions, kTraitNone)                                    \
  X(write, EAGAIN, kIoActions, kTraitWrites | kTraitSocketIo)                  \
  X(writev, EAGAIN, kIoActions, kTraitWrites | kTraitSocketIo)

/// The libfiu-style name of the seam point of `call`: "reactor/sys/readv".
#define FAULTLOOP_SYS_POINT(call) "reactor/sys/" #call

namespace faultloop::sys {

/// accept4(2). Callers handle EAGAIN, EINTR, ECONNABORTED, EMFILE, ENFILE, ENOBUFS, ENOMEM,
/// EPROTO/EPERM (treated as a failed single accept).
int accept4(int fd, sockaddr* addr, socklen_t* addrlen, int flags);
/// bind(2). Callers handle every errno as a configuration error (EADDRINUSE, EACCES, ...).
int bind(int fd, const sockaddr* addr, socklen_t addrlen);
/// close(2). The fd is released whatever the result (Linux), except on EBADF. Callers log
/// EINTR/EIO and never retry: a retry could close a number another thread just got.
int close(int fd);
/// connect(2) on a non-blocking socket. Callers handle EINPROGRESS, EINTR, ECONNREFUSED,
/// ENETUNREACH, ETIMEDOUT, EAGAIN (unix sockets).
int connect(int fd, const sockaddr* addr, socklen_t addrlen);
/// epoll_create1(2). Callers handle EMFILE, ENFILE, ENOMEM as a failed loop start.
int epoll_create1(int flags);
/// epoll_ctl(2). Callers handle ENOENT on DEL (already gone), EEXIST, ENOMEM, ENOSPC.
/// In the fault build the engine shadows every successful call (interest set and data).
int epoll_ctl(int epfd, int op, int fd, epoll_event* event);
/// epoll_wait(2). Callers handle EINTR (recompute the timeout and wait again); any other
/// errno is a programming error.
int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout_ms);
/// eventfd(2). Callers handle EMFILE, ENFILE, ENOMEM as a failed loop start.
int eventfd(unsigned int initval, int flags);
/// getpeername(2). Callers handle ENOTCONN (peer already gone) and ENOBUFS.
int getpeername(int fd, sockaddr* addr, socklen_t* addrlen);
/// getsockname(2). Callers handle ENOBUFS.
int getsockname(int fd, sockaddr* addr, socklen_t* addrlen);
/// getsockopt(2). SO_ERROR consumes a pending error (a reset: ECONNRESET). Callers handle
/// ENOBUFS.
int getsockopt(int fd, int level, int name, void* value, socklen_t* len);
/// listen(2). Callers treat every errno as a configuration error.
int listen(int fd, int backlog);
/// lstat(2): a unix socket path's file type before the listener removes a stale one. Callers
/// handle ENOENT (nothing there) and treat other errnos as "do not touch the path".
int lstat(const char* path, struct stat* st);
/// open(2) (mode is used with O_CREAT / O_TMPFILE). Callers handle EMFILE, ENFILE, ENOENT,
/// EACCES.
int open(const char* path, int flags, mode_t mode = 0);
/// read(2). Callers handle EAGAIN, EINTR, ECONNRESET, and 0 as end of input.
ssize_t read(int fd, void* buf, size_t count);
/// readv(2). Callers handle EAGAIN, EINTR, ECONNRESET, ETIMEDOUT, and 0 as end of input.
ssize_t readv(int fd, const iovec* iov, int iovcnt);
/// recvmsg(2). Callers handle EAGAIN, EINTR, ECONNRESET, and 0 as end of input.
ssize_t recvmsg(int fd, msghdr* msg, int flags);
/// sendmsg(2); the reactor always passes MSG_NOSIGNAL. Callers handle EAGAIN, EINTR, EPIPE,
/// ECONNRESET, ENOBUFS, and a short count (the rest is kept and retried).
ssize_t sendmsg(int fd, const msghdr* msg, int flags);
/// setsockopt(2). Callers handle ENOMEM/ENOBUFS and treat the rest as configuration errors.
int setsockopt(int fd, int level, int name, const void* value, socklen_t len);
/// shutdown(2). Callers handle ENOTCONN (peer already gone).
int shutdown(int fd, int how);
/// socket(2). Callers handle EMFILE, ENFILE, ENOBUFS, ENOMEM, EAFNOSUPPORT.
int socket(int domain, int type, int protocol);
/// unlink(2): a unix listener removes its own socket path (and a stale one when asked).
/// Callers handle ENOENT (already gone) and log the rest.
int unlink(const char* path);
/// write(2) (eventfd signalling and pipes). Callers handle EAGAIN, EINTR, EPIPE, ECONNRESET
/// and a short count.
ssize_t write(int fd, const void* buf, size_t count);
/// writev(2). Callers handle EAGAIN, EINTR, EPIPE, ECONNRESET and a short count. Without
/// MSG_NOSIGNAL a write to a reset socket raises SIGPIPE: the reactor uses sendmsg.
ssize_t writev(int fd, const iovec* iov, int iovcnt);

// ---- not syscalls: the seam's bookkeeping API ------------------------------------------

/// Connection id meaning "no connection" in tag() and the call context.
inline constexpr uint64_t kNoConn = 0;

/// Names an fd's role ("listener", "conn", "epoll", "eventfd", ...; a registered role name)
/// and its connection id once the reactor knows them. Role selectors and the ledger's
/// cross-talk check use this. No-op in release. Throws std::invalid_argument for an
/// unregistered role in the fault build (a programming error).
void tag(int fd, std::string_view role, uint64_t conn = kNoConn);

/// An fd made outside the seam (a socketpair in a test, an inherited fd) enters the ledger
/// and the fds_open() count as if the seam had opened it, so its close through the seam is
/// neither foreign nor unbalanced.
void adopt(int fd, std::string_view role);

/// Fds opened minus fds closed through the seam (and adopt()), since process start. Always
/// available, release included: one relaxed counter touched only by open/close calls.
int64_t fds_open();

/// Registers the thread kind of the calling thread ("poller", "worker", "user", a registered
/// name) for `thread=` selectors and trace records. No-op in release.
void set_thread_kind(std::string_view kind);

/// Names the calling thread `name` (pthread_setname_np, i.e. prctl(PR_SET_NAME); the kernel
/// keeps 15 characters, longer names are cut here first). Through the seam because it is a
/// kernel call; never injected. Returns 0 or the errno.
int set_thread_name(const char* name);

/// Registers the seam's points, roles and thread kinds with the engine. Idempotent; it also
/// runs at static initialisation of the fault build, so plans can name them. No-op in release.
void register_points();

/// True when an events file is open (FAULTLOOP_EVENTS, faults::open_events), so a lifecycle
/// record is worth building. Always false in release (inline there).
bool events_enabled();

/// Writes one lifecycle record to the events file (DESIGN "Events file"):
///   {"type": type, "ns": monotonic ns, "conn": conn, "fd": fd, "value": value,
///    "detail": detail}
/// through faults::emit_event, flushed at once; nothing when no events file is open. The
/// reactor's observer hook (reactor/observer.h) calls it; `type` is a lifecycle kind name
/// ("close_winner", ...). Not a syscall (not in FAULTLOOP_SYS_CALLS). Thread-safe; may throw
/// what building the record throws (std::bad_alloc). A no-op in release: nothing is emitted.
void emit_lifecycle(std::string_view type,
                    uint64_t conn,
                    int fd,
                    int64_t value,
                    std::string_view detail);

}  // namespace faultloop::sys

#include "reactor/sys/call_context.h"
#if !FAULTLOOP_FAULTS
#include "reactor/sys/sys_passthrough.h"
#endif
