// Public: Executor — where connection handlers run (DESIGN "reactor/", "Executors").
//
//   InlineExecutor  the handler runs at once on the calling (poll) thread. Nothing may block
//                   there: Connection::next(n) with fewer than n bytes returns ErrWouldBlock.
//   PoolExecutor    the handler runs on a worker thread `fl-worker-N` and may block in
//                   next(n). The pool grows when every worker is blocked and a task waits, up
//                   to max_workers; beyond that tasks queue and queued_at_max() says so.
//
// Dispatch costs one virtual call (execute()). That is cheap next to what it selects: the pool
// hands the task to another thread (a mutex, maybe a futex wake-up), and inline's execute() runs
// the task directly. A template over the executor type would spread into Connection and
// EventLoop for no measurable gain.
//
// Blocking hook: a worker that is about to wait (Connection::next(n)) opens an
// Executor::BlockingScope. It reaches the executor of the calling thread through
// Executor::current() (thread-local), so the Connection needs no knowledge of the executor
// type. The pool counts blocked workers and, when tasks are queued and every worker is blocked,
// starts one (up to the maximum): handlers blocked in next(n) cannot starve the others.
//
// Handlers may throw: the Connection layer catches first and closes the connection; the
// executor is the last line — it catches, counts (exceptions()), logs at kError, and the thread
// (worker or poller) survives.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "reactor/detail/small_function.h"

namespace faultloop {

/// Runs tasks (connection handlers) inline or on worker threads (see the file comment).
class Executor {
 public:
  /// A task: move-only, so it can own a connection's move-only state; a small lambda
  /// (up to 48 bytes, e.g. a shared_ptr<Connection> and a few words) is stored without a heap
  /// allocation, unlike std::function, which also demands a copyable callable.
  using Task = detail::SmallFunction<void()>;

  /// Executors are not copied or moved (worker threads hold `this`).
  Executor() = default;
  /// Not copyable.
  Executor(const Executor&) = delete;
  /// Not copyable.
  Executor& operator=(const Executor&) = delete;
  /// Virtual: executors are used through Executor&.
  virtual ~Executor() = default;

  /// Runs `task` now (inline) or hands it to a worker (pool). Thread-safe. A task that throws
  /// is caught, counted and logged; the running thread survives. An empty task is ignored.
  ///
  /// Returns false when the task was refused and destroyed unrun: an empty task, or a pool
  /// after shutdown() (rejected() counts it). Callers that hand over a lock with the task
  /// (Connection) must then do the work themselves.
  virtual bool execute(Task task) = 0;

  /// True when tasks run on the calling thread and must never block (Connection::next(n)
  /// returns ErrWouldBlock instead of waiting).
  virtual bool is_inline() const = 0;

  /// The executor whose task is running on the calling thread: the pool on its worker
  /// threads, an InlineExecutor while its execute() runs a task; nullptr on other threads.
  static Executor* current() noexcept;

  /// Tasks run so far (a task that threw counts too). Relaxed; any thread.
  uint64_t tasks_run() const { return tasks_run_.load(std::memory_order_relaxed); }
  /// Tasks that threw. Relaxed; any thread.
  uint64_t exceptions() const { return exceptions_.load(std::memory_order_relaxed); }

  /// RAII: the calling worker is blocked (waiting for input, a timeout or a close) while the
  /// scope lives. Opened on Executor::current(); a no-op on threads without one (a user
  /// thread calling next(n) blocks without telling anyone). Scopes nest: only the outermost
  /// counts. Opening one on an InlineExecutor is a programming error (the poll thread would
  /// block): it aborts in the faults/asan/tsan and debug builds and logs kError in release.
  class BlockingScope {
   public:
    /// Enters the blocked state on Executor::current() (if any).
    BlockingScope() noexcept;
    /// Leaves the blocked state.
    ~BlockingScope();
    /// Not copyable.
    BlockingScope(const BlockingScope&) = delete;
    /// Not copyable.
    BlockingScope& operator=(const BlockingScope&) = delete;

   private:
    Executor* executor_ = nullptr;  // the outermost scope's executor: leave_blocking() on it
    bool counted_ = false;          // opened on an executor's thread (counts in the depth)
  };

 protected:
  /// The calling worker starts waiting (outermost BlockingScope). Must not throw.
  virtual void enter_blocking() noexcept = 0;
  /// The calling worker stops waiting.
  virtual void leave_blocking() noexcept = 0;

  /// Runs `task` with current() == this on the calling thread (restored afterwards), counting
  /// it and catching, counting and logging (kError) what it throws. `where` names the runner
  /// in the log line.
  void run_task(Task& task, const char* where) noexcept;

  /// Makes `executor` the calling thread's current() (workers, for their whole life).
  static void set_current(Executor* executor) noexcept;

 private:
  std::atomic<uint64_t> tasks_run_{0};
  std::atomic<uint64_t> exceptions_{0};
};

/// Runs each task at once on the calling thread (the poll thread): netpoll without a pool.
class InlineExecutor final : public Executor {
 public:
  /// Runs `task` before returning.
  bool execute(Task task) override;
  /// Always true.
  bool is_inline() const override { return true; }

 protected:
  /// Programming error (see BlockingScope).
  void enter_blocking() noexcept override;
  /// Nothing (enter_blocking() already reported the error).
  void leave_blocking() noexcept override {}
};

/// Options of a PoolExecutor.
struct PoolOptions {
  /// Workers started by the constructor and kept while idle (0 allowed: started on demand).
  std::size_t min_workers = 1;
  /// Upper bound on live workers (>= 1, >= min_workers). Beyond it tasks queue.
  std::size_t max_workers = 64;
  /// A worker above min_workers exits after this long without a task.
  std::chrono::milliseconds idle_timeout{10'000};
  /// Thread names are `<name_prefix><N>` (N counts from 0 per pool), cut to 15 characters.
  std::string name_prefix = "fl-worker-";
};

/// A growing pool of worker threads behind one task queue (see the file comment).
///
/// Growth (DESIGN "Executors"): after a task is queued, or a worker enters a BlockingScope,
/// if queued tasks outnumber the idle workers and every running worker is blocked in a
/// BlockingScope, and fewer than max_workers live, one worker starts. Workers busy computing
/// do not make the pool grow: they take the queued tasks when done. idle_timeout brings the
/// pool back down to min_workers. When growth is wanted at the maximum, the task waits and
/// queued_at_max() counts it.
///
/// The queue is a std::deque under one mutex with one condition variable: handler dispatch is
/// bounded by the handlers' own work and by the wake-up, not by the queue, and one lock keeps
/// the growth decision (queue length, busy and live counts) consistent without a lock-free
/// MPMC's subtleties. Counters are relaxed atomics, written under the mutex, readable anywhere.
///
/// Shutdown: shutdown(deadline) stops accepting (later execute() calls drop the task and
/// count rejected()), lets the workers run everything already queued, and waits for them up
/// to the deadline. It returns true when all of them had finished and were joined. When the
/// deadline passes first (a task still blocked or running) it returns false and the workers
/// carry on: they run the rest of the queue and exit. The destructor shuts down without a
/// deadline and joins every thread, so the owner must first unblock what is blocked (closing
/// the connections wakes blocked readers with ErrConnClosed). No thread is ever detached.
class PoolExecutor final : public Executor {
 public:
  /// Starts min_workers workers. Throws std::invalid_argument on bad options
  /// (max_workers == 0, min_workers > max_workers, negative idle_timeout), and
  /// std::system_error when a thread cannot be started.
  explicit PoolExecutor(PoolOptions options = {});
  /// shutdown() without a deadline, then joins every worker. Calling it on one of this pool's
  /// workers is a programming error (it aborts).
  ~PoolExecutor() override;

  /// Queues `task`, waking an idle worker or starting one (growth rule above). After
  /// shutdown() the task is destroyed unrun and counted in rejected().
  bool execute(Task task) override;
  /// Always false.
  bool is_inline() const override { return false; }

  /// Stops accepting, runs what is queued, joins the workers; true when all finished by
  /// `deadline` (see the class comment). Called on one of this pool's workers it cannot wait
  /// for itself: it stops accepting and returns false. Idempotent; may be called again with a
  /// later deadline.
  bool shutdown(std::chrono::steady_clock::time_point deadline);

  /// Live workers.
  std::size_t workers() const { return workers_.load(std::memory_order_relaxed); }
  /// Workers running a task (including those blocked in it).
  std::size_t busy() const { return busy_.load(std::memory_order_relaxed); }
  /// Workers inside a BlockingScope.
  std::size_t blocked() const { return blocked_.load(std::memory_order_relaxed); }
  /// Tasks waiting in the queue.
  std::size_t queued() const { return queued_.load(std::memory_order_relaxed); }
  /// The most workers alive at once.
  std::size_t peak_workers() const { return peak_workers_.load(std::memory_order_relaxed); }
  /// Tasks that had to wait because no worker was free and the pool was at max_workers.
  uint64_t queued_at_max() const { return queued_at_max_.load(std::memory_order_relaxed); }
  /// Tasks dropped because execute() came after shutdown().
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }
  /// The options the pool was built with.
  const PoolOptions& options() const { return options_; }

 protected:
  /// Counts the calling worker as blocked; may start a worker (growth rule).
  void enter_blocking() noexcept override;
  /// Counts it as running again.
  void leave_blocking() noexcept override;

 private:
  using WorkerList = std::list<std::thread>;

  void worker_main(WorkerList::iterator self, std::size_t index);
  bool needs_worker_locked() const noexcept;  // the growth condition; mu_ held
  void maybe_grow_locked() noexcept;    // growth rule; mu_ held
  bool start_worker_locked() noexcept;  // mu_ held; false when the thread could not start
  void publish_locked() noexcept;       // copies the guarded counts to the atomics

  const PoolOptions options_;

  std::mutex mu_;
  std::condition_variable work_cv_;  // workers: a task, or stopping_
  std::condition_variable exit_cv_;  // shutdown: a worker exited
  std::deque<Task> queue_;           // guarded by mu_
  WorkerList threads_;               // guarded by mu_: live workers' handles
  std::vector<std::thread> exited_;  // guarded by mu_: the last exited worker (see worker_main)
  std::size_t live_ = 0;             // guarded by mu_
  std::size_t running_ = 0;          // guarded by mu_: workers inside a task
  std::size_t blocked_count_ = 0;    // guarded by mu_
  std::size_t next_index_ = 0;       // guarded by mu_: N of the next `fl-worker-N`
  bool stopping_ = false;            // guarded by mu_

  std::atomic<std::size_t> workers_{0};
  std::atomic<std::size_t> busy_{0};
  std::atomic<std::size_t> blocked_{0};
  std::atomic<std::size_t> queued_{0};
  std::atomic<std::size_t> peak_workers_{0};
  std::atomic<uint64_t> queued_at_max_{0};
  std::atomic<uint64_t> rejected_{0};
};

}  // namespace faultloop
