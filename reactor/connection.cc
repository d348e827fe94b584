#include "reactor/connection.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <thread>
#include <utility>

#include "reactor/errc.h"
#include "reactor/executor.h"
#include "reactor/log.h"
#include "reactor/observer.h"
#include "reactor/poll.h"
#include "reactor/race_points.h"
#include "reactor/sys/call_context.h"
#include "reactor/sys/sys.h"

namespace faultloop {

namespace {

std::atomic<uint64_t> g_next_id{1};

// The connection whose handler (or reader/writer call) holds the processing lock on this
// thread: reader and writer calls made from inside a handler must not take it again.
thread_local const Connection* t_holder = nullptr;

// Input space the poller books per readv: one node of this many data bytes at a time.
constexpr std::size_t kBookBytes = 16 * 1024;

// Iovecs a flushing thread hands sendmsg.
constexpr int kIovecs = 8;

// How long a user thread waits for a handler to let go before it looks again.
constexpr auto kHolderPoll = std::chrono::milliseconds(1);

// Restores t_holder when a handler or call ends.
class HolderScope {
 public:
  explicit HolderScope(const Connection* conn) noexcept : previous_(t_holder) { t_holder = conn; }
  ~HolderScope() { t_holder = previous_; }
  HolderScope(const HolderScope&) = delete;
  HolderScope& operator=(const HolderScope&) = delete;

 private:
  const Connection* previous_;
};

}  // namespace

const char* close_who_name(CloseWho who) {
  switch (who) {
    case CloseWho::kNone:
      return "none";
    case CloseWho::kUser:
      return "user";
    case CloseWho::kPoller:
      return "poller";
  }
  return "?";
}

std::shared_ptr<Connection> Connection::create(int fd, Poll& poll, Executor& executor,
                                               std::shared_ptr<const ConnectionHandlers> handlers,
                                               const ConnectionOptions& options, Address peer,
                                               bool dialed) {
  try {
    if (!handlers) {
      handlers = std::make_shared<const ConnectionHandlers>();
    }
    return std::make_shared<Connection>(PrivateTag{}, fd, poll, executor, std::move(handlers),
                                        options, std::move(peer), dialed);
  } catch (...) {
    sys::close(fd);  // owned from the call on: nothing may leak (netpoll #238)
    throw;
  }
}

Connection::Connection(PrivateTag, int fd, Poll& poll, Executor& executor,
                       std::shared_ptr<const ConnectionHandlers> handlers,
                       const ConnectionOptions& options, Address peer, bool dialed)
    : FDOperator(fd),
      id_(g_next_id.fetch_add(1, std::memory_order_relaxed)),
      poll_owner_(&poll),
      executor_(executor),
      inline_(executor.is_inline()),
      handlers_(std::move(handlers)),
      options_(options),
      peer_(std::move(peer)),
      dialed_(dialed),
      handler_driven_(handlers_->on_connect || handlers_->on_request) {
  set_conn_id(id_);
  sys::tag(fd, "conn", id_);
}

Connection::~Connection() {
  if (!finalized_.load(std::memory_order_acquire)) {
    // Never started, or its loop stopped before the finalizer ran: the fd is still ours.
    const sys::ConnScope scope(id_);
    sys::close(fd());
  }
}

// ---- start

std::error_code Connection::start() {
  if (poll_owner_->in_loop_thread()) {
    start_in_loop();
    if (!is_active()) {
      const int err = close_error_.load(std::memory_order_acquire);
      return err != 0 ? system_error(err) : make_error_code(Errc::kConnClosed);
    }
    return {};
  }
  poll_owner_->queue_in_loop([self = shared_from_this()] { self->start_in_loop(); });
  return {};
}

void Connection::start_in_loop() noexcept {
  poll_owner_->assert_in_loop_thread();
  if (!is_active()) {
    return;  // closed before it started: the finalizer owns the fd (nothing may register it)
  }
  FAULTLOOP_OBSERVE(dialed_ ? LifecycleKind::kDialed : LifecycleKind::kAccepted, id_, fd(), 0,
                    nullptr);
  if (handlers_->on_prepare) {
    const HolderScope holder(this);
    try {
      context_ = handlers_->on_prepare(*this);
      FAULTLOOP_OBSERVE(LifecycleKind::kPrepare, id_, fd(), 0, nullptr);
    } catch (const std::exception& e) {
      handler_exceptions_.fetch_add(1, std::memory_order_relaxed);
      FAULTLOOP_OBSERVE(LifecycleKind::kHandlerThrew, id_, fd(), 0, "on_prepare");
      FAULTLOOP_LOG(kError, "conn {}: on_prepare threw: {}", id_, e.what());
    } catch (...) {
      handler_exceptions_.fetch_add(1, std::memory_order_relaxed);
      FAULTLOOP_OBSERVE(LifecycleKind::kHandlerThrew, id_, fd(), 0, "on_prepare");
      FAULTLOOP_LOG(kError, "conn {}: on_prepare threw a non-exception", id_);
    }
    if (handler_exceptions_.load(std::memory_order_relaxed) != 0) {
      close_by(CloseWho::kUser, "on_prepare threw");
      try_finish_close();
      return;
    }
  }
  if (const std::error_code ec = poll_owner_->control(shared_from_this(), PollEvent::kReadable)) {
    FAULTLOOP_LOG(kWarn, "conn {}: registering fd {} failed: {}", id_, fd(), ec.message());
    if (ec.category() == std::system_category()) {
      close_error_.store(ec.value(), std::memory_order_release);
    }
    close_by(CloseWho::kUser, "register failed");
    try_finish_close();
    return;
  }
  if (options_.idle_timeout > Duration::zero()) {
    arm_idle_in_loop();
  }
  if (handler_driven_) {
    dispatch();  // on_connect, then whatever input came meanwhile
  }
}

// ---- errors and state

std::error_code Connection::closed_error() const noexcept {
  if (write_timed_out_.load(std::memory_order_acquire)) {
    return make_error_code(Errc::kWriteTimeout);
  }
  return make_error_code(state_.load(std::memory_order_acquire) == CloseWho::kPoller
                             ? Errc::kEof
                             : Errc::kConnClosed);
}

bool Connection::in_handler() const noexcept { return t_holder == this; }

// ---- the close race (seed 000)

bool Connection::close_by(CloseWho who, const char* why) noexcept {
  CloseWho expected = CloseWho::kNone;
  if (!state_.compare_exchange_strong(expected, who, std::memory_order_seq_cst)) {
    return false;  // the other side won
  }
  FAULTLOOP_RACE_POINT(race::kAfterCloseCas);
  FAULTLOOP_OBSERVE(LifecycleKind::kCloseWinner, id_, fd(), static_cast<int64_t>(who), why);
  FAULTLOOP_LOG(kDebug, "conn {}: closed by {} ({})", id_, close_who_name(who), why);
  wake_readers();
  return true;
}

void Connection::try_finish_close() noexcept {
  if (processing_.exchange(true, std::memory_order_seq_cst)) {
    return;  // a handler or call holds it: it completes the close when it lets go (#304)
  }
  close_locked();
}

void Connection::close_locked() noexcept {
  if (!inline_ && poll_owner_->in_loop_thread()) {
    // on_disconnect and the close callbacks are user code that may block: not on the poller.
    if (executor_.execute([self = shared_from_this()] { self->finish_close_locked(); })) {
      return;
    }
    // The pool was shut down: run them here rather than never (the lock is ours).
  }
  finish_close_locked();
}

void Connection::request_locked(bool on_executor) noexcept {
  if (on_executor || (inline_ && poll_owner_->in_loop_thread())) {
    run_locked();
    return;
  }
  // Found by a user thread or the poller letting go: handlers run on the executor only.
  bool queued = false;
  if (inline_) {
    poll_owner_->queue_in_loop([self = shared_from_this()] { self->run_locked(); });
    queued = true;
  } else {
    queued = executor_.execute([self = shared_from_this()] { self->run_locked(); });
  }
  if (!queued) {
    // The pool was shut down: nobody will run on_request; let go so a close can complete.
    processed_seq_ = input_seq_.load(std::memory_order_seq_cst);
    release_processing(/*on_executor=*/false);
  }
}

void Connection::finish_close_locked() noexcept {
  const HolderScope holder(this);
  const CloseWho who = state_.load(std::memory_order_acquire);
  if (who == CloseWho::kPoller && handlers_->on_disconnect) {
    // Under the processing lock, so never before on_connect has returned (netpoll #307).
    FAULTLOOP_OBSERVE(LifecycleKind::kDisconnect, id_, fd(), 0, nullptr);
    call_handler(handlers_->on_disconnect, "on_disconnect");
  }
  std::vector<std::function<void(Connection&)>> callbacks;
  {
    std::lock_guard lock(callbacks_mu_);
    callbacks.swap(callbacks_);
    callbacks_done_ = true;
  }
  for (std::size_t i = callbacks.size(); i-- > 0;) {
    FAULTLOOP_OBSERVE(LifecycleKind::kCloseCallback, id_, fd(), static_cast<int64_t>(i + 1),
                      nullptr);
    try {
      callbacks[i](*this);
    } catch (const std::exception& e) {
      handler_exceptions_.fetch_add(1, std::memory_order_relaxed);
      FAULTLOOP_LOG(kError, "conn {}: a close callback threw: {}", id_, e.what());
    } catch (...) {
      handler_exceptions_.fetch_add(1, std::memory_order_relaxed);
      FAULTLOOP_LOG(kError, "conn {}: a close callback threw a non-exception", id_);
    }
  }
  callbacks.clear();
  // The finalizer (registered first, runs last): the fd and the slot are the loop's.
  FAULTLOOP_OBSERVE(LifecycleKind::kCloseCallback, id_, fd(), 0, "finalizer");
  // processing_ stays taken for good: no handler or call touches the buffers again. Always
  // queued, even on the loop thread: the poller may be inside this operator's dispatch
  // (deferred destruction, STYLE 27), and must not MOD a closed number afterwards.
  poll_owner_->queue_in_loop([self = shared_from_this()] { self->finalize_in_loop(); });
}

void Connection::finalize_in_loop() noexcept {
  poll_owner_->assert_in_loop_thread();
  FAULTLOOP_RACE_POINT(race::kBeforeDetach);
  if (poll() == poll_owner_) {
    // Detach first: no event of this batch reaches the operator after the fd is closed.
    poll_owner_->control(shared_from_this(), PollEvent::kDetach);
  }
  cancel_timers_in_loop();
  {
    const sys::ConnScope scope(id_);
    FAULTLOOP_OBSERVE(LifecycleKind::kFdClose, id_, fd(), 0, nullptr);
    sys::close(fd());
  }
  FAULTLOOP_RACE_POINT(race::kAfterFdClose);
  const std::size_t bytes = input_.len() + output_.len();
  {
    LinkBuffer in = std::move(input_);  // frees every node now (the slot's reference may
    LinkBuffer out = std::move(output_);  // keep this object a little longer)
  }
  FAULTLOOP_OBSERVE(LifecycleKind::kBufferRelease, id_, fd(), static_cast<int64_t>(bytes),
                    nullptr);
  finalized_.store(true, std::memory_order_release);
  FAULTLOOP_OBSERVE(LifecycleKind::kFinalizer, id_, fd(), 0, nullptr);
  wake_readers();
}

std::error_code Connection::close() {
  if (!close_by(CloseWho::kUser, "close()")) {
    return closed_error();
  }
  try_finish_close();
  return {};
}

std::error_code Connection::add_close_callback(std::function<void(Connection&)> callback) {
  if (!callback) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  std::lock_guard lock(callbacks_mu_);
  if (callbacks_done_ || !is_active()) {
    return closed_error();
  }
  callbacks_.push_back(std::move(callback));
  return {};
}

// ---- requests

bool Connection::call_handler(const std::function<void(Connection&)>& handler,
                              const char* name) noexcept {
  try {
    handler(*this);
    return true;
  } catch (const std::exception& e) {
    handler_exceptions_.fetch_add(1, std::memory_order_relaxed);
    FAULTLOOP_OBSERVE(LifecycleKind::kHandlerThrew, id_, fd(), 0, name);
    FAULTLOOP_LOG(kError, "conn {}: {} threw: {}", id_, name, e.what());
  } catch (...) {
    handler_exceptions_.fetch_add(1, std::memory_order_relaxed);
    FAULTLOOP_OBSERVE(LifecycleKind::kHandlerThrew, id_, fd(), 0, name);
    FAULTLOOP_LOG(kError, "conn {}: {} threw a non-exception", id_, name);
  }
  close_by(CloseWho::kUser, "handler threw");  // netpoll #238; completed on release
  return false;
}

void Connection::dispatch() noexcept {
  if (processing_.exchange(true, std::memory_order_seq_cst)) {
    return;  // the holder looks at the new input when it lets go
  }
  if (inline_) {
    run_locked();  // on the poll thread, now: no task object per request
    return;
  }
  if (!executor_.execute([self = shared_from_this()] { self->run_locked(); })) {
    // The pool was shut down: no handler will run; let go so a close can complete.
    processed_seq_ = input_seq_.load(std::memory_order_seq_cst);
    release_processing(/*on_executor=*/false);
  }
}

void Connection::run_locked() noexcept {
  {
    const HolderScope holder(this);
    if (!connect_done_.load(std::memory_order_relaxed)) {
      if (is_active() && handlers_->on_connect) {
        FAULTLOOP_OBSERVE(LifecycleKind::kConnect, id_, fd(), 0, nullptr);
        call_handler(handlers_->on_connect, "on_connect");
      }
      connect_done_.store(true, std::memory_order_release);
    }
    const auto& on_request = handlers_->on_request;
    bool progress = false;
    while (on_request && is_active()) {
      const uint64_t seq = input_seq_.load(std::memory_order_seq_cst);
      const std::size_t before = input_.len();
      if (before == 0 || (seq == processed_seq_ && !progress)) {
        processed_seq_ = seq;
        break;  // nothing to read, or nothing new and the handler waits for more
      }
      processed_seq_ = seq;
      if (!call_handler(on_request, "on_request")) {
        break;
      }
      const std::size_t after = input_.len();
      input_.release();  // spans handed out in the handler end with it
      after_input_consumed();
      if (after == 0) {
        break;  // all consumed; input that came meanwhile is seen by release_processing()
      }
      progress = after < before;
    }
  }
  release_processing(/*on_executor=*/true);
}

bool Connection::max_input_bytes_paused() const noexcept {
  return options_.max_input_bytes != 0 && input_full_.load(std::memory_order_seq_cst);
}

void Connection::release_processing(bool on_executor) noexcept {
  while (true) {
    FAULTLOOP_RACE_POINT(race::kAfterHandlerReturn);
    if (!is_active()) {
      close_locked();  // a close came while we held the lock (netpoll #304)
      return;
    }
    if (eof_close_due()) {
      close_by(CloseWho::kPoller, "end of input");
      close_locked();
      return;
    }
    // processed_seq_ belongs to the lock's holder: copy it before letting go (the next holder,
    // maybe another worker, writes it at once).
    const uint64_t seen = processed_seq_;
    processing_.store(false, std::memory_order_seq_cst);
    FAULTLOOP_RACE_POINT(race::kAfterProcessingUnlock);
    // Re-check: a close or input that came while we held the lock found it taken and left
    // the work to us.
    const bool new_input =
        handlers_->on_request && input_seq_.load(std::memory_order_seq_cst) != seen;
    if (is_active() && !new_input && !eof_close_due()) {
      return;
    }
    if (processing_.exchange(true, std::memory_order_seq_cst)) {
      return;  // someone else took it and does the work
    }
    if (is_active() && new_input) {
      request_locked(on_executor);  // it releases again
      return;
    }
  }
}

bool Connection::eof_close_due() const noexcept {
  return input_eof_.load(std::memory_order_seq_cst) && handler_driven_ && !options_.half_close &&
         output_.len() == 0 && sender_.load(std::memory_order_seq_cst) == Sender::kNone &&
         is_active();
}

void Connection::maybe_close_after_eof() noexcept {
  if (options_.half_close || !input_eof_.load(std::memory_order_seq_cst) || !is_active()) {
    return;
  }
  if (output_.len() != 0 || sender_.load(std::memory_order_seq_cst) != Sender::kNone) {
    return;  // the drain calls again
  }
  if (handler_driven_) {
    // The handler path closes when it lets go; take the lock to check it is free.
    if (processing_.exchange(true, std::memory_order_seq_cst)) {
      return;
    }
    release_processing(/*on_executor=*/false);  // closes (eof_close_due) or hands back
    return;
  }
  if (input_.len() == 0 && close_by(CloseWho::kPoller, "end of input")) {
    try_finish_close();
  }
}

// ---- FDOperator: input

int Connection::inputs(std::span<iovec> out) noexcept {
  if (!is_active() || read_paused_.load(std::memory_order_relaxed)) {
    return 0;
  }
  if (options_.max_input_bytes != 0 && input_.len() >= options_.max_input_bytes) {
    // Dekker with after_input_consumed(): flag first, then look again.
    input_full_.store(true, std::memory_order_seq_cst);
    (void)input_taken_.load(std::memory_order_seq_cst);
    if (input_.len() >= options_.max_input_bytes) {
      return 0;  // the poller pauses reading; the reader resumes it
    }
    input_full_.store(false, std::memory_order_seq_cst);
  }
  const std::span<char> space = input_.book(kBookBytes, kBookBytes);
  if (space.empty()) {
    return 0;
  }
  out[0] = iovec{space.data(), space.size()};
  return 1;
}

void Connection::input_ack(const io_ops::IoResult& result) noexcept {
  switch (result.status) {
    case io_ops::IoStatus::kDone:
      input_.book_ack(result.bytes);
      input_seq_.store(input_seq_.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
      if (waiters_.load(std::memory_order_seq_cst) > 0) {
        wake_readers();
      }
      if (handlers_->on_request) {
        dispatch();
      }
      return;
    case io_ops::IoStatus::kWouldBlock:
      input_.book_ack(0);
      return;
    case io_ops::IoStatus::kEof:
      input_.book_ack(0);
      input_eof_.store(true, std::memory_order_seq_cst);
      input_seq_.store(input_seq_.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
      wake_readers();
      if (handler_driven_) {
        dispatch();  // remaining input to the handler; the release path closes (netpoll #278)
      } else {
        maybe_close_after_eof();
      }
      return;
    case io_ops::IoStatus::kError:
      input_.book_ack(0);
      close_error_.store(result.err, std::memory_order_release);
      if (close_by(CloseWho::kPoller, "read error")) {
        try_finish_close();
      }
      return;
  }
}

void Connection::drain_after_hup() noexcept {
  // Detached: epoll will not report this fd again, so what the kernel still holds is read now
  // or never. Bounded by the kernel's receive buffer (the input limit is exceeded by at most
  // that much, once).
  while (true) {
    const std::span<char> space = input_.book(kBookBytes, kBookBytes);
    if (space.empty()) {
      return;
    }
    const iovec iov{space.data(), space.size()};
    io_ops::IoResult r;
    {
      const sys::ConnScope scope(id_);
      r = io_ops::readv(fd(), std::span<const iovec>(&iov, 1));
    }
    input_ack(r);
    if (!r.is_done() || !is_active()) {
      return;
    }
  }
}

void Connection::on_hup() noexcept {
  // Reads were paused (pause_read, max_input_bytes) when the peer left: its last bytes and its
  // FIN are still in the kernel. A hang-up without a pending error is a graceful end (unix
  // sockets report EPOLLHUP with the FIN): read them now (BUGZOO I5: no byte lost).
  if (!input_eof_.load(std::memory_order_seq_cst) && is_active() &&
      close_error_.load(std::memory_order_acquire) == 0 &&
      (read_paused_.load(std::memory_order_relaxed) ||
       input_full_.load(std::memory_order_seq_cst)) &&
      !io_ops::socket_error(fd())) {
    drain_after_hup();
  }
  // The poller has detached us. A hang-up that came with the end of input (unix sockets
  // report EPOLLHUP with the peer's FIN) is a graceful end: the input already buffered is
  // still delivered (netpoll #278) and the end-of-input rules close. A reset, or output that
  // can no longer drain, closes now.
  const bool graceful = input_eof_.load(std::memory_order_seq_cst) &&
                        close_error_.load(std::memory_order_acquire) == 0 &&
                        output_.len() == 0 && sender_.load(std::memory_order_seq_cst) == Sender::kNone;
  if (graceful && !options_.half_close) {
    maybe_close_after_eof();
    return;
  }
  if (close_by(CloseWho::kPoller, "hang-up")) {
    try_finish_close();
  }
}

// ---- FDOperator: output

int Connection::outputs(std::span<iovec> out) noexcept {
  while (true) {
    if (sender_.load(std::memory_order_relaxed) != Sender::kPoller) {
      Sender none = Sender::kNone;
      if (!sender_.compare_exchange_strong(none, Sender::kPoller, std::memory_order_seq_cst)) {
        return 0;  // a flushing thread sends; it asks for R2RW again if it meets EAGAIN
      }
    }
    if (!is_active()) {
      sender_.store(Sender::kNone, std::memory_order_seq_cst);
      return 0;
    }
    const int n = output_.get_bytes(out);
    if (n > 0) {
      return n;
    }
    // Drained: let go, then look again (a writer whose flush found us sending left its bytes
    // to us).
    // Dekker with flush(): our seq_cst store, then its flush count; it bumps the count, then
    // tries sender_. Either we see its bytes here or its CAS sees kNone and it sends them.
    sender_.store(Sender::kNone, std::memory_order_seq_cst);
    (void)output_flushes_.load(std::memory_order_seq_cst);
    if (output_.len() == 0) {
      break;
    }
  }
  if (write_timer_.valid()) {
    poll_owner_->timers().cancel(write_timer_);  // drained: an old timer must not close a
    write_timer_ = TimerId{};                     // later stall early
  }
  write_timer_armed_ = false;
  if (shut_pending_.exchange(false, std::memory_order_acq_rel)) {
    const sys::ConnScope scope(id_);
    sys::shutdown(fd(), SHUT_WR);
  }
  maybe_close_after_eof();
  return 0;
}

void Connection::output_ack(const io_ops::IoResult& result) noexcept {
  switch (result.status) {
    case io_ops::IoStatus::kDone:
      output_.skip(result.bytes);
      output_.release();
      output_progress_.store(output_progress_.load(std::memory_order_relaxed) + result.bytes,
                             std::memory_order_relaxed);  // only the sender writes it
      return;
    case io_ops::IoStatus::kWouldBlock:
      if (options_.write_timeout > Duration::zero()) {
        arm_write_timer_in_loop();
      }
      return;  // EPOLLOUT comes again; we stay the sender
    case io_ops::IoStatus::kEof:
    case io_ops::IoStatus::kError:
      sender_.store(Sender::kNone, std::memory_order_seq_cst);
      close_error_.store(result.err, std::memory_order_release);
      if (close_by(CloseWho::kPoller, "send error")) {
        try_finish_close();
      }
      return;
  }
}

std::error_code Connection::send_now() noexcept {
  while (true) {
    Sender none = Sender::kNone;
    if (!sender_.compare_exchange_strong(none, Sender::kUser, std::memory_order_seq_cst)) {
      return {};  // the poller is sending: it takes these bytes too
    }
    iovec iov[kIovecs];
    while (true) {
      const int n = output_.get_bytes(std::span<iovec>(iov, kIovecs));
      if (n == 0) {
        break;
      }
      io_ops::IoResult r;
      {
        const sys::ConnScope scope(id_);
        r = io_ops::sendmsg(fd(), std::span<const iovec>(iov, static_cast<std::size_t>(n)));
      }
      if (r.is_done()) {
        output_.skip(r.bytes);
        output_.release();
        output_progress_.store(output_progress_.load(std::memory_order_relaxed) + r.bytes,
                               std::memory_order_relaxed);  // only the sender writes it
        if (output_.len() == 0) {
          break;  // all sent: no second get_bytes
        }
        continue;
      }
      sender_.store(Sender::kNone, std::memory_order_seq_cst);
      if (r.is_would_block()) {
        // The kernel is full: the poller takes over on EPOLLOUT (never blocks: DESIGN).
        poll_owner_->control(shared_from_this(), PollEvent::kR2RW);
        if (options_.write_timeout > Duration::zero()) {
          poll_owner_->run_in_loop([self = shared_from_this()] {
            self->arm_write_timer_in_loop();
          });
        }
        return {};
      }
      const int err = r.err != 0 ? r.err : EPIPE;
      close_error_.store(err, std::memory_order_release);
      close_by(CloseWho::kPoller, "send error");  // completed when the caller lets go
      return system_error(err);
    }
    sender_.store(Sender::kNone, std::memory_order_seq_cst);
    if (output_.len() == 0) {
      return {};  // (this thread is the only writer: nothing can have come meanwhile)
    }
  }
}

// ---- reader/writer calls

std::error_code Connection::enter_call(CallState& took) noexcept {
  if (t_holder == this) {
    return {};  // inside a handler: the lock is ours
  }
  while (true) {
    if (!processing_.exchange(true, std::memory_order_seq_cst)) {
      if (finalized_.load(std::memory_order_acquire)) {
        processing_.store(false, std::memory_order_seq_cst);  // not ours to keep
        return closed_error();
      }
      took.took = true;
      took.previous = t_holder;  // a handler of another connection calling into this one
      t_holder = this;
      return {};
    }
    if (!is_active()) {
      return closed_error();  // the close path holds it for good (or is about to)
    }
    // A handler holds it: wait for it to let go.
    std::unique_lock lock(wait_mu_);
    wait_cv_.wait_for(lock, kHolderPoll);
  }
}

void Connection::leave_call(const CallState& took) noexcept {
  if (!took.took) {
    return;
  }
  t_holder = took.previous;
  release_processing(/*on_executor=*/false);
  if (!handler_driven_) {
    maybe_close_after_eof();
  }
}

void Connection::wake_readers() noexcept {
  { std::lock_guard lock(wait_mu_); }
  wait_cv_.notify_all();
}

void Connection::after_input_consumed() noexcept {
  if (options_.max_input_bytes == 0) {
    return;
  }
  // Dekker with inputs(): our count, then its flag; it sets the flag, then reads the count.
  input_taken_.store(input_taken_.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
  if (input_full_.load(std::memory_order_seq_cst) && input_.len() < options_.max_input_bytes) {
    input_full_.store(false, std::memory_order_seq_cst);
    if (!read_paused_.load(std::memory_order_relaxed)) {
      poll_owner_->control(shared_from_this(), PollEvent::kResumeRead);
    }
  }
}

std::error_code Connection::wait_for(std::size_t n, bool until_delim, char delim) noexcept {
  const auto ready = [&] {
    if (until_delim) {
      const std::size_t len = input_.len();
      if (len == 0) {
        return false;
      }
      const auto all = input_.peek(len);
      return all.ok() && std::find(all->begin(), all->end(), delim) != all->end();
    }
    return input_.len() >= n;
  };
  if (state_.load(std::memory_order_acquire) == CloseWho::kUser) {
    return closed_error();
  }
  if (ready()) {
    return {};  // buffered bytes are delivered even after the peer closed (netpoll #278)
  }
  if (input_eof_.load(std::memory_order_acquire) || !is_active()) {
    return make_error_code(Errc::kEof);  // the peer closed (a user close returned above)
  }
  if (poll_owner_->in_loop_thread()) {
    return make_error_code(Errc::kWouldBlock);  // inline executor: the poll thread never waits
  }
  const Executor::BlockingScope blocking;
  const uint64_t gen = read_wait_gen_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (options_.read_timeout > Duration::zero()) {
    poll_owner_->run_in_loop([weak = weak_from_this(), gen] {
      if (auto self = weak.lock()) {
        self->arm_read_timer_in_loop(gen);
      }
    });
  }
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  std::error_code result;
  {
    std::unique_lock lock(wait_mu_);
    while (true) {
      (void)input_seq_.load(std::memory_order_seq_cst);  // pairs with input_ack's store
      if (state_.load(std::memory_order_acquire) == CloseWho::kUser) {
        result = closed_error();
        break;
      }
      if (ready()) {
        break;
      }
      if (input_eof_.load(std::memory_order_acquire) || !is_active()) {
        result = make_error_code(Errc::kEof);
        break;
      }
      if (read_timed_out_.load(std::memory_order_acquire) == gen) {
        result = make_error_code(Errc::kReadTimeout);
        break;
      }
      wait_cv_.wait(lock);
    }
  }
  waiters_.fetch_sub(1, std::memory_order_seq_cst);
  if (result == make_error_code(Errc::kReadTimeout)) {
    FAULTLOOP_OBSERVE(LifecycleKind::kTimeout, id_, fd(), 1, "read");
  }
  return result;
}

template <class R, class Op>
R Connection::read_call(std::size_t n, bool until_delim, char delim, Op op) {
  // Fast path: a handler reading bytes that are already there (the echo round trip).
  if (t_holder == this && !until_delim && input_.len() >= n &&
      state_.load(std::memory_order_relaxed) != CloseWho::kUser) [[likely]] {
    R out = op();
    after_input_consumed();
    return out;
  }
  CallState took;
  if (const std::error_code ec = enter_call(took)) {
    return R(ec);
  }
  if (const std::error_code ec = wait_for(n, until_delim, delim)) {
    leave_call(took);
    return R(ec);
  }
  R out = op();
  after_input_consumed();
  leave_call(took);
  return out;
}

Result<std::span<const char>> Connection::next(std::size_t n) {
  return read_call<Result<std::span<const char>>>(n, false, 0, [&] { return input_.next(n); });
}

Result<std::span<const char>> Connection::peek(std::size_t n) {
  return read_call<Result<std::span<const char>>>(n, false, 0, [&] { return input_.peek(n); });
}

std::error_code Connection::skip(std::size_t n) {
  return read_call<std::error_code>(n, false, 0, [&] { return input_.skip(n); });
}

Result<std::span<const char>> Connection::until(char delim) {
  return read_call<Result<std::span<const char>>>(0, true, delim,
                                                  [&] { return input_.until(delim); });
}

Result<std::string> Connection::read_string(std::size_t n) {
  return read_call<Result<std::string>>(n, false, 0, [&] { return input_.read_string(n); });
}

std::error_code Connection::read_binary(std::span<char> out) {
  return read_call<std::error_code>(out.size(), false, 0,
                                    [&] { return input_.read_binary(out); });
}

Result<LinkBuffer> Connection::slice(std::size_t n) {
  return read_call<Result<LinkBuffer>>(n, false, 0, [&] { return input_.slice(n); });
}

std::error_code Connection::release() {
  CallState took;
  if (const std::error_code ec = enter_call(took)) {
    return ec;
  }
  input_.release();
  after_input_consumed();
  leave_call(took);
  return {};
}

std::error_code Connection::check_output_room(std::size_t n) noexcept {
  if (!is_active()) {
    return closed_error();
  }
  if (write_shut_.load(std::memory_order_acquire)) {
    return make_error_code(Errc::kConnClosed);
  }
  if (options_.max_output_bytes != 0 &&
      output_.len() + output_.malloc_len() + n > options_.max_output_bytes) {
    return make_error_code(Errc::kBufferFull);
  }
  return {};
}

template <class R, class Op>
R Connection::write_call(std::size_t n, Op op) {
  CallState took;
  if (t_holder != this) {
    if (const std::error_code ec = enter_call(took)) {
      return R(ec);
    }
  }
  if (const std::error_code ec = check_output_room(n)) {
    leave_call(took);
    return R(ec);
  }
  R out = op();
  leave_call(took);
  return out;
}

Result<std::span<char>> Connection::malloc(std::size_t n) {
  return write_call<Result<std::span<char>>>(n, [&] { return output_.malloc(n); });
}

std::error_code Connection::malloc_ack(std::size_t n) {
  return write_call<std::error_code>(0, [&] { return output_.malloc_ack(n); });
}

std::error_code Connection::write_binary(std::span<const char> data) {
  return write_call<std::error_code>(data.size(), [&] { return output_.write_binary(data); });
}

std::error_code Connection::write_binary(std::span<const char> data,
                                         std::function<void()> on_release) {
  bool ran = false;
  std::error_code ec = write_call<std::error_code>(data.size(), [&] {
    ran = true;
    return output_.write_binary(data, std::move(on_release));
  });
  if (!ran && on_release) {
    on_release();  // refused before reaching the buffer: still exactly once
  }
  return ec;
}

std::error_code Connection::append(LinkBuffer&& other) {
  return write_call<std::error_code>(other.len(),
                                     [&] { return output_.append(std::move(other)); });
}

std::error_code Connection::flush() {
  CallState took;
  if (t_holder != this) {
    if (const std::error_code ec = enter_call(took)) {
      return ec;
    }
  }
  std::error_code ec;
  if (!is_active()) {
    ec = closed_error();
  } else if (write_shut_.load(std::memory_order_acquire)) {
    ec = make_error_code(Errc::kConnClosed);
  } else {
    ec = output_.flush();
    if (!ec) {
      output_flushes_.store(output_flushes_.load(std::memory_order_relaxed) + 1,
                            std::memory_order_seq_cst);
      ec = send_now();
    }
  }
  leave_call(took);
  return ec;
}

std::error_code Connection::shutdown_write() {
  CallState took;
  if (const std::error_code ec = enter_call(took)) {
    return ec;
  }
  std::error_code ec;
  if (!is_active()) {
    ec = closed_error();
  } else if (write_shut_.exchange(true, std::memory_order_acq_rel)) {
    ec = make_error_code(Errc::kConnClosed);  // already shut
  } else {
    ec = output_.flush();
    if (!ec) {
      output_flushes_.store(output_flushes_.load(std::memory_order_relaxed) + 1,
                            std::memory_order_seq_cst);
      ec = send_now();
    }
    if (!ec) {
      // Our FIN goes after the pending output: now if it is all sent, else when the poller
      // drains it (outputs()).
      shut_pending_.store(true, std::memory_order_seq_cst);
      Sender none = Sender::kNone;
      if (output_.len() == 0 &&
          sender_.compare_exchange_strong(none, Sender::kUser, std::memory_order_seq_cst)) {
        if (shut_pending_.exchange(false, std::memory_order_acq_rel)) {
          const sys::ConnScope scope(id_);
          if (sys::shutdown(fd(), SHUT_WR) != 0 && errno != ENOTCONN) {
            ec = system_error(errno);
          }
        }
        sender_.store(Sender::kNone, std::memory_order_seq_cst);
      }
    }
  }
  leave_call(took);
  return ec;
}

std::error_code Connection::pause_read() {
  if (!is_active()) {
    return closed_error();
  }
  read_paused_.store(true, std::memory_order_relaxed);
  return poll_owner_->control(shared_from_this(), PollEvent::kPauseRead);
}

std::error_code Connection::resume_read() {
  if (!is_active()) {
    return closed_error();
  }
  read_paused_.store(false, std::memory_order_relaxed);
  if (max_input_bytes_paused()) {
    return {};  // the limit still holds: the reader's consumption resumes
  }
  return poll_owner_->control(shared_from_this(), PollEvent::kResumeRead);
}

// ---- timers (loop thread)

void Connection::arm_idle_in_loop() noexcept {
  poll_owner_->assert_in_loop_thread();
  idle_seen_seq_ = input_seq_.load(std::memory_order_relaxed);
  idle_since_ = poll_owner_->clock().now();
  schedule_idle_check(std::max(options_.idle_timeout / 4, Duration(1)));
}

void Connection::schedule_idle_check(Duration delay) noexcept {
  idle_timer_ = poll_owner_->add_timer(delay, [weak = weak_from_this()] {
    if (auto self = weak.lock()) {
      self->idle_check_in_loop();
    }
  });
}

void Connection::idle_check_in_loop() noexcept {
  poll_owner_->assert_in_loop_thread();
  idle_timer_ = TimerId{};
  if (!is_active()) {
    return;
  }
  // Input moves input_seq_; the check runs every quarter of the timeout, so the close comes
  // between idle_timeout and 1.25 x idle_timeout after the last input, with no timer work per
  // request.
  const TimePoint now = poll_owner_->clock().now();
  const uint64_t seq = input_seq_.load(std::memory_order_relaxed);
  if (seq != idle_seen_seq_) {
    idle_seen_seq_ = seq;
    idle_since_ = now;
  }
  const Duration idle = now - idle_since_;
  if (idle >= options_.idle_timeout) {
    FAULTLOOP_OBSERVE(LifecycleKind::kTimeout, id_, fd(), 3, "idle");
    if (close_by(CloseWho::kUser, "idle timeout")) {
      try_finish_close();
    }
    return;
  }
  schedule_idle_check(std::min(std::max(options_.idle_timeout / 4, Duration(1)),
                               options_.idle_timeout - idle));
}

void Connection::arm_write_timer_in_loop() noexcept {
  poll_owner_->assert_in_loop_thread();
  if (write_timer_armed_ || !is_active()) {
    return;
  }
  write_timer_armed_ = true;
  write_timer_progress_ = output_progress_.load(std::memory_order_relaxed);
  write_timer_ = poll_owner_->add_timer(options_.write_timeout, [weak = weak_from_this()] {
    if (auto self = weak.lock()) {
      self->write_check_in_loop();
    }
  });
}

void Connection::write_check_in_loop() noexcept {
  poll_owner_->assert_in_loop_thread();
  write_timer_ = TimerId{};
  write_timer_armed_ = false;
  if (!is_active()) {
    return;
  }
  if (output_.len() == 0 && sender_.load(std::memory_order_acquire) == Sender::kNone) {
    return;  // drained
  }
  const uint64_t progress = output_progress_.load(std::memory_order_relaxed);
  if (progress != write_timer_progress_) {
    arm_write_timer_in_loop();  // the kernel took something: a new period
    return;
  }
  FAULTLOOP_OBSERVE(LifecycleKind::kTimeout, id_, fd(), 2, "write");
  if (!is_active()) {
    return;
  }
  write_timed_out_.store(true, std::memory_order_release);  // before the CAS: calls that see
                                                            // the close see the reason
  if (close_by(CloseWho::kUser, "write timeout")) {
    try_finish_close();
  } else {
    write_timed_out_.store(false, std::memory_order_release);  // another close won first
  }
}

void Connection::arm_read_timer_in_loop(uint64_t gen) noexcept {
  poll_owner_->assert_in_loop_thread();
  if (finalized()) {
    return;
  }
  // One read timer per connection: a new wait replaces the last one's (which ended).
  if (read_timer_.valid()) {
    poll_owner_->timers().cancel(read_timer_);
  }
  read_timer_ = poll_owner_->add_timer(options_.read_timeout, [weak = weak_from_this(), gen] {
    if (auto self = weak.lock()) {
      self->read_timer_ = TimerId{};
      self->read_timed_out_.store(gen, std::memory_order_release);
      self->wake_readers();
    }
  });
}

void Connection::cancel_timers_in_loop() noexcept {
  if (read_timer_.valid()) {
    poll_owner_->timers().cancel(read_timer_);
    read_timer_ = TimerId{};
  }
  if (idle_timer_.valid()) {
    poll_owner_->timers().cancel(idle_timer_);
    idle_timer_ = TimerId{};
  }
  if (write_timer_.valid()) {
    poll_owner_->timers().cancel(write_timer_);
    write_timer_ = TimerId{};
  }
}

}  // namespace faultloop
