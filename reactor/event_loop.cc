#include "reactor/event_loop.h"

#include <algorithm>
#include <exception>
#include <optional>
#include <thread>
#include <utility>

#include "reactor/errc.h"
#include "reactor/io_ops.h"
#include "reactor/log.h"

namespace faultloop {

namespace {

// How often the shutdown steps look again (nothing notifies them: processing() and
// finalized() are plain atomics of the Connection).
constexpr auto kShutdownPoll = std::chrono::milliseconds(1);

// After its finalizer, a connection may still be referenced for a moment by the thread that
// queued the finalizer (a pool worker returning from Poll::run_in_loop) and by the loop's
// end-of-iteration release. The loops keep running until those references are gone, at most
// this long; a reference the user keeps beyond it is only logged (a finalized connection no
// longer touches its Poll).
constexpr auto kReleaseGrace = std::chrono::seconds(1);

constexpr EventLoop::Deadline kNoDeadline = EventLoop::Deadline::max();

// Calls `done` every kShutdownPoll until it returns true (true) or `deadline` passes (false).
template <class Done>
bool poll_until(EventLoop::Deadline deadline, Done done) {
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return done();
    }
    std::this_thread::sleep_for(kShutdownPoll);
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<EventLoop>> EventLoop::create(EventLoopOptions options,
                                                     ConnectionHandlers handlers) {
  PollManagerOptions pm;
  pm.num_loops = options.num_loops;
  pm.balance = options.balance;
  pm.trigger = options.trigger;
  pm.clock = options.clock;
  pm.seed = options.seed;
  Result<std::unique_ptr<PollManager>> loops = PollManager::create(std::move(pm));
  if (!loops) {
    return loops.error();
  }
  std::unique_ptr<EventLoop> loop(
      new EventLoop(std::move(options), std::move(handlers), std::move(*loops)));
  loop->loops_->start();
  return loop;
}

EventLoop::EventLoop(EventLoopOptions options, ConnectionHandlers handlers,
                     std::unique_ptr<PollManager> loops)
    : options_(std::move(options)),
      handlers_(std::make_shared<const ConnectionHandlers>(std::move(handlers))),
      owned_executor_(options_.executor == nullptr ? std::make_unique<InlineExecutor>() : nullptr),
      executor_(options_.executor != nullptr ? options_.executor : owned_executor_.get()),
      loops_(std::move(loops)) {}

EventLoop::~EventLoop() {
  bool stopped = false;
  {
    std::lock_guard lock(state_mu_);
    stopped = state_ == State::kStopped;
    if (!stopped) {
      state_ = State::kDraining;
    }
  }
  if (!stopped) {
    (void)drain(kNoDeadline);
  }
  // loops_ (stopped: its destructor closes the epoll and eventfd fds), then owned_executor_.
}

uint64_t EventLoop::active() const {
  // closed_ first: a connection counted closed was counted accepted before.
  const uint64_t closed = closed_.load(std::memory_order_acquire);
  const uint64_t accepted = accepted_.load(std::memory_order_acquire);
  return accepted >= closed ? accepted - closed : 0;
}

// ---- serve

std::error_code EventLoop::serve(std::shared_ptr<Listener> listener) {
  if (!listener) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  {
    std::lock_guard lock(state_mu_);
    if (state_ == State::kServing) {
      return std::make_error_code(std::errc::device_or_resource_busy);
    }
    if (state_ != State::kIdle) {
      return make_error_code(Errc::kPollerClosed);
    }
    state_ = State::kServing;
    listener_ = listener;
  }
  try {
    // A shutdown() that closed the listener before this line makes start() a no-op.
    listener->start(loops_->loop(0),
                    [this](int fd, const Address& peer) { on_accept(fd, peer); });
  } catch (...) {
    std::lock_guard lock(state_mu_);
    if (state_ == State::kServing) {
      state_ = State::kIdle;
      listener_.reset();
    }
    throw;
  }
  State state;
  {
    std::unique_lock lock(state_mu_);
    state_cv_.wait(lock, [this] {
      return state_ == State::kAbandoned || state_ == State::kStopped;
    });
    state = state_;
  }
  if (state != State::kStopped) {
    (void)drain(kNoDeadline);  // a shutdown() missed its deadline: finish it here
  }
  return {};
}

void EventLoop::on_accept(int fd, const Address& peer) noexcept {
  if (const std::error_code ec = io_ops::set_nonblocking_defaults(fd)) {
    // TCP_NODELAY only costs latency: serve the connection anyway.
    FAULTLOOP_LOG(kDebug, "event loop: socket options of fd {} failed: {}", fd, ec.message());
  }
  ConnectionPtr conn;
  try {
    {
      std::lock_guard lock(registry_mu_);
      if (!refuse_) {
        // From here on the fd is the Connection's (create() closes it if it throws).
        conn = Connection::create(fd, loops_->pick(), *executor_, handlers_, options_.connection,
                                  peer);
        if (conn->add_close_callback([this](Connection& c) { on_connection_closed(c); })) {
          FAULTLOOP_LOG(kError, "conn {}: cannot register the event loop's close callback",
                        conn->id());
          return;  // the destructor closes the fd (never started)
        }
        live_.emplace(conn->id(), conn);
        accepted_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (!conn) {
      // The shutdown closed every connection already: this one would never be closed.
      refused_.fetch_add(1, std::memory_order_relaxed);
      io_ops::close_fd(fd);
      return;
    }
    if (const std::error_code ec = conn->start()) {
      // Closed by start() itself (on_prepare threw, registering failed): the close callbacks
      // ran, the counters balance.
      FAULTLOOP_LOG(kDebug, "conn {}: start failed: {}", conn->id(), ec.message());
    }
  } catch (const std::exception& e) {
    // Never rethrown: the Listener would close an fd that create() already owns.
    FAULTLOOP_LOG(kError, "event loop: accepting fd {} failed: {}", fd, e.what());
  }
}

void EventLoop::on_connection_closed(Connection& conn) noexcept {
  {
    std::lock_guard lock(registry_mu_);
    if (auto it = live_.find(conn.id()); it != live_.end()) {
      try {
        finalizing_.push_back(std::move(it->second));
      } catch (...) {
        // bad_alloc: the shutdown cannot wait for this finalizer; it runs anyway.
      }
      live_.erase(it);
    }
    if (finalizing_.size() >= prune_at_) {
      prune_finalizing_locked();
    }
  }
  closed_.fetch_add(1, std::memory_order_release);
}

void EventLoop::prune_finalizing_locked() {
  std::erase_if(finalizing_, [](const std::weak_ptr<Connection>& w) {
    const ConnectionPtr c = w.lock();
    return !c || c->finalized();
  });
  prune_at_ = std::max<std::size_t>(64, 2 * finalizing_.size());
}

// ---- shutdown

bool EventLoop::shutdown(Deadline deadline) {
  {
    std::lock_guard lock(state_mu_);
    if (state_ == State::kStopped) {
      return true;
    }
    state_ = State::kDraining;
  }
  return drain(deadline);
}

void EventLoop::set_state(State state) {
  {
    std::lock_guard lock(state_mu_);
    if (state_ != State::kStopped) {
      state_ = state;
    }
  }
  state_cv_.notify_all();
}

bool EventLoop::on_own_thread() const {
  for (std::size_t i = 0; i < loops_->size(); ++i) {
    if (loops_->loop(i).in_loop_thread()) {
      return true;
    }
  }
  return Executor::current() == executor_;  // one of our handlers on a pool worker
}

bool EventLoop::drain(Deadline deadline) {
  {
    std::unique_lock lock(drain_mu_);
    const auto free = [this] { return !draining_; };
    if (deadline == kNoDeadline) {
      drain_cv_.wait(lock, free);
    } else if (!drain_cv_.wait_until(lock, deadline, free)) {
      std::lock_guard state_lock(state_mu_);
      return state_ == State::kStopped;  // another caller still works on it
    }
    draining_ = true;
  }
  // Lets the next drain in, also when this one throws (std::bad_alloc).
  struct Release {
    EventLoop* self;
    ~Release() {
      {
        std::lock_guard lock(self->drain_mu_);
        self->draining_ = false;
      }
      self->drain_cv_.notify_all();
    }
  } release{this};
  return drain_locked(deadline);
}

bool EventLoop::drain_locked(Deadline deadline) {
  if (loops_stopped_) {
    return true;
  }
  // A loop thread or one of our handlers cannot wait for the loops or the handlers.
  const bool own = on_own_thread();
  bool in_time = true;

  // 1. Stop accepting.
  if (!listener_closed_) {
    std::shared_ptr<Listener> listener;
    {
      std::lock_guard state_lock(state_mu_);
      listener = listener_;
    }
    if (listener) {
      listener->close();  // from another thread: handed to loop 0
    }
    if (!own) {
      listener_closed_ = wait_listener_closed(deadline);
      in_time = listener_closed_;
    }
  }
  // 2 and 3. Let in-flight requests finish, then close what is left.
  if (!all_closed_) {
    if (in_time && !own) {
      in_time = wait_idle(deadline);
    }
    close_all();
    all_closed_ = true;
  }
  if (own) {
    set_state(State::kAbandoned);
    return false;
  }
  // 4. Every finalizer ran (the listener's close, too: it runs on loop 0).
  if (!listener_closed_) {
    listener_closed_ = wait_listener_closed(deadline);
  }
  if (!listener_closed_ || !wait_finalized(deadline)) {
    set_state(State::kAbandoned);
    return false;
  }
  // 5. Stop the loops.
  loops_->stop();
  loops_stopped_ = true;
  set_state(State::kStopped);
  return in_time;
}

bool EventLoop::wait_listener_closed(Deadline deadline) {
  std::shared_ptr<Listener> listener;
  {
    std::lock_guard lock(state_mu_);
    listener = listener_;
  }
  return !listener || poll_until(deadline, [&] { return listener->closed(); });
}

bool EventLoop::wait_idle(Deadline deadline) {
  return poll_until(deadline, [this] {
    std::lock_guard lock(registry_mu_);
    return std::none_of(live_.begin(), live_.end(), [](const auto& entry) {
      const ConnectionPtr c = entry.second.lock();
      return c && c->processing();
    });
  });
}

void EventLoop::close_all() {
  std::vector<ConnectionPtr> conns;
  {
    std::lock_guard lock(registry_mu_);
    refuse_ = true;
    conns.reserve(live_.size());
    for (const auto& entry : live_) {
      if (ConnectionPtr c = entry.second.lock()) {
        conns.push_back(std::move(c));
      }
    }
  }
  // Outside the lock: a close may run the close callbacks (ours takes registry_mu_) here.
  for (const ConnectionPtr& c : conns) {
    (void)c->close();  // ErrConnClosed/ErrEOF: someone closed it first
  }
}

bool EventLoop::wait_finalized(Deadline deadline) {
  // All finalized, waiting for the last references since this time (see kReleaseGrace).
  std::optional<Deadline> referenced_since;
  return poll_until(deadline, [&] {
    std::lock_guard lock(registry_mu_);
    std::erase_if(live_, [](const auto& entry) { return entry.second.expired(); });
    if (!live_.empty()) {
      return false;  // close callbacks still to run
    }
    std::erase_if(finalizing_,
                  [](const std::weak_ptr<Connection>& w) { return w.expired(); });
    const bool all_finalized =
        std::all_of(finalizing_.begin(), finalizing_.end(), [](const auto& w) {
          const ConnectionPtr c = w.lock();
          return !c || c->finalized();
        });
    if (!all_finalized) {
      referenced_since.reset();
      return false;
    }
    if (finalizing_.empty()) {
      return true;
    }
    const auto now = std::chrono::steady_clock::now();
    if (!referenced_since) {
      referenced_since = now;
    }
    if (now - *referenced_since < kReleaseGrace) {
      return false;
    }
    FAULTLOOP_LOG(kWarn, "event loop: {} finalized connection(s) still referenced at shutdown",
                  finalizing_.size());
    finalizing_.clear();
    return true;
  });
}

}  // namespace faultloop
