// The seam's fault build (FAULTLOOP_FAULTS=1). Per call, in DESIGN's order:
//  1. open/close/epoll_ctl bookkeeping that must never miss a call (a close is recorded before
//     the real close; the epoll shadow follows every successful epoll_ctl), armed or not;
//  2. the armed flag — one relaxed load; if clear, tail-call the real call;
//  3. if armed: the engine checks identity (ledger) and decides; apply its decision or make
//     the real call;
//  4. a successful open is recorded after the call; errno is restored last.
#include <fiu.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "faults/engine.h"
#include "faults/events.h"
#include "faults/registry.h"
#include "faults/seam_api.h"
#include "reactor/sys/sys.h"

namespace faultloop::sys {

namespace {

namespace f = faultloop::faults;
using f::seam::Decision;

// The legal actions of the list's third column (DESIGN "Actions").
constexpr f::ActionMask kFdActions = f::action_bit(f::ActionKind::kError) |
                                     f::action_bit(f::ActionKind::kDelay) |
                                     f::action_bit(f::ActionKind::kYield);
constexpr f::ActionMask kIoActions = kFdActions | f::action_bit(f::ActionKind::kShort) |
                                     f::action_bit(f::ActionKind::kReset);
constexpr f::ActionMask kPollActions = kFdActions | f::action_bit(f::ActionKind::kEvents);
using f::kTraitClosesFd;
using f::kTraitCreatesFd;
using f::kTraitEpollCtl;
using f::kTraitEpollWait;
using f::kTraitNone;
using f::kTraitReads;
using f::kTraitSocketIo;
using f::kTraitSockopt;
using f::kTraitWrites;

// The point id of every seam call, filled by register_points().
struct Points {
#define FAULTLOOP_X(name, err, actions, traits) f::PointId name = 0;
  FAULTLOOP_SYS_CALLS(FAULTLOOP_X)
#undef FAULTLOOP_X
};
constinit Points g_points{};

// Fds opened minus closed through the seam: the same always-on counter as release.
constinit std::atomic<int64_t> g_fds_open{0};

// Registration at static initialisation, so plans parsed in main() can name every point; the
// environment check turns libfiu control on under fiu-run (FIU_ENABLE / FIU_CTRL_FIFO).
[[maybe_unused]] const bool g_registered = [] {
  register_points();
  if (std::getenv("FIU_ENABLE") != nullptr || std::getenv("FIU_CTRL_FIFO") != nullptr) {
    f::enable_libfiu();
  }
  return true;
}();

// A successful fd-making call: counted and entered in the ledger; errno kept.
int opened(int fd) {
  if (fd >= 0) {
    const int saved = errno;
    g_fds_open.fetch_add(1, std::memory_order_relaxed);
    f::seam::on_open(fd);
    errno = saved;
  }
  return fd;
}

// The total length of an iovec array.
std::size_t total_of(const iovec* iov, int iovcnt) {
  std::size_t total = 0;
  for (int i = 0; i < iovcnt; ++i) {
    total += iov[i].iov_len;
  }
  return total;
}

// Copies into `out` the prefix of `iov` that holds `cap` bytes (the last entry cut short).
// Returns the new count. Real data moves: the call is made with smaller lengths.
int cap_iov(const iovec* iov, int iovcnt, std::size_t cap, iovec* out) {
  int n = 0;
  for (int i = 0; i < iovcnt && cap > 0; ++i) {
    out[n] = iov[i];
    out[n].iov_len = std::min(iov[i].iov_len, cap);
    cap -= out[n].iov_len;
    ++n;
  }
  return n;
}

// The armed path of a data call: `real(cap)` makes the call with at most `cap` bytes.
template <class Real>
ssize_t io_armed(f::PointId point, int fd, std::size_t requested, Real real) {
  const Decision d = f::seam::decide(point, fd, requested);
  int64_t result = 0;
  int error = 0;
  switch (d.verdict) {
    case Decision::Verdict::kFail:
      result = -1;
      error = d.error;
      break;
    case Decision::Verdict::kReturn:
      result = d.value;
      break;
    case Decision::Verdict::kShort:
    case Decision::Verdict::kPass:
      result = real(d.verdict == Decision::Verdict::kShort ? d.cap : SIZE_MAX);
      error = errno;
      break;
  }
  return static_cast<ssize_t>(f::seam::finish(d, result, error));
}

// The armed path of a call that moves no data (error/delay/yield only).
template <class Real>
int plain_armed(f::PointId point, int fd, Real real) {
  const Decision d = f::seam::decide(point, fd, 0);
  int64_t result = 0;
  int error = 0;
  if (d.verdict == Decision::Verdict::kFail) {
    result = -1;
    error = d.error;
  } else {
    result = real();
    error = errno;
  }
  return static_cast<int>(f::seam::finish(d, result, error));
}

// The armed path of an fd-making call: a plain call whose success is entered in the ledger.
template <class Real>
int create_armed(f::PointId point, int fd, Real real) {
  return plain_armed(point, fd, [&] { return opened(real()); });
}

// Makes `call(iov, iovcnt)` with the iovec array cut down to `cap` bytes in total (SIZE_MAX:
// as given). The array is copied: the caller's stays as it was.
template <class Call>
ssize_t with_capped_iov(const iovec* iov, int iovcnt, std::size_t cap, Call call) {
  if (cap == SIZE_MAX || iovcnt <= 0 || iovcnt > IOV_MAX) {
    return call(iov, iovcnt);  // an iovcnt beyond IOV_MAX fails with EINVAL in the kernel
  }
  iovec capped[IOV_MAX];
  return call(capped, cap_iov(iov, iovcnt, cap, capped));
}

}  // namespace

void register_points() {
#define FAULTLOOP_X(name, err, actions, traits)                                         \
  g_points.name = f::register_point(f::PointInfo{FAULTLOOP_SYS_POINT(name),            \
                                                 f::PointKind::kSyscall, err, actions, \
                                                 static_cast<uint32_t>(traits)});
  FAULTLOOP_SYS_CALLS(FAULTLOOP_X)
#undef FAULTLOOP_X
  for (const char* role : {"listener", "conn", "client", "epoll", "eventfd", "timerfd", "file"}) {
    f::register_role(role);
  }
  for (const char* kind : {"poller", "worker", "user", "main"}) {
    f::register_thread_kind(kind);
  }
}

// ---- the armed paths, out of line so the unarmed path stays a test and a tail call --------

namespace {

[[gnu::noinline]] int accept4_armed(int fd, sockaddr* addr, socklen_t* addrlen, int flags) {
  return create_armed(g_points.accept4, fd, [&] { return ::accept4(fd, addr, addrlen, flags); });
}

[[gnu::noinline]] int bind_armed(int fd, const sockaddr* addr, socklen_t addrlen) {
  return plain_armed(g_points.bind, fd, [&] { return ::bind(fd, addr, addrlen); });
}

[[gnu::noinline]] int connect_armed(int fd, const sockaddr* addr, socklen_t addrlen) {
  return plain_armed(g_points.connect, fd, [&] { return ::connect(fd, addr, addrlen); });
}

[[gnu::noinline]] int epoll_ctl_armed(int epfd, int op, int fd, epoll_event* event) {
  f::seam::check_identity(fd, g_points.epoll_ctl);  // the target, too (netpoll #200)
  return plain_armed(g_points.epoll_ctl, epfd, [&] { return ::epoll_ctl(epfd, op, fd, event); });
}

[[gnu::noinline]] int epoll_wait_armed(int epfd, epoll_event* events, int maxevents,
                                       int timeout_ms) {
  using Clock = std::chrono::steady_clock;  // time is not a syscall (STYLE 24)
  const Decision d = f::seam::decide(g_points.epoll_wait, epfd, 0);
  if (d.verdict == Decision::Verdict::kFail) {
    return static_cast<int>(f::seam::finish(d, -1, d.error));
  }
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int result = 0;
  int error = 0;
  for (int rewaits = 0;; ++rewaits) {
    int timeout = timeout_ms;
    if (timeout_ms > 0) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      timeout = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    // Events the kernel will not report by itself must not wait for the timeout.
    if (f::seam::epoll_has_pending(epfd)) {
      timeout = 0;
    }
    const int n = ::epoll_wait(epfd, events, maxevents, timeout);
    result = f::seam::epoll_wait_after(epfd, events, maxevents, n, errno,
                                       /*apply_rules=*/rewaits == 0);
    error = errno;
    // The kernel returns 0 only when the timeout has run out. When the engine took every entry
    // away (a `-EV` rule, its own wake-up eventfd), wait again for what is left of the caller's
    // timeout: the deferred event then arrives later in the same call, as a late kernel event
    // would. `events` rules apply to the first round only (one unit per call and fd), so the
    // later rounds cannot be emptied by a rule; the bound guards against anything else.
    constexpr int kMaxRewaits = 64;
    if (result != 0 || n <= 0 || timeout_ms == 0 || rewaits == kMaxRewaits ||
        (timeout_ms > 0 && Clock::now() >= deadline)) {
      break;
    }
  }
  return static_cast<int>(f::seam::finish(d, result, error));
}

[[gnu::noinline]] int getpeername_armed(int fd, sockaddr* addr, socklen_t* addrlen) {
  return plain_armed(g_points.getpeername, fd, [&] { return ::getpeername(fd, addr, addrlen); });
}

[[gnu::noinline]] int getsockname_armed(int fd, sockaddr* addr, socklen_t* addrlen) {
  return plain_armed(g_points.getsockname, fd, [&] { return ::getsockname(fd, addr, addrlen); });
}

[[gnu::noinline]] int getsockopt_armed(int fd, int level, int name, void* value,
                                       socklen_t* len) {
  return plain_armed(g_points.getsockopt, fd, [&] {
    const int rc = ::getsockopt(fd, level, name, value, len);
    if (rc == 0 && level == SOL_SOCKET && name == SO_ERROR && value != nullptr &&
        len != nullptr && *len >= sizeof(int)) {
      // SO_ERROR consumes an emulated pending ECONNRESET, as it does a real one.
      if (const int pending = f::seam::take_pending_error(fd); pending != 0) {
        *static_cast<int*>(value) = pending;
      }
    }
    return rc;
  });
}

[[gnu::noinline]] int listen_armed(int fd, int backlog) {
  return plain_armed(g_points.listen, fd, [&] { return ::listen(fd, backlog); });
}

[[gnu::noinline]] int lstat_armed(const char* path, struct stat* st) {
  return plain_armed(g_points.lstat, -1, [&] { return ::lstat(path, st); });
}

[[gnu::noinline]] int unlink_armed(const char* path) {
  return plain_armed(g_points.unlink, -1, [&] { return ::unlink(path); });
}

[[gnu::noinline]] int open_armed(const char* path, int flags, mode_t mode) {
  return create_armed(g_points.open, -1, [&] { return ::open(path, flags, mode); });
}

[[gnu::noinline]] ssize_t read_armed(int fd, void* buf, size_t count) {
  return io_armed(g_points.read, fd, count,
                  [&](std::size_t cap) { return ::read(fd, buf, std::min(count, cap)); });
}

[[gnu::noinline]] ssize_t readv_armed(int fd, const iovec* iov, int iovcnt) {
  return io_armed(g_points.readv, fd, total_of(iov, iovcnt), [&](std::size_t cap) {
    return with_capped_iov(iov, iovcnt, cap,
                           [&](const iovec* v, int n) { return ::readv(fd, v, n); });
  });
}

[[gnu::noinline]] ssize_t recvmsg_armed(int fd, msghdr* msg, int flags) {
  const int iovcnt = int(msg->msg_iovlen);
  return io_armed(g_points.recvmsg, fd, total_of(msg->msg_iov, iovcnt), [&](std::size_t cap) {
    return with_capped_iov(msg->msg_iov, iovcnt, cap, [&](const iovec* v, int n) {
      msghdr copy = *msg;  // the caller's msghdr keeps its iovecs; flags and lengths come back
      copy.msg_iov = const_cast<iovec*>(v);
      copy.msg_iovlen = size_t(n);
      const ssize_t r = ::recvmsg(fd, &copy, flags);
      msg->msg_namelen = copy.msg_namelen;
      msg->msg_controllen = copy.msg_controllen;
      msg->msg_flags = copy.msg_flags;
      return r;
    });
  });
}

[[gnu::noinline]] ssize_t sendmsg_armed(int fd, const msghdr* msg, int flags) {
  const int iovcnt = int(msg->msg_iovlen);
  return io_armed(g_points.sendmsg, fd, total_of(msg->msg_iov, iovcnt), [&](std::size_t cap) {
    return with_capped_iov(msg->msg_iov, iovcnt, cap, [&](const iovec* v, int n) {
      msghdr copy = *msg;
      copy.msg_iov = const_cast<iovec*>(v);
      copy.msg_iovlen = size_t(n);
      return ::sendmsg(fd, &copy, flags);
    });
  });
}

[[gnu::noinline]] int setsockopt_armed(int fd, int level, int name, const void* value,
                                       socklen_t len) {
  return plain_armed(g_points.setsockopt, fd,
                     [&] { return ::setsockopt(fd, level, name, value, len); });
}

[[gnu::noinline]] int shutdown_armed(int fd, int how) {
  return plain_armed(g_points.shutdown, fd, [&] { return ::shutdown(fd, how); });
}

[[gnu::noinline]] int socket_armed(int domain, int type, int protocol) {
  return create_armed(g_points.socket, -1, [&] { return ::socket(domain, type, protocol); });
}

[[gnu::noinline]] int eventfd_armed(unsigned int initval, int flags) {
  return create_armed(g_points.eventfd, -1, [&] { return ::eventfd(initval, flags); });
}

[[gnu::noinline]] int epoll_create1_armed(int flags) {
  return create_armed(g_points.epoll_create1, -1, [&] { return ::epoll_create1(flags); });
}

[[gnu::noinline]] ssize_t write_armed(int fd, const void* buf, size_t count) {
  return io_armed(g_points.write, fd, count,
                  [&](std::size_t cap) { return ::write(fd, buf, std::min(count, cap)); });
}

[[gnu::noinline]] ssize_t writev_armed(int fd, const iovec* iov, int iovcnt) {
  return io_armed(g_points.writev, fd, total_of(iov, iovcnt), [&](std::size_t cap) {
    return with_capped_iov(iov, iovcnt, cap,
                           [&](const iovec* v, int n) { return ::writev(fd, v, n); });
  });
}

}  // namespace

// ---- the seam: unarmed, one relaxed load and a tail call ------------------------------------

int accept4(int fd, sockaddr* addr, socklen_t* addrlen, int flags) {
  if (!f::armed()) [[likely]] {
    return opened(::accept4(fd, addr, addrlen, flags));
  }
  return accept4_armed(fd, addr, addrlen, flags);
}

int bind(int fd, const sockaddr* addr, socklen_t addrlen) {
  if (!f::armed()) [[likely]] {
    return ::bind(fd, addr, addrlen);
  }
  return bind_armed(fd, addr, addrlen);
}

int close(int fd) {
  // Recorded before the real close: another thread's accept4 may get this number next.
  f::seam::on_close(fd, g_points.close);
  Decision d;
  const bool armed = f::armed();
  if (armed) {
    d = f::seam::decide(g_points.close, fd, 0);
  }
  int result = ::close(fd);
  int error = errno;
  // Linux releases the number whatever close returns, except for EBADF.
  if (result == 0 || error != EBADF) {
    g_fds_open.fetch_sub(1, std::memory_order_relaxed);
  }
  if (!armed) {
    return result;
  }
  if (d.verdict == Decision::Verdict::kFail) {
    // An injected close error happens after the real close (libfiu's skips it: a manufactured
    // leak, DESIGN "What was measured about libfiu").
    result = -1;
    error = d.error;
  }
  return static_cast<int>(f::seam::finish(d, result, error));
}

int connect(int fd, const sockaddr* addr, socklen_t addrlen) {
  if (!f::armed()) [[likely]] {
    return ::connect(fd, addr, addrlen);
  }
  return connect_armed(fd, addr, addrlen);
}

int epoll_create1(int flags) {
  const int epfd =
      f::armed() ? epoll_create1_armed(flags) : opened(::epoll_create1(flags));
  if (epfd >= 0) {
    const int saved = errno;
    f::seam::on_epoll_create(epfd);
    errno = saved;
  }
  return epfd;
}

int epoll_ctl(int epfd, int op, int fd, epoll_event* event) {
  const int result =
      f::armed() ? epoll_ctl_armed(epfd, op, fd, event) : ::epoll_ctl(epfd, op, fd, event);
  if (result == 0) {
    const int saved = errno;
    f::seam::on_epoll_ctl(epfd, op, fd, event);  // the shadow, armed or not
    errno = saved;
  }
  return result;
}

int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout_ms) {
  if (!f::armed()) [[likely]] {
    const int n = ::epoll_wait(epfd, events, maxevents, timeout_ms);
    if (!f::armed()) [[likely]] {
      return n;
    }
    // Armed while we slept (a synthetic event woke us through the engine's eventfd): its
    // entry must not reach the caller.
    return f::seam::epoll_wait_after(epfd, events, maxevents, n, errno);
  }
  return epoll_wait_armed(epfd, events, maxevents, timeout_ms);
}

int eventfd(unsigned int initval, int flags) {
  if (!f::armed()) [[likely]] {
    return opened(::eventfd(initval, flags));
  }
  return eventfd_armed(initval, flags);
}

int getpeername(int fd, sockaddr* addr, socklen_t* addrlen) {
  if (!f::armed()) [[likely]] {
    return ::getpeername(fd, addr, addrlen);
  }
  return getpeername_armed(fd, addr, addrlen);
}

int getsockname(int fd, sockaddr* addr, socklen_t* addrlen) {
  if (!f::armed()) [[likely]] {
    return ::getsockname(fd, addr, addrlen);
  }
  return getsockname_armed(fd, addr, addrlen);
}

int getsockopt(int fd, int level, int name, void* value, socklen_t* len) {
  if (!f::armed()) [[likely]] {
    return ::getsockopt(fd, level, name, value, len);
  }
  return getsockopt_armed(fd, level, name, value, len);
}

int listen(int fd, int backlog) {
  if (!f::armed()) [[likely]] {
    return ::listen(fd, backlog);
  }
  return listen_armed(fd, backlog);
}

int lstat(const char* path, struct stat* st) {
  if (!f::armed()) [[likely]] {
    return ::lstat(path, st);
  }
  return lstat_armed(path, st);
}

int unlink(const char* path) {
  if (!f::armed()) [[likely]] {
    return ::unlink(path);
  }
  return unlink_armed(path);
}

int open(const char* path, int flags, mode_t mode) {
  if (!f::armed()) [[likely]] {
    return opened(::open(path, flags, mode));
  }
  return open_armed(path, flags, mode);
}

ssize_t read(int fd, void* buf, size_t count) {
  if (!f::armed()) [[likely]] {
    return ::read(fd, buf, count);
  }
  return read_armed(fd, buf, count);
}

ssize_t readv(int fd, const iovec* iov, int iovcnt) {
  if (!f::armed()) [[likely]] {
    return ::readv(fd, iov, iovcnt);
  }
  return readv_armed(fd, iov, iovcnt);
}

ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  if (!f::armed()) [[likely]] {
    return ::recvmsg(fd, msg, flags);
  }
  return recvmsg_armed(fd, msg, flags);
}

ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  if (!f::armed()) [[likely]] {
    return ::sendmsg(fd, msg, flags);
  }
  return sendmsg_armed(fd, msg, flags);
}

int setsockopt(int fd, int level, int name, const void* value, socklen_t len) {
  if (!f::armed()) [[likely]] {
    return ::setsockopt(fd, level, name, value, len);
  }
  return setsockopt_armed(fd, level, name, value, len);
}

int shutdown(int fd, int how) {
  if (!f::armed()) [[likely]] {
    return ::shutdown(fd, how);
  }
  return shutdown_armed(fd, how);
}

int socket(int domain, int type, int protocol) {
  if (!f::armed()) [[likely]] {
    return opened(::socket(domain, type, protocol));
  }
  return socket_armed(domain, type, protocol);
}

ssize_t write(int fd, const void* buf, size_t count) {
  if (!f::armed()) [[likely]] {
    return ::write(fd, buf, count);
  }
  return write_armed(fd, buf, count);
}

ssize_t writev(int fd, const iovec* iov, int iovcnt) {
  if (!f::armed()) [[likely]] {
    return ::writev(fd, iov, iovcnt);
  }
  return writev_armed(fd, iov, iovcnt);
}

// ---- bookkeeping API ----------------------------------------------------------------------

void tag(int fd, std::string_view role, uint64_t conn) {
  const auto id = f::find_role(role);
  if (!id) {
    throw std::invalid_argument("sys::tag: unregistered role \"" + std::string(role) + "\"");
  }
  f::seam::on_tag(fd, *id, conn);
}

void adopt(int fd, std::string_view role) {
  const auto id = f::find_role(role);
  if (!id) {
    throw std::invalid_argument("sys::adopt: unregistered role \"" + std::string(role) + "\"");
  }
  g_fds_open.fetch_add(1, std::memory_order_relaxed);
  f::seam::on_adopt(fd, *id);
}

int64_t fds_open() { return g_fds_open.load(std::memory_order_relaxed); }

void set_thread_kind(std::string_view kind) {
  f::tls_context.thread_kind = f::register_thread_kind(kind);
}

int set_thread_name(const char* name) {
  char cut[16] = {};
  std::strncpy(cut, name, sizeof cut - 1);
  return ::pthread_setname_np(::pthread_self(), cut);
}

bool events_enabled() { return f::events_enabled(); }

void emit_lifecycle(std::string_view type,
                    uint64_t conn,
                    int fd,
                    int64_t value,
                    std::string_view detail) {
  if (!f::events_enabled()) {
    return;  // the record is built only when someone reads it
  }
  f::emit_event(type, {{"conn", f::EventValue{conn}},
                       {"fd", f::EventValue{int64_t{fd}}},
                       {"value", f::EventValue{value}},
                       {"detail", f::EventValue{std::string(detail)}}});
}

RacePointId race_point_id(std::string_view name) {
  return f::register_point(f::PointInfo{std::string(name), f::PointKind::kRace, 0,
                                        f::kRaceActions, kTraitNone});
}

void race_point(RacePointId id) {
  if (!f::armed()) [[likely]] {
    return;
  }
  const int saved = errno;  // a race point sits between calls: it must not change errno
  const Decision d = f::seam::decide(id, -1, 0);
  f::seam::finish(d, 0, saved);
}

}  // namespace faultloop::sys
