#include "reactor/listener.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <stdexcept>
#include <utility>

#include "reactor/errc.h"
#include "reactor/io_ops.h"
#include "reactor/log.h"
#include "reactor/poll.h"
#include "reactor/sys/sys.h"

namespace faultloop {

namespace {

int64_t to_ms(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// Filesystem calls on the unix path, through the seam like every other call.
bool is_socket_file(const std::string& path) {
  struct stat st {};
  return sys::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

void remove_path(const std::string& path) {
  if (sys::unlink(path.c_str()) != 0) {
    const int err = errno;
    if (err != ENOENT) {
      FAULTLOOP_LOG(kWarn, "listener: unlink {}: {}", path, system_error(err).message());
    }
  }
}

// unlink_stale_unix_path: removes the socket file at `address` when nobody accepts on it.
// Another kind of file is left alone (bind then fails with EADDRINUSE); a live server is
// reported as EADDRINUSE.
std::error_code remove_stale_unix_path(const Address& address) {
  const std::string path = address.path();
  if (!is_socket_file(path)) {
    return {};
  }
  const int probe = sys::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe < 0) {
    return system_error(errno);
  }
  const int rc = sys::connect(probe, address.data(), address.size());
  const int err = errno;
  io_ops::close_fd(probe);
  if (rc == 0 || err == EAGAIN || err == EINPROGRESS) {
    return system_error(EADDRINUSE);  // someone accepts (or queues) there
  }
  if (err == ECONNREFUSED) {
    FAULTLOOP_LOG(kInfo, "listener: removing stale unix socket {}", path);
    remove_path(path);
  }
  return {};
}

}  // namespace

Result<std::shared_ptr<Listener>> Listener::listen(const Address& address,
                                                   ListenerOptions options) {
  const int family = address.family();
  if ((family != AF_INET && family != AF_INET6 && family != AF_UNIX) ||
      (family == AF_UNIX && address.path().empty()) || options.accept_batch == 0 ||
      options.min_backoff <= Duration::zero() || options.max_backoff < options.min_backoff) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  const int fd = sys::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return system_error(errno);
  }
  sys::tag(fd, "listener");
  auto fail = [fd](int err) {
    io_ops::close_fd(fd);
    return Result<std::shared_ptr<Listener>>(system_error(err));
  };
  if (address.is_ip()) {
    const int one = 1;
    if (sys::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
      return fail(errno);
    }
  } else if (options.unlink_stale_unix_path) {
    if (const std::error_code ec = remove_stale_unix_path(address)) {
      return fail(ec.value());
    }
  }
  if (sys::bind(fd, address.data(), address.size()) != 0) {
    return fail(errno);
  }
  const bool owns_path = family == AF_UNIX;
  if (sys::listen(fd, options.backlog) != 0) {
    const int err = errno;
    if (owns_path) {
      remove_path(address.path());
    }
    return fail(err);
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (sys::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    const int err = errno;
    if (owns_path) {
      remove_path(address.path());
    }
    return fail(err);
  }
  Address local = Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), len);
  if (local.family() == AF_UNSPEC) {
    local = address;  // cannot happen for the families above; keep what was asked for
  }
  FAULTLOOP_LOG(kDebug, "listening on {} fd={}", local.to_string(), fd);
  return std::shared_ptr<Listener>(new Listener(fd, std::move(local), options, owns_path));
}

Listener::Listener(int fd, Address local, ListenerOptions options, bool owns_path)
    : FDOperator(fd, /*reads_itself=*/true),
      local_(std::move(local)),
      options_(options),
      owns_path_(owns_path),
      backoff_(options.min_backoff) {}

Listener::~Listener() {
  // Registered listeners are kept alive by their Poll, pending tasks hold a reference and the
  // retry timer only a weak one: nothing of the loop can name this object any more.
  close_fd_once();
}

void Listener::start(Poll& poll, AcceptCallback on_accept) {
  if (started_.exchange(true, std::memory_order_acq_rel)) {
    throw std::logic_error("faultloop::Listener::start: already started");
  }
  on_accept_ = std::move(on_accept);  // published to the loop by the task hand-off
  loop_.store(&poll, std::memory_order_release);
  poll.run_in_loop([self = shared_from_this()] { self->start_in_loop(); });
}

void Listener::start_in_loop() noexcept {
  loop_.load(std::memory_order_relaxed)->assert_in_loop_thread();
  if (closed()) {
    return;
  }
  backoff_ = options_.min_backoff;
  if (!register_in_loop()) {
    pause_in_loop("registration failed");
  }
}

bool Listener::register_in_loop() noexcept {
  Poll* loop = loop_.load(std::memory_order_relaxed);
  loop->assert_in_loop_thread();
  if (const std::error_code ec = loop->control(shared_from_this(), PollEvent::kReadable)) {
    FAULTLOOP_LOG(kError, "listener {} fd={}: register: {}", local_.to_string(), fd(),
                  ec.message());
    return false;
  }
  return true;
}

void Listener::close() {
  Poll* loop = loop_.load(std::memory_order_acquire);
  if (loop == nullptr || loop->in_loop_thread()) {
    close_in_loop();
    return;
  }
  loop->run_in_loop([self = shared_from_this()] { self->close_in_loop(); });
}

void Listener::close_in_loop() noexcept {
  if (closed_.exchange(true, std::memory_order_acq_rel)) {
    return;
  }
  if (Poll* loop = loop_.load(std::memory_order_relaxed)) {
    loop->assert_in_loop_thread();  // or before start(): then loop_ is still null
    if (retry_timer_.valid()) {
      loop->timers().cancel(retry_timer_);
      retry_timer_ = {};
    }
    if (poll() != nullptr) {
      // Deregister before the close (WuKongIM 5935e8fa, BUGZOO 37): never DEL a closed number.
      loop->control(shared_from_this(), PollEvent::kDetach);
    }
  }
  paused_.store(false, std::memory_order_relaxed);
  close_fd_once();
}

void Listener::close_fd_once() noexcept {
  if (fd_closed_.exchange(true, std::memory_order_acq_rel)) {
    return;
  }
  io_ops::close_fd(fd());
  if (owns_path_) {
    remove_path(local_.path());
  }
}

void Listener::on_read() noexcept {
  switch (drain()) {
    case Drain::kEmpty:
    case Drain::kClosed:
      return;
    case Drain::kOutOfResources:
      pause_in_loop("out of resources");
      return;
    case Drain::kBatchFull: {
      Poll* loop = loop_.load(std::memory_order_relaxed);
      if (loop->trigger_mode() == TriggerMode::kEdge) {
        // No new edge comes for connections already waiting: continue after this round.
        loop->queue_in_loop([weak = weak_from_this()] {
          if (auto self = weak.lock(); self && self->poll() != nullptr) {
            self->on_read();
          }
        });
      }
      return;  // level mode: epoll reports the rest in the next round
    }
  }
}

void Listener::on_hup() noexcept {
  if (!closed()) {
    pause_in_loop("hang-up on the listening socket");
  }
}

Listener::Drain Listener::drain() noexcept {
  for (std::size_t i = 0; i < options_.accept_batch; ++i) {
    if (closed()) {
      return Drain::kClosed;  // on_accept closed us
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const io_ops::AcceptResult r = io_ops::accept(fd(), &ss, &len);
    switch (r.status) {
      case io_ops::AcceptStatus::kAccepted:
        accepted_.fetch_add(1, std::memory_order_relaxed);
        dispatch(r.fd, Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), len));
        break;
      case io_ops::AcceptStatus::kWouldBlock:
        return Drain::kEmpty;
      case io_ops::AcceptStatus::kOutOfResources:
        FAULTLOOP_LOG(kDebug, "listener {} fd={}: accept: {}", local_.to_string(), fd(),
                      r.error.message());
        return Drain::kOutOfResources;
      case io_ops::AcceptStatus::kError:
        accept_errors_.fetch_add(1, std::memory_order_relaxed);
        note_error(r.error);
        break;
    }
  }
  return Drain::kBatchFull;
}

void Listener::dispatch(int fd, const Address& peer) noexcept {
  const char* what = nullptr;
  std::string message;
  try {
    on_accept_(fd, peer);
    return;
  } catch (const std::exception& e) {
    what = "exception";
    try {
      message = e.what();
    } catch (...) {
    }
  } catch (...) {
    what = "unknown exception";
  }
  // DESIGN "Handlers may throw": close that connection, count it, go on accepting.
  callback_errors_.fetch_add(1, std::memory_order_relaxed);
  io_ops::close_fd(fd);
  FAULTLOOP_LOG(kWarn, "listener {}: on_accept threw ({}: {}); closed fd={} from {}",
                local_.to_string(), what, message, fd, peer.to_string());
}

void Listener::note_error(const std::error_code& ec) noexcept {
  // One bad connection (EPROTO, EPERM, ...): logged at most once a second (muduo #286: logs
  // that follow a storm of failures fill disks).
  const TimePoint now = loop_.load(std::memory_order_relaxed)->clock().now();
  if (last_error_log_ != TimePoint{} && now - last_error_log_ < std::chrono::seconds(1)) {
    ++suppressed_errors_;
    return;
  }
  FAULTLOOP_LOG(kWarn, "listener {} fd={}: accept: {} ({} similar suppressed); accepting goes on",
                local_.to_string(), fd(), ec.message(), suppressed_errors_);
  last_error_log_ = now;
  suppressed_errors_ = 0;
}

void Listener::pause_in_loop(const char* why) noexcept {
  Poll* loop = loop_.load(std::memory_order_relaxed);
  loop->assert_in_loop_thread();
  if (poll() != nullptr) {
    // Level-triggered and still readable while every accept fails: staying registered would
    // be a busy loop (netpoll #230).
    loop->control(shared_from_this(), PollEvent::kDetach);
  }
  pauses_.fetch_add(1, std::memory_order_relaxed);
  paused_.store(true, std::memory_order_release);  // pauses() is counted once paused()
  accepted_at_pause_ = accepted_.load(std::memory_order_relaxed);
  // The first pause of a streak is a warning; the repeats of a resource shortage that lasts
  // are not a log flood.
  if (backoff_ == options_.min_backoff) {
    FAULTLOOP_LOG(kWarn, "listener {} fd={}: {}; accepting paused, retry in {} ms",
                  local_.to_string(), fd(), why, to_ms(backoff_));
  } else {
    FAULTLOOP_LOG(kDebug, "listener {} fd={}: {}; accepting paused, retry in {} ms",
                  local_.to_string(), fd(), why, to_ms(backoff_));
  }
  arm_retry_in_loop();
}

void Listener::arm_retry_in_loop() noexcept {
  Poll* loop = loop_.load(std::memory_order_relaxed);
  loop->assert_in_loop_thread();
  retry_timer_ = loop->add_timer(backoff_, [weak = weak_from_this()] {
    if (auto self = weak.lock()) {
      self->retry_in_loop();
    }
  });
}

void Listener::retry_in_loop() noexcept {
  loop_.load(std::memory_order_relaxed)->assert_in_loop_thread();
  retry_timer_ = {};
  if (closed()) {
    return;
  }
  const Drain d = drain();
  if (d == Drain::kClosed) {
    return;
  }
  if (d != Drain::kOutOfResources && register_in_loop()) {
    // Back to the shortest backoff only once a connection really came through; a retry that
    // accepted nothing keeps backing off if the shortage (or a shut-down socket) comes back.
    if (accepted_.load(std::memory_order_relaxed) != accepted_at_pause_) {
      backoff_ = options_.min_backoff;
    } else {
      backoff_ = std::min<Duration>(backoff_ * 2, options_.max_backoff);
    }
    resumes_.fetch_add(1, std::memory_order_relaxed);
    paused_.store(false, std::memory_order_release);  // resumes() is counted once !paused()
    FAULTLOOP_LOG(kInfo, "listener {} fd={}: accepting again", local_.to_string(), fd());
    return;
  }
  failed_retries_.fetch_add(1, std::memory_order_relaxed);
  backoff_ = std::min<Duration>(backoff_ * 2, options_.max_backoff);
  FAULTLOOP_LOG(kDebug, "listener {} fd={}: still paused, retry in {} ms", local_.to_string(),
                fd(), to_ms(backoff_));
  arm_retry_in_loop();
}

}  // namespace faultloop
