// Public: Poll — one epoll instance, one eventfd wake-up, one timer wheel and one named thread
// (`fl-poll-N`): netpoll's Poll, muduo's EventLoop (DESIGN "Poll").
//
// Dispatch goes through a table indexed by fd (libuv watchers[fd], STYLE 26). Each slot holds
// the operator's strong reference from Readable/Writable until Detach, and epoll_event.data.u64
// carries fd | generation << 32: an event of the current batch that names a slot detached (and
// maybe re-registered) earlier in the batch carries an old generation and is dropped (nbio #404,
// netpoll #142). Hang-ups found in a round are detached together at its end; released operators
// are dropped only at the end of the loop iteration (muduo queueInLoop(connectDestroyed)).
//
// Threads: control() may be called from any thread; off the loop thread it is queued to the
// loop (the registration state is the loop's alone, so a late R2RW can never touch a number
// that was detached and reused meanwhile). timers() is loop-thread only (asserted).
// run_in_loop/queue_in_loop hand work to the loop from anywhere. Tasks and timer callbacks
// that throw are caught, counted and logged: the loop survives (DESIGN "Handlers may throw").
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "reactor/clock.h"
#include "reactor/fd_operator.h"
#include "reactor/result.h"
#include "reactor/timer_wheel.h"

namespace faultloop {

/// Options of one Poll.
struct PollOptions {
  int index = 0;                               ///< N of the thread name `fl-poll-N`
  TriggerMode trigger = TriggerMode::kLevel;   ///< how connections are registered
  std::shared_ptr<const Clock> clock;          ///< null: a SteadyClock
  TimerWheelOptions timers;                    ///< tick and slots of the loop's wheel
  int initial_events = 128;                    ///< epoll_wait batch; doubles when filled
};

/// One event loop (see the file comment).
class Poll {
 public:
  /// Work handed to the loop thread.
  using Task = std::function<void()>;

  /// Creates the epoll set and the wake-up eventfd through the seam (no thread yet). Errors:
  /// the errno of epoll_create1/eventfd/epoll_ctl (EMFILE, ENFILE, ENOMEM) in system_category.
  static Result<std::unique_ptr<Poll>> create(PollOptions options = {});

  /// Stops the loop (if running) and closes the epoll fd and the eventfd through the seam.
  /// Operators still registered are released without on_hup (their owners close their fds).
  /// Waits for threads still inside queue_in_loop() (their wake-up) before closing anything.
  ~Poll();
  /// Not copyable (threads and operators hold `this`).
  Poll(const Poll&) = delete;
  /// Not copyable.
  Poll& operator=(const Poll&) = delete;

  /// Starts the loop on its own thread `fl-poll-<index>` (thread kind "poller").
  void start();

  /// Runs the loop on the calling thread until stop() (tests, deterministic mode).
  void run();

  /// Asks the loop to finish its iteration and return; joins the thread started by start()
  /// unless called on it. Idempotent.
  void stop();

  /// Registers, switches or deregisters `op` (netpoll Control). On the loop thread it runs at
  /// once and returns the error: the errno of epoll_ctl; registering an operator already
  /// registered, an fd beyond the table (2^20), or switching an operator not registered here
  /// is std::errc::invalid_argument. From another thread it is queued to the loop and returns
  /// {}; a failure there is logged, and a switch of an operator detached meanwhile is dropped.
  std::error_code control(const std::shared_ptr<FDOperator>& op, PollEvent event);

  /// Runs `task` now if called on the loop thread, else queues it and wakes the loop.
  void run_in_loop(Task task);

  /// Queues `task` to run after the current round's events, and wakes the loop if needed.
  void queue_in_loop(Task task);

  /// The loop's timer wheel, driven by its clock (loop thread only). Its "now" is when the loop
  /// last ran its due timers (after each wake-up's events: an event and a timeout due in one
  /// wake-up are decided for the event); add_timer()/reset_timer() count from the clock.
  TimerWheel& timers();

  /// Arms a timer `delay` from now by the loop's clock, never earlier (loop thread only).
  TimerId add_timer(Duration delay, TimerWheel::Callback cb);

  /// Re-arms `id` `delay` from now by the loop's clock (loop thread only); false if it was not
  /// pending.
  bool reset_timer(TimerId id, Duration delay);

  /// True on the thread running the loop.
  bool in_loop_thread() const {
    return loop_thread_.load(std::memory_order_acquire) == std::this_thread::get_id();
  }

  /// Logs and aborts when not called on the loop thread (the `_in_loop` contract).
  void assert_in_loop_thread() const;

  /// The trigger mode of this loop's registrations.
  TriggerMode trigger_mode() const { return options_.trigger; }

  /// N of `fl-poll-N`.
  int index() const { return options_.index; }

  /// The loop's clock.
  const Clock& clock() const { return *clock_; }

  /// Operators registered now (loop thread, or after the loop stopped).
  std::size_t registered() const { return registered_; }

  /// Tasks and timer callbacks that threw (caught by the loop).
  uint64_t exceptions() const { return exceptions_.load(std::memory_order_relaxed); }

  /// Loop iterations so far, and iterations that handled no event, task, hang-up or timer
  /// (a timeout that ran out early, a wake-up for nothing): a loop that spins shows a fast
  /// growing idle count.
  uint64_t iterations() const { return iterations_.load(std::memory_order_relaxed); }
  /// See iterations().
  uint64_t idle_iterations() const { return idle_iterations_.load(std::memory_order_relaxed); }

 private:
  struct Slot {
    std::shared_ptr<FDOperator> op;
    uint32_t generation = 0;
  };

  explicit Poll(PollOptions options, std::shared_ptr<const Clock> clock, int epfd, int wake_fd);

  void loop();
  bool handle(const epoll_event& ev);
  void read_into(FDOperator& op, bool drain);
  void write_from(FDOperator& op);
  void queue_hup(FDOperator& op);
  std::error_code control_in_loop(const std::shared_ptr<FDOperator>& op, PollEvent event);
  std::error_code add_in_loop(const std::shared_ptr<FDOperator>& op);
  std::error_code modify_in_loop(FDOperator& op, bool force);
  void detach_in_loop(FDOperator& op);
  bool run_tasks();
  std::size_t run_timers();
  void wake();
  void drain_wake();
  int wait_timeout_ms();
  uint32_t interest(const FDOperator& op) const;

  PollOptions options_;
  std::shared_ptr<const Clock> clock_;
  int epfd_;
  int wake_fd_;
  std::vector<Slot> slots_;                  // indexed by fd
  std::vector<epoll_event> events_;
  std::vector<std::pair<FDOperator*, uint32_t>> hups_;  // this round's hang-ups (+generation)
  std::vector<std::shared_ptr<FDOperator>> released_;  // dropped at the end of the iteration
  std::size_t registered_ = 0;
  TimerWheel timers_;

  std::mutex tasks_mu_;
  std::vector<Task> tasks_;                  // guarded by tasks_mu_
  std::vector<Task> running_;                // the loop's swap buffer
  std::atomic<bool> wake_pending_{false};
  std::atomic<int> queuing_{0};  // threads inside queue_in_loop(): the destructor waits for them
  std::atomic<bool> quit_{false};
  std::atomic<std::thread::id> loop_thread_{};
  std::thread thread_;
  std::atomic<uint64_t> iterations_{0};
  std::atomic<uint64_t> idle_iterations_{0};
  std::atomic<uint64_t> exceptions_{0};
};

}  // namespace faultloop
