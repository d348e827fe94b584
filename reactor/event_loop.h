// Public: EventLoop — a server on the reactor: N poll loops, a listener, and graceful shutdown
// (netpoll's EventLoop: Serve and Shutdown; DESIGN "Listener / Dialer / EventLoop").
//
//   auto loop = EventLoop::create(options, handlers);      // the loops start here
//   auto listener = Listener::listen(*Address::parse("127.0.0.1:0"));
//   std::thread server([&] { (void)(*loop)->serve(*listener); });   // blocks
//   ...
//   bool in_time = (*loop)->shutdown(std::chrono::seconds(5));   // from any other thread
//   server.join();
//
// Accepting: the listener runs on loop 0. Each accepted fd gets io_ops::set_nonblocking_defaults
// (TCP_NODELAY), becomes a Connection on PollManager::pick()'s loop with the handlers, the
// executor and the ConnectionOptions of this EventLoop, and is started. EventLoop does nothing
// per request: the hot path is the Connection's.
//
// Registry: every accepted connection is kept (id → weak_ptr) until its close callbacks run;
// a close callback registered at accept removes it, and it stays on a "finalizing" list until
// its finalizer closed the fd. That is how shutdown finds the live connections.
//
// Shutdown (any thread but a loop or handler thread), in order, bounded by the deadline:
//   1. stop accepting: the listener is closed (no connection is accepted after this step);
//   2. let in-flight requests finish: wait until no live connection is processing() (a
//      handler runs, or a user thread is inside a reader/writer call);
//   3. close() every remaining connection (kUser: blocked readers wake with ErrConnClosed,
//      idle peers see EOF);
//   4. wait until every connection's finalizer ran (Connection::finalized(): fd closed,
//      buffers released) and the last references to it were dropped;
//   5. stop the loops (threads joined) and let serve() return.
// shutdown() returns true iff all five steps were done by the deadline. When the deadline
// passes first it still does step 3 (closes everything) and returns false at once; the rest
// (waiting for handlers that still run, their finalizers, stopping the loops) is finished by
// serve() before it returns, or by the destructor. Nothing is left behind either way: no fd of
// a connection or listener, no loop thread. The epoll and eventfd fds of the loops are closed
// by the destructor.
//
// Lifetime: the executor passed in EventLoopOptions must outlive the EventLoop (with a
// PoolExecutor, declare the pool before the EventLoop). Destroy the EventLoop only after serve()
// returned. A handler that never returns keeps serve() and the destructor waiting: threads are
// never detached.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "reactor/address.h"
#include "reactor/clock.h"
#include "reactor/connection.h"
#include "reactor/executor.h"
#include "reactor/fd_operator.h"
#include "reactor/listener.h"
#include "reactor/poll_manager.h"
#include "reactor/result.h"

namespace faultloop {

/// Options of EventLoop::create().
struct EventLoopOptions {
  /// Poll loops (threads `fl-poll-0` ...), >= 1. The listener runs on loop 0.
  int num_loops = 1;
  /// Trigger mode of every loop (DESIGN "Trigger mode").
  TriggerMode trigger = TriggerMode::kLevel;
  /// How a new connection's loop is chosen.
  LoadBalance balance = LoadBalance::kRoundRobin;
  /// Seed of LoadBalance::kRandom.
  uint64_t seed = 0;
  /// The loops' clock (timers: read, write and idle timeouts); null: SteadyClock. shutdown()'s
  /// deadline is always on std::chrono::steady_clock.
  std::shared_ptr<const Clock> clock;
  /// Where handlers run; must outlive the EventLoop. null: an InlineExecutor owned by the
  /// EventLoop (handlers on the poll threads; they must not block).
  Executor* executor = nullptr;
  /// Limits and timeouts of every accepted connection.
  ConnectionOptions connection;
};

/// A server: loops, a listener and graceful shutdown (see the file comment). Not copyable.
class EventLoop {
 public:
  /// The deadline type of shutdown(): std::chrono::steady_clock.
  using Deadline = std::chrono::steady_clock::time_point;

  /// Creates and starts the loops. Errors: num_loops < 1 is std::errc::invalid_argument; the
  /// errno of epoll_create1/eventfd (EMFILE, ...) in system_category. Throws std::bad_alloc and
  /// std::system_error (a thread that cannot start).
  static Result<std::unique_ptr<EventLoop>> create(EventLoopOptions options,
                                                   ConnectionHandlers handlers);

  /// Finishes a shutdown that missed its deadline (or shuts down without a deadline when
  /// shutdown() was never called): waits for every connection's finalizer, stops and joins
  /// the loops, closes their fds. Call it after serve() returned.
  ~EventLoop();
  /// Not copyable.
  EventLoop(const EventLoop&) = delete;
  /// Not copyable.
  EventLoop& operator=(const EventLoop&) = delete;

  /// Starts accepting on `listener` (on loop 0) and blocks until the EventLoop is shut down:
  /// it returns {} once shutdown() was called and everything is stopped (step 5 of the file
  /// comment; after a missed deadline serve() finishes the shutdown itself). One serve() per
  /// EventLoop: while one runs, another returns std::errc::device_or_resource_busy; after a
  /// shutdown it returns ErrPollerClosed at once (and leaves `listener` alone). A null
  /// listener is std::errc::invalid_argument. Throws std::logic_error when `listener` was
  /// already started elsewhere (Listener::start).
  std::error_code serve(std::shared_ptr<Listener> listener);

  /// Graceful shutdown by `deadline` (steady_clock; see the file comment): stop accepting,
  /// let in-flight requests finish, close every connection, wait for their finalizers, stop
  /// the loops. Returns true iff all of it was done by the deadline; false means the deadline
  /// passed (every connection was still closed; serve() or the destructor finishes the rest).
  /// Any thread except a loop thread or a handler (which would wait for itself: there it only
  /// closes the listener and every connection, and returns false). Idempotent: later calls
  /// (also concurrent ones) wait for the same work by their own deadline.
  bool shutdown(Deadline deadline);
  /// shutdown(steady_clock::now() + timeout).
  bool shutdown(Duration timeout) { return shutdown(std::chrono::steady_clock::now() + timeout); }

  /// Connections accepted (Connection created and started). Any thread.
  uint64_t accepted() const { return accepted_.load(std::memory_order_relaxed); }
  /// Connections whose close callbacks ran (closed by anyone). Any thread.
  uint64_t closed() const { return closed_.load(std::memory_order_relaxed); }
  /// accepted() - closed(): connections open now. Any thread.
  uint64_t active() const;
  /// Accepted fds closed at once because the shutdown had already closed every connection.
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

  /// The loops (for dialing on them, or to look at their counters).
  PollManager& loops() { return *loops_; }
  /// The executor handlers run on.
  Executor& executor() { return *executor_; }

 private:
  enum class State : uint8_t {
    kIdle,       // created; serve() not called
    kServing,    // serve() runs
    kDraining,   // a shutdown() is in progress
    kAbandoned,  // a shutdown() missed its deadline: serve()/the destructor finish it
    kStopped,    // everything stopped
  };

  EventLoop(EventLoopOptions options, ConnectionHandlers handlers,
            std::unique_ptr<PollManager> loops);

  void on_accept(int fd, const Address& peer) noexcept;
  void on_connection_closed(Connection& conn) noexcept;
  bool drain(Deadline deadline);
  bool drain_locked(Deadline deadline);
  bool on_own_thread() const;
  bool wait_listener_closed(Deadline deadline);
  bool wait_idle(Deadline deadline);
  void close_all();
  bool wait_finalized(Deadline deadline);
  void prune_finalizing_locked();
  void set_state(State state);

  const EventLoopOptions options_;
  const std::shared_ptr<const ConnectionHandlers> handlers_;
  std::unique_ptr<InlineExecutor> owned_executor_;  // when options_.executor is null
  Executor* executor_;
  std::unique_ptr<PollManager> loops_;  // destroyed before owned_executor_

  // Serialises shutdown work (shutdown(), serve()'s finish, the destructor): one drain at a
  // time, and a shutdown() never waits beyond its deadline for another one. A flag under a
  // mutex and a condition variable rather than std::timed_mutex, whose try_lock_until
  // (pthread_mutex_clocklock) ThreadSanitizer does not intercept.
  std::mutex drain_mu_;
  std::condition_variable drain_cv_;
  bool draining_ = false;  // guarded by drain_mu_
  // Progress of the shutdown steps (owned by the drain in progress).
  bool listener_closed_ = false;
  bool idle_waited_ = false;
  bool all_closed_ = false;
  bool loops_stopped_ = false;

  // State, listener and serve()'s wake-up.
  mutable std::mutex state_mu_;
  std::condition_variable state_cv_;
  State state_ = State::kIdle;                // guarded by state_mu_
  std::shared_ptr<Listener> listener_;        // guarded by state_mu_ (set once by serve())

  // The registry (see the file comment).
  mutable std::mutex registry_mu_;
  std::unordered_map<uint64_t, std::weak_ptr<Connection>> live_;  // guarded by registry_mu_
  std::vector<std::weak_ptr<Connection>> finalizing_;             // guarded by registry_mu_
  std::size_t prune_at_ = 64;                                     // guarded by registry_mu_
  bool refuse_ = false;  // guarded by registry_mu_: close_all() ran; accept nothing more

  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> closed_{0};
  std::atomic<uint64_t> refused_{0};
};

}  // namespace faultloop
