// Public: Connection — one TCP or unix stream with netpoll's lifecycle (seed 000, DESIGN
// "Connection", "Lifecycle", "Half-close", "Backpressure", "Timeouts").
//
// Lifecycle: on_prepare (returns the context) → on_connect (once) → on_request while input
// arrives → close → on_disconnect (poller won only) → close callbacks, LIFO, the finalizer last
// (it detaches, closes the fd and releases the buffers).
//
// Three pieces of state decide everything (all atomics on the Connection):
//   state_       kOpen → kClosedByUser | kClosedByPoller: close_by(who) is one CAS, so exactly
//                one of close() and a hang-up wins (netpoll closeBy).
//   processing_  the "processing" lock: held while a handler (on_connect, on_request,
//                on_disconnect, the close callbacks) runs, and while a user thread outside a
//                handler is inside a reader/writer call. The close callbacks need it: a close
//                that arrives while someone holds it is completed by that someone when it lets
//                go (netpoll #304). After the callbacks it is never released again, so nothing
//                touches the buffers after the finalizer.
//   sender_      who is writing the output buffer to the socket: nobody, the poller (EPOLLOUT)
//                or a flushing thread. One at a time, so the output buffer keeps one reader.
//
// Threads: the poller does the reads (readv into booked input space) and, under
// backpressure, the writes; handlers run on the executor (the poll thread for inline, a worker
// for pool). A connection's reader is used by one thread at a time and so is its writer:
// normally its handlers, which the processing lock serialises; a connection without
// on_request (a dialed client) belongs to the thread that uses it.
//
// Hot path (inline executor, echo): readv → input_ack → on_request → next/malloc/flush →
// sendmsg, no allocation (the buffers' nodes come from NodePool's thread cache), no lock
// (processing_ and sender_ are uncontended atomic exchanges), one indirect call to the
// handler. Figures: README "Speed".
#pragma once

#include <any>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "reactor/address.h"
#include "reactor/clock.h"
#include "reactor/fd_operator.h"
#include "reactor/link_buffer.h"
#include "reactor/result.h"
#include "reactor/timer_wheel.h"

namespace faultloop {

class Connection;
class Executor;
class Poll;

/// Who closed a connection: netpoll's closeBy key (seed 000).
enum class CloseWho : uint8_t {
  kNone = 0,    ///< still open
  kUser = 1,    ///< close() (ours: a handler, a user thread, a timeout, a thrown handler)
  kPoller = 2,  ///< the peer: a hang-up, a reset, or end of input without half_close
};

/// "none", "user", "poller".
const char* close_who_name(CloseWho who);

/// The user's callbacks (netpoll OnPrepare/OnConnect/OnRequest/OnDisconnect). Each may be
/// empty. Handlers run on the executor (DESIGN "Executors") under the processing lock, never
/// two at once for one connection. A handler that throws closes its connection (kUser; netpoll
/// #238); the exception is counted (Connection::handler_exceptions()) and logged.
struct ConnectionHandlers {
  /// Runs once, on the poll thread, before the connection is registered; its result becomes
  /// context(). May not block. Throwing refuses the connection (closed at once, no other
  /// callback runs).
  std::function<std::any(Connection&)> on_prepare;
  /// Runs once, before the first on_request, on the executor.
  std::function<void(Connection&)> on_connect;
  /// Runs while unread input arrives (again after each new arrival, and again at once while
  /// it consumes something and input remains). Read with reader calls; in the inline executor
  /// next(n) never blocks (ErrWouldBlock): return and wait for the next call.
  std::function<void(Connection&)> on_request;
  /// Runs once when the poller wins the close (peer closed, reset or hung up), never before
  /// on_connect has returned (netpoll #307), before the close callbacks. It runs whenever the
  /// poller won, also when the peer was gone before on_connect could run (on_connect is then
  /// skipped): state it reads must not depend on on_connect having run.
  std::function<void(Connection&)> on_disconnect;
};

/// Per-connection limits and timeouts. Duration::zero() means "none".
struct ConnectionOptions {
  /// A next(n) that waits longer fails with ErrReadTimeout (pool executor and user threads).
  Duration read_timeout{};
  /// Output that stays undrained (the kernel takes nothing) this long closes the connection
  /// with ErrWriteTimeout; also bounds the flush before a default half-close.
  Duration write_timeout{};
  /// No input for this long closes the connection (kUser, LifecycleKind::kTimeout).
  Duration idle_timeout{};
  /// Input bytes buffered before the poller stops reading (backpressure); 0 = unlimited.
  /// Reading resumes when the reader consumes below the limit.
  std::size_t max_input_bytes = 0;
  /// Output bytes buffered (written, not yet sent) before writer calls fail with
  /// ErrBufferFull; 0 = unlimited.
  std::size_t max_output_bytes = 0;
  /// Peer FIN: false (default) closes once the handler returned and the output is flushed;
  /// true keeps the connection writable until the user closes (DESIGN "Half-close").
  bool half_close = false;
};

/// A stream connection (see the file comment). Always held by std::shared_ptr (ConnectionPtr);
/// the Poll holds a reference while it is registered. Every call after close returns an error
/// (ErrConnClosed when we closed, ErrEOF when the peer did, ErrWriteTimeout when the write
/// timeout did), never crashes (netpoll #416).
class Connection final : public FDOperator, public std::enable_shared_from_this<Connection> {
 public:
  /// Creates a connection for the connected, non-blocking socket `fd`, which it owns from now
  /// on (closed by the finalizer, or at once if this throws). `executor` must outlive it.
  /// Nothing is registered yet: start() does that. `dialed`: made by dial_connection (the
  /// observer reports kDialed instead of kAccepted). Throws std::bad_alloc.
  static std::shared_ptr<Connection> create(int fd, Poll& poll, Executor& executor,
                                            std::shared_ptr<const ConnectionHandlers> handlers,
                                            const ConnectionOptions& options, Address peer = {},
                                            bool dialed = false);

  /// Runs on_prepare, registers with the poll (kReadable) and schedules on_connect. From any
  /// thread. An error (on_prepare threw, epoll_ctl failed) closes the connection by the user
  /// and is returned (it is also what the poll thread logs when start() is queued there).
  std::error_code start();

  /// Closes the fd if the finalizer never ran (never started, or its loop stopped first).
  ~Connection() override;

  // ---- identity and state

  /// Process-unique id (> 0): the ledger's connection and the events' "conn".
  uint64_t id() const { return id_; }
  /// The peer's address as accepted or dialed (may be empty).
  const Address& peer() const { return peer_; }
  /// The poll this connection is registered with.
  Poll& owner() const { return *poll_owner_; }
  /// True until close_by() has been won by anyone.
  bool is_active() const { return state_.load(std::memory_order_acquire) == CloseWho::kNone; }
  /// Who won the close (kNone while open).
  CloseWho closed_by() const { return state_.load(std::memory_order_acquire); }
  /// True once the finalizer has closed the fd and released the buffers.
  bool finalized() const { return finalized_.load(std::memory_order_acquire); }
  /// True once the peer's FIN was read (end of input).
  bool peer_closed() const { return input_eof_.load(std::memory_order_acquire); }
  /// True while a handler runs or a user thread is inside a reader/writer call (the
  /// processing lock); stays true once the close callbacks ran. EventLoop::shutdown waits on it.
  bool processing() const { return processing_.load(std::memory_order_acquire); }
  /// What on_prepare returned (empty without on_prepare). Handler threads only.
  std::any& context() { return context_; }

  // ---- reader (netpoll Reader). One thread at a time (see the file comment).

  /// Readable bytes now.
  std::size_t len() const { return input_.len(); }
  /// Waits until n bytes are readable, then consumes and returns them contiguously (valid until
  /// release()). Errors: ErrWouldBlock (inline executor, fewer than n bytes: nothing waits on a
  /// poll thread), ErrReadTimeout (waited read_timeout), ErrEOF (the peer closed and fewer than
  /// n bytes remain), ErrConnClosed (we closed).
  Result<std::span<const char>> next(std::size_t n);
  /// Like next(n) without consuming.
  Result<std::span<const char>> peek(std::size_t n);
  /// Waits like next(n), then consumes n bytes.
  std::error_code skip(std::size_t n);
  /// Consumes through the first `delim` if buffered; waits for more input otherwise (errors as
  /// next(n)).
  Result<std::span<const char>> until(char delim);
  /// Waits like next(n); the bytes as a string.
  Result<std::string> read_string(std::size_t n);
  /// Waits like next(n); the bytes copied into `out` (n = out.size()).
  std::error_code read_binary(std::span<char> out);
  /// Waits like next(n); the bytes as a zero-copy LinkBuffer that may outlive the connection.
  Result<LinkBuffer> slice(std::size_t n);
  /// Frees consumed input (netpoll Release); spans from earlier calls become invalid. Also
  /// resumes reading when max_input_bytes had paused it.
  std::error_code release();

  // ---- writer (netpoll Writer). One thread at a time.

  /// n writable bytes at the output's tail, sent at flush(). ErrBufferFull when the output
  /// would exceed max_output_bytes.
  Result<std::span<char>> malloc(std::size_t n);
  /// Keeps the first n bytes malloc'ed since the last flush (netpoll MallocAck).
  std::error_code malloc_ack(std::size_t n);
  /// Appends a copy of `data`. ErrBufferFull as malloc().
  std::error_code write_binary(std::span<const char> data);
  /// Appends `data`, linked without copying above LinkBuffer::kNoCopyThreshold (see
  /// LinkBuffer::write_binary); `on_release` runs exactly once, also when this fails.
  std::error_code write_binary(std::span<const char> data, std::function<void()> on_release);
  /// Moves `other` to the output without copying.
  std::error_code append(LinkBuffer&& other);
  /// Sends what was written, at once, with sendmsg(MSG_NOSIGNAL) on the calling thread; what
  /// the kernel does not take stays buffered and the poller sends it on EPOLLOUT (never
  /// blocks). Errors: ErrConnClosed/ErrEOF after close; a send error (EPIPE, ECONNRESET)
  /// closes the connection (poller) and is returned in system_category.
  std::error_code flush();
  /// Bytes written but not yet sent.
  std::size_t pending_output() const { return output_.len(); }

  // ---- control

  /// Closes (kUser). Idempotent: the first close_by wins; later calls return ErrConnClosed or
  /// ErrEOF (whoever won). From any thread, handlers included. Blocked readers wake with
  /// ErrConnClosed; the close callbacks run when the processing lock is free (at once, or when
  /// the running handler returns: netpoll #304).
  std::error_code close();
  /// Sends our FIN (shutdown(SHUT_WR)) after the pending output: the peer reads everything
  /// written so far, then end of input. Writer calls fail with ErrConnClosed afterwards.
  std::error_code shutdown_write();
  /// Registers `callback` to run once when the connection closes, LIFO, before the finalizer
  /// (netpoll AddCloseCallback). Once closing began it is neither registered nor run and the
  /// close's error is returned (ErrConnClosed, ErrEOF or ErrWriteTimeout, as for every call
  /// after close).
  std::error_code add_close_callback(std::function<void(Connection&)> callback);
  /// Stops reading from the socket (backpressure): input already buffered stays readable.
  std::error_code pause_read();
  /// Starts reading again.
  std::error_code resume_read();

  /// Handler exceptions caught on this connection (0 or 1: a throw closes it).
  uint64_t handler_exceptions() const { return handler_exceptions_.load(std::memory_order_relaxed); }

  // ---- FDOperator (poll thread only)

  /// Booked input space (LinkBuffer::book), 0 iovecs when the input limit is reached.
  int inputs(std::span<iovec> out) noexcept override;
  /// book_ack, wakes readers, dispatches on_request; end of input and errors start the close.
  void input_ack(const io_ops::IoResult& result) noexcept override;
  /// Pending output when the poller is (or becomes) the sender; 0 otherwise.
  int outputs(std::span<iovec> out) noexcept override;
  /// Consumes what was sent; a send error closes (poller).
  void output_ack(const io_ops::IoResult& result) noexcept override;
  /// EPOLLHUP/EPOLLERR: the poller closes.
  void on_hup() noexcept override;

 private:
  struct PrivateTag {};

 public:
  /// Use create().
  Connection(PrivateTag, int fd, Poll& poll, Executor& executor,
             std::shared_ptr<const ConnectionHandlers> handlers, const ConnectionOptions& options,
             Address peer, bool dialed);

 private:
  enum class Sender : uint8_t { kNone, kPoller, kUser };
  // A reader/writer call from outside this connection's handlers: whether it took the
  // processing lock, and the holder it displaced (a handler of another connection).
  struct CallState {
    bool took = false;
    const Connection* previous = nullptr;
  };

  // Registration (loop thread).
  void start_in_loop() noexcept;

  // Close machinery.
  bool close_by(CloseWho who, const char* why) noexcept;
  void try_finish_close() noexcept;
  void close_locked() noexcept;
  void request_locked(bool on_executor) noexcept;
  void finish_close_locked() noexcept;
  void finalize_in_loop() noexcept;
  std::error_code closed_error() const noexcept;

  // Request machinery.
  void dispatch() noexcept;
  void run_locked() noexcept;
  void release_processing(bool on_executor) noexcept;
  bool call_handler(const std::function<void(Connection&)>& handler, const char* name) noexcept;

  // Reader/writer helpers.
  std::error_code wait_for(std::size_t n, bool until_delim, char delim) noexcept;
  template <class R, class Op>
  R read_call(std::size_t n, bool until_delim, char delim, Op op);
  template <class R, class Op>
  R write_call(std::size_t n, Op op);
  bool in_handler() const noexcept;
  std::error_code enter_call(CallState& took) noexcept;
  void leave_call(const CallState& took) noexcept;
  std::error_code check_output_room(std::size_t n) noexcept;
  std::error_code send_now() noexcept;
  void wake_readers() noexcept;
  void after_input_consumed() noexcept;
  void maybe_close_after_eof() noexcept;
  void drain_after_hup() noexcept;
  bool eof_close_due() const noexcept;
  bool max_input_bytes_paused() const noexcept;

  // Timers (loop thread).
  void arm_idle_in_loop() noexcept;
  void schedule_idle_check(Duration delay) noexcept;
  void idle_check_in_loop() noexcept;
  void arm_write_timer_in_loop() noexcept;
  void write_check_in_loop() noexcept;
  void arm_read_timer_in_loop(uint64_t gen) noexcept;
  void cancel_timers_in_loop() noexcept;

  const uint64_t id_;
  Poll* const poll_owner_;
  Executor& executor_;
  const bool inline_;
  const std::shared_ptr<const ConnectionHandlers> handlers_;
  const ConnectionOptions options_;
  const Address peer_;
  std::any context_;

  LinkBuffer input_;
  LinkBuffer output_;

  std::atomic<CloseWho> state_{CloseWho::kNone};
  std::atomic<bool> processing_{false};
  std::atomic<Sender> sender_{Sender::kNone};
  std::atomic<bool> input_eof_{false};
  std::atomic<bool> write_shut_{false};
  std::atomic<bool> connect_done_{false};
  std::atomic<bool> finalized_{false};
  std::atomic<bool> read_paused_{false};   // by the user (pause_read)
  std::atomic<bool> input_full_{false};    // by max_input_bytes
  std::atomic<uint64_t> input_taken_{0};   // reader consumptions (max_input_bytes only)
  std::atomic<uint64_t> output_flushes_{0};  // flush() calls that published output
  std::atomic<uint64_t> input_seq_{0};     // bumped per input_ack with bytes (or EOF)
  uint64_t processed_seq_ = 0;             // processing holder only
  std::atomic<uint64_t> handler_exceptions_{0};
  std::atomic<int> close_error_{0};        // errno of a send/receive error that closed us
  std::atomic<bool> write_timed_out_{false};  // closed by the write timeout: ErrWriteTimeout
  const bool dialed_;
  const bool handler_driven_;              // on_connect or on_request set
  std::atomic<bool> shut_pending_{false};  // shutdown_write() waits for the output to drain

  // Blocked readers (pool executor, user threads): waiters_ > 0 makes input_ack notify.
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  std::atomic<int> waiters_{0};
  std::atomic<uint64_t> read_wait_gen_{0};   // one per blocking wait; a timer names its wait
  std::atomic<uint64_t> read_timed_out_{0};  // the wait generation that timed out

  // User close callbacks in registration order (the finalizer is not among them: it is
  // finish_close_locked()'s last step, index 0 in the observer's numbering).
  std::mutex callbacks_mu_;
  std::vector<std::function<void(Connection&)>> callbacks_;
  bool callbacks_done_ = false;

  // Loop-thread state.
  TimerId idle_timer_;
  TimerId read_timer_;
  TimerId write_timer_;
  uint64_t idle_seen_seq_ = 0;
  TimePoint idle_since_{};
  std::atomic<uint64_t> output_progress_{0};  // bytes sent so far
  uint64_t write_timer_progress_ = 0;
  bool write_timer_armed_ = false;
};

/// Shared ownership of a Connection.
using ConnectionPtr = std::shared_ptr<Connection>;

}  // namespace faultloop
