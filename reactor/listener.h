// Public: Listener — a listening socket (TCP v4/v6 or unix) that accepts on a Poll and hands
// each new connection to a callback (DESIGN "Listener / Dialer / EventLoop", "EMFILE/ENFILE/
// ENOBUFS on accept").
//
// The Listener is an FDOperator that reads for itself: on EPOLLIN it accepts up to
// `accept_batch` connections per wake-up (so one busy listener cannot starve its loop; level
// mode reports the rest at once, edge mode gets a queued continuation).
//
// Accept outcomes (io_ops::accept):
//  - kAccepted: on_accept(fd, peer). The callee owns the fd. If it throws, the Listener closes
//    that fd, counts it (callback_errors) and goes on: internal dispatch is noexcept.
//  - kWouldBlock: the backlog is empty; the batch ends.
//  - kError (EPROTO, EPERM, ...: one connection failed): counted (accept_errors), logged at most
//    once a second with the number suppressed, and accepting goes on.
//  - kOutOfResources (EMFILE, ENFILE, ENOBUFS, ENOMEM): the Listener PAUSES. It is detached
//    from the poll (a level-triggered listener that stays readable while every accept fails is
//    a busy loop: netpoll #230, BUGZOO 11) and a retry timer on the loop's wheel tries again
//    after 10 ms, doubling to 1 s while resources stay short. Pending connections wait in the
//    kernel backlog. When a retry accepts or finds the backlog empty, the Listener registers
//    again and the backoff resets. It never stops for good (gnet #453, nbio #470, muduo's
//    LOG_FATAL on ENFILE: BUGZOO 17, 27, 35). ECONNABORTED and EINTR are retried inside
//    io_ops::accept.
//
// Threads: start() and close() may be called from any thread (they hand the work to the loop
// with run_in_loop); on_read, the retry timer and on_accept run on the loop thread. Counters
// and paused() are relaxed atomics readable from any thread. Close the Listener before its
// Poll is destroyed.
//
// Every syscall goes through faultloop::sys except the unix-path removal (unlink/lstat), which
// the seam does not list yet (see listener.cc).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "reactor/address.h"
#include "reactor/clock.h"
#include "reactor/fd_operator.h"
#include "reactor/result.h"
#include "reactor/timer_wheel.h"

namespace faultloop {

/// Options of Listener::listen().
struct ListenerOptions {
  /// listen(2) backlog (the kernel caps it at net.core.somaxconn).
  int backlog = 1024;
  /// Connections accepted per EPOLLIN before the loop gets to do other work. Must be > 0.
  std::size_t accept_batch = 64;
  /// First retry delay after EMFILE/ENFILE/ENOBUFS/ENOMEM; doubles per failed retry.
  Duration min_backoff = std::chrono::milliseconds(10);
  /// Cap of the retry delay.
  Duration max_backoff = std::chrono::seconds(1);
  /// Unix sockets: before bind, remove an existing socket file at the path when nobody
  /// accepts on it (connect refused). Only socket files are removed, never other files; a
  /// path where a server still accepts gives EADDRINUSE (that server sees the probe as a
  /// connection closed at once). Off by default.
  bool unlink_stale_unix_path = false;
};

/// A listening socket (see the file comment).
class Listener : public FDOperator, public std::enable_shared_from_this<Listener> {
 public:
  /// Receives each accepted connection: the new fd (non-blocking, close-on-exec, opened through
  /// the seam; the callee owns it) and the peer's address. Runs on the loop thread; may throw.
  using AcceptCallback = std::function<void(int fd, const Address& peer)>;

  /// Creates the socket through the seam (SOCK_NONBLOCK | SOCK_CLOEXEC; SO_REUSEADDR for TCP),
  /// binds `address`, listens, and reads the bound address back (local_address()). The fd is
  /// tagged "listener". Errors: the kernel's errno in system_category (EADDRINUSE, EACCES,
  /// EMFILE, ...); std::errc::invalid_argument for an empty address or a bad option. Nothing
  /// is left open on failure.
  static Result<std::shared_ptr<Listener>> listen(const Address& address,
                                                  ListenerOptions options = {});

  /// Closes the fd if close() did not (and removes the unix path we created). Never closes
  /// twice.
  ~Listener() override;

  /// Starts accepting on `poll`: registers the Listener Readable on the loop thread
  /// (run_in_loop). Any thread. Throws std::logic_error when already started (misuse). If
  /// registering fails (epoll_ctl ENOMEM/ENOSPC) the Listener counts as paused and retries
  /// with the backoff. A start() after close() does nothing.
  void start(Poll& poll, AcceptCallback on_accept);

  /// Stops accepting for good: cancels the retry timer, detaches from the poll, closes the fd
  /// exactly once through io_ops::close_fd, and removes the unix path this Listener created.
  /// Idempotent. On the loop thread, or before start(), it acts at once; from another thread
  /// it hands the work to the loop (run_in_loop) and returns (closed() turns true there).
  void close();

  /// The bound address: the real port for port 0, the path for unix sockets.
  const Address& local_address() const { return local_; }

  /// True once close() took effect.
  bool closed() const { return closed_.load(std::memory_order_acquire); }

  /// True while accepting is paused for lack of fds or memory (waiting for the retry timer).
  /// Acquire: once paused() is seen true (false), pauses() (resumes()) includes that change.
  bool paused() const { return paused_.load(std::memory_order_acquire); }

  /// Connections handed to on_accept.
  uint64_t accepted() const { return accepted_.load(std::memory_order_relaxed); }
  /// Failed accepts of single connections (kError).
  uint64_t accept_errors() const { return accept_errors_.load(std::memory_order_relaxed); }
  /// on_accept calls that threw (their fds were closed).
  uint64_t callback_errors() const { return callback_errors_.load(std::memory_order_relaxed); }
  /// Times accepting was paused (EMFILE, ENFILE, ENOBUFS, ENOMEM, or a failed registration).
  uint64_t pauses() const { return pauses_.load(std::memory_order_relaxed); }
  /// Times accepting resumed after a pause.
  uint64_t resumes() const { return resumes_.load(std::memory_order_relaxed); }
  /// Retry timer firings that found resources still short.
  uint64_t failed_retries() const { return failed_retries_.load(std::memory_order_relaxed); }

  /// FDOperator: EPOLLIN — accept a batch (the Listener reads for itself).
  void on_read() noexcept override;
  /// FDOperator: EPOLLHUP/EPOLLERR on a listening socket (it was shut down under us): the
  /// poll detached it; try again through the retry timer.
  void on_hup() noexcept override;

 private:
  enum class Drain : uint8_t { kEmpty, kBatchFull, kOutOfResources, kClosed };

  Listener(int fd, Address local, ListenerOptions options, bool owns_path);

  void start_in_loop() noexcept;
  void close_in_loop() noexcept;
  void close_fd_once() noexcept;
  Drain drain() noexcept;
  void dispatch(int fd, const Address& peer) noexcept;
  void pause_in_loop(const char* why) noexcept;
  void retry_in_loop() noexcept;
  void arm_retry_in_loop() noexcept;
  bool register_in_loop() noexcept;
  void note_error(const std::error_code& ec) noexcept;

  Address local_;
  ListenerOptions options_;
  bool owns_path_;                       // we bound the unix path: close() removes it
  std::atomic<Poll*> loop_{nullptr};     // set once by start()
  AcceptCallback on_accept_;             // written by start() before the hand-off
  std::atomic<bool> started_{false};
  std::atomic<bool> closed_{false};      // close() took effect (loop thread, or before start)
  std::atomic<bool> fd_closed_{false};   // the fd was closed (exactly once)

  // Loop thread only.
  TimerId retry_timer_;
  Duration backoff_{};
  uint64_t accepted_at_pause_ = 0;  // accepted_ when the current pause began (loop thread)
  TimePoint last_error_log_{};
  uint64_t suppressed_errors_ = 0;

  std::atomic<bool> paused_{false};
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> accept_errors_{0};
  std::atomic<uint64_t> callback_errors_{0};
  std::atomic<uint64_t> pauses_{0};
  std::atomic<uint64_t> resumes_{0};
  std::atomic<uint64_t> failed_retries_{0};
};

}  // namespace faultloop
