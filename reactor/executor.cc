#include "reactor/executor.h"

#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "reactor/log.h"
#include "reactor/sys/sys.h"

namespace faultloop {

namespace {

// The executor whose task runs on this thread (workers: for their whole life).
thread_local Executor* tls_current = nullptr;
// Depth of BlockingScopes open on this thread: only the outermost enters the blocked state.
thread_local int tls_blocking_depth = 0;

// pthread names hold 15 characters.
constexpr std::size_t kThreadNameMax = 15;

}  // namespace

// --- Executor ----------------------------------------------------------------------------------

Executor* Executor::current() noexcept { return tls_current; }

void Executor::set_current(Executor* executor) noexcept { tls_current = executor; }

void Executor::run_task(Task& task, const char* where) noexcept {
  Executor* const previous = tls_current;
  tls_current = this;
  try {
    task();
  } catch (const std::exception& e) {
    exceptions_.fetch_add(1, std::memory_order_relaxed);
    FAULTLOOP_LOG(kError, "{}: a task threw: {}", where, e.what());
  } catch (...) {
    exceptions_.fetch_add(1, std::memory_order_relaxed);
    FAULTLOOP_LOG(kError, "{}: a task threw a non-std::exception", where);
  }
  tls_current = previous;
  tasks_run_.fetch_add(1, std::memory_order_relaxed);
}

Executor::BlockingScope::BlockingScope() noexcept {
  Executor* const executor = tls_current;
  if (executor == nullptr) {
    return;  // not an executor's thread: nobody to tell
  }
  counted_ = true;
  if (tls_blocking_depth++ == 0) {
    executor_ = executor;
    executor->enter_blocking();
  }
}

Executor::BlockingScope::~BlockingScope() {
  if (!counted_) {
    return;  // the constructor found no executor
  }
  --tls_blocking_depth;
  if (executor_ != nullptr) {
    executor_->leave_blocking();
  }
}

// --- InlineExecutor ----------------------------------------------------------------------------

bool InlineExecutor::execute(Task task) {
  if (!task) {
    return false;
  }
  run_task(task, "inline executor");
  return true;
}

void InlineExecutor::enter_blocking() noexcept {
  FAULTLOOP_LOG(kError,
                "BlockingScope on the inline executor: the poll thread must never block "
                "(next(n) returns ErrWouldBlock there)");
#if FAULTLOOP_FAULTS || !defined(NDEBUG)
  std::abort();  // STYLE 36: assertions stay on in the faults/asan/tsan and debug builds
#endif
}

// --- PoolExecutor ------------------------------------------------------------------------------

namespace {

PoolOptions checked(PoolOptions options) {
  if (options.max_workers == 0) {
    throw std::invalid_argument("PoolExecutor: max_workers must be at least 1");
  }
  if (options.min_workers > options.max_workers) {
    throw std::invalid_argument("PoolExecutor: min_workers exceeds max_workers");
  }
  if (options.idle_timeout.count() < 0) {
    throw std::invalid_argument("PoolExecutor: idle_timeout is negative");
  }
  return options;
}

}  // namespace

PoolExecutor::PoolExecutor(PoolOptions options) : options_(checked(std::move(options))) {
  bool started = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::size_t i = 0; i < options_.min_workers && started; ++i) {
      started = start_worker_locked();
    }
    publish_locked();
  }
  if (!started) {
    // The destructor will not run: stop and join what did start, then report.
    shutdown(std::chrono::steady_clock::time_point::max());
    throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                            "PoolExecutor: cannot start the minimum number of workers");
  }
}

PoolExecutor::~PoolExecutor() {
  if (current() == this) {
    FAULTLOOP_LOG(kError, "PoolExecutor destroyed by one of its own workers");
    std::abort();
  }
  shutdown(std::chrono::steady_clock::time_point::max());
}

bool PoolExecutor::execute(Task task) {
  if (!task) {
    return false;
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) {
    lock.unlock();
    rejected_.fetch_add(1, std::memory_order_relaxed);
    FAULTLOOP_LOG(kWarn, "PoolExecutor: a task submitted after shutdown was dropped");
    return false;  // `task` is destroyed here, outside the lock
  }
  queue_.push_back(std::move(task));
  if (needs_worker_locked()) {
    // Every worker is blocked: grow, or say that the task waits at the maximum.
    if (live_ < options_.max_workers) {
      maybe_grow_locked();
    } else {
      queued_at_max_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  publish_locked();
  lock.unlock();
  // Free workers that are not waiting find the task on their own; wake one that is (after the
  // unlock, so it does not wake into a held mutex). Without waiters this costs no system call.
  work_cv_.notify_one();
  return true;
}

bool PoolExecutor::shutdown(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  stopping_ = true;
  maybe_grow_locked();  // queued tasks with no free worker (a start failed earlier) get one
  publish_locked();
  work_cv_.notify_all();
  if (current() == this) {
    return false;  // a worker cannot wait for itself
  }
  const auto all_exited = [this] { return live_ == 0; };
  bool finished = true;
  if (deadline == std::chrono::steady_clock::time_point::max()) {
    exit_cv_.wait(lock, all_exited);
  } else {
    finished = exit_cv_.wait_until(lock, deadline, all_exited);
  }
  if (!finished) {
    return false;
  }
  // Every worker has exited; each joined its predecessors, so joining these joins them all.
  std::vector<std::thread> exited = std::move(exited_);
  exited_.clear();
  lock.unlock();
  for (std::thread& t : exited) {
    t.join();
  }
  return true;
}

void PoolExecutor::enter_blocking() noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  ++blocked_count_;
  maybe_grow_locked();
  publish_locked();
}

void PoolExecutor::leave_blocking() noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  --blocked_count_;
  publish_locked();
}

bool PoolExecutor::needs_worker_locked() const noexcept {
  // DESIGN "Executors": the pool grows when all workers are blocked (in next(n)). A worker
  // that is busy computing will take the next task when it is done; a blocked one may wait for
  // input that only another handler's progress brings.
  return queue_.size() > live_ - running_ && blocked_count_ >= running_;
}

void PoolExecutor::maybe_grow_locked() noexcept {
  // Queued tasks that no worker will reach while every worker is blocked get a new worker, up
  // to the maximum; this also retries when a thread could not be started before.
  while (needs_worker_locked() && live_ < options_.max_workers) {
    if (!start_worker_locked()) {
      break;
    }
  }
}

bool PoolExecutor::start_worker_locked() noexcept {
  try {
    auto self = threads_.emplace(threads_.end());
    try {
      // The worker touches its list entry only under mu_, which we hold until it is stored.
      *self = std::thread(&PoolExecutor::worker_main, this, self, next_index_);
    } catch (...) {
      threads_.erase(self);
      throw;
    }
  } catch (const std::exception& e) {
    FAULTLOOP_LOG(kError, "PoolExecutor: cannot start a worker ({} live): {}", live_, e.what());
    return false;
  }
  ++next_index_;
  ++live_;
  if (live_ > peak_workers_.load(std::memory_order_relaxed)) {
    peak_workers_.store(live_, std::memory_order_relaxed);
  }
  return true;
}

void PoolExecutor::publish_locked() noexcept {
  workers_.store(live_, std::memory_order_relaxed);
  busy_.store(running_, std::memory_order_relaxed);
  blocked_.store(blocked_count_, std::memory_order_relaxed);
  queued_.store(queue_.size(), std::memory_order_relaxed);
}

void PoolExecutor::worker_main(WorkerList::iterator self, std::size_t index) {
  std::string name = options_.name_prefix + std::to_string(index);
  if (name.size() > kThreadNameMax) {
    name.resize(kThreadNameMax);
  }
  sys::set_thread_name(name.c_str());
  sys::set_thread_kind("worker");
  set_current(this);

  const auto has_work = [this] { return !queue_.empty() || stopping_; };
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (!queue_.empty()) {
      Task task = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
      publish_locked();
      lock.unlock();
      run_task(task, name.c_str());
      task.reset();  // the task's captures die outside the lock too
      lock.lock();
      --running_;
      publish_locked();
      continue;
    }
    if (stopping_) {
      break;  // the queue is drained
    }
    if (live_ > options_.min_workers) {
      const auto deadline = std::chrono::steady_clock::now() + options_.idle_timeout;
      // Timed out with nothing to do and still above the minimum (another idle worker may have
      // exited meanwhile): leave. The queue is empty under the lock, so no task is stranded.
      if (!work_cv_.wait_until(lock, deadline, has_work) && live_ > options_.min_workers) {
        break;
      }
    } else {
      work_cv_.wait(lock, has_work);
    }
  }

  // Exit: hand our handle to the pool and join the workers that exited before us, so at most
  // the last one is left for shutdown() to join (no thread is ever detached).
  --live_;
  std::vector<std::thread> predecessors = std::move(exited_);
  exited_.clear();
  exited_.push_back(std::move(*self));
  threads_.erase(self);
  publish_locked();
  exit_cv_.notify_all();
  lock.unlock();
  for (std::thread& t : predecessors) {
    t.join();
  }
  set_current(nullptr);
}

}  // namespace faultloop
