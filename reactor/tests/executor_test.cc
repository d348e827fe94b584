// InlineExecutor and PoolExecutor (label unit: nothing is injected, no sockets). Waits poll a
// condition with a generous bound (kBound); nothing depends on a timing except the idle-exit and
// deadline tests, which only check generous upper bounds.
#include "reactor/executor.h"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness/testing/fault_test.h"
#include "reactor/log.h"

namespace faultloop {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kBound = 10s;  // generous: sanitizers on 2 cores

/// Polls `done` every millisecond until it holds or `bound` passes; returns its last value.
template <typename F>
bool eventually(F done, std::chrono::milliseconds bound = kBound) {
  const auto deadline = Clock::now() + bound;
  while (!done()) {
    if (Clock::now() >= deadline) {
      return done();
    }
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

std::string current_thread_name() {
  char name[16] = {};
  ::pthread_getname_np(::pthread_self(), name, sizeof name);
  return name;
}

/// Collects log lines while alive; restores the default sink.
class LogCapture {
 public:
  LogCapture() {
    set_log_sink([this](LogLevel level, std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(std::string(log_level_name(level)) + " " + std::string(line));
    });
  }
  ~LogCapture() { set_log_sink({}); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  /// True when a captured line contains both `a` and `b`.
  bool has(std::string_view a, std::string_view b) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& l : lines_) {
      if (l.find(a) != std::string::npos && l.find(b) != std::string::npos) {
        return true;
      }
    }
    return false;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

PoolOptions pool_options(std::size_t min_workers, std::size_t max_workers) {
  PoolOptions o;
  o.min_workers = min_workers;
  o.max_workers = max_workers;
  return o;
}

// --- InlineExecutor ----------------------------------------------------------------------------

class ExecutorInlineTest : public testing::FaultTest {};

TEST_F(ExecutorInlineTest, ExecuteRunsOnCallingThreadBeforeReturning) {
  InlineExecutor ex;
  EXPECT_TRUE(ex.is_inline());
  std::thread::id ran_on;
  bool ran = false;
  ex.execute([&] {
    ran_on = std::this_thread::get_id();
    ran = true;
  });
  EXPECT_TRUE(ran);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_EQ(ex.tasks_run(), 1u);
}

TEST_F(ExecutorInlineTest, CurrentIsInlineInsideTaskAndNullAfter) {
  InlineExecutor ex;
  Executor* inside = nullptr;
  EXPECT_EQ(Executor::current(), nullptr);
  ex.execute([&] { inside = Executor::current(); });
  EXPECT_EQ(inside, &ex);
  EXPECT_EQ(Executor::current(), nullptr);
}

TEST_F(ExecutorInlineTest, ThrowingTaskIsCountedLoggedAndCallerSurvives) {
  LogCapture log;
  InlineExecutor ex;
  ex.execute([] { throw std::runtime_error("inline boom"); });
  ex.execute([] { throw 42; });
  bool ran = false;
  ex.execute([&] { ran = true; });
  EXPECT_TRUE(ran);
  EXPECT_EQ(ex.exceptions(), 2u);
  EXPECT_EQ(ex.tasks_run(), 3u);
  EXPECT_EQ(Executor::current(), nullptr);  // restored after a throw too
  EXPECT_TRUE(log.has("ERROR", "inline boom"));
}

TEST_F(ExecutorInlineTest, EmptyTaskIsIgnored) {
  InlineExecutor ex;
  ex.execute(Executor::Task{});
  EXPECT_EQ(ex.tasks_run(), 0u);
}

using ExecutorInlineDeathTest = ExecutorInlineTest;

TEST_F(ExecutorInlineDeathTest, BlockingScopeOnInlineExecutorAborts) {
#if !FAULTLOOP_FAULTS && defined(NDEBUG)
  GTEST_SKIP() << "release build: the misuse is logged, not asserted (STYLE 36)";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        InlineExecutor ex;
        ex.execute([] { Executor::BlockingScope scope; });
      },
      "must never block");
}

// --- PoolExecutor: basics ----------------------------------------------------------------------

class ExecutorPoolTest : public testing::FaultTest {};

TEST_F(ExecutorPoolTest, ExecuteRunsOnWorkerThreadNamedFlWorker) {
  PoolExecutor pool;
  EXPECT_FALSE(pool.is_inline());
  std::string name;
  std::thread::id ran_on;
  std::latch done(1);
  pool.execute([&] {
    name = current_thread_name();
    ran_on = std::this_thread::get_id();
    done.count_down();
  });
  done.wait();
  EXPECT_EQ(name.rfind("fl-worker-", 0), 0u) << name;
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST_F(ExecutorPoolTest, CurrentIsPoolInsideTaskAndNullOutside) {
  PoolExecutor pool;
  Executor* inside = nullptr;
  std::latch done(1);
  pool.execute([&] {
    inside = Executor::current();
    done.count_down();
  });
  done.wait();
  EXPECT_EQ(inside, &pool);
  EXPECT_EQ(Executor::current(), nullptr);
}

TEST_F(ExecutorPoolTest, LongNamePrefixIsCutToFifteenCharacters) {
  PoolOptions o;
  o.name_prefix = "a-very-long-thread-prefix-";
  PoolExecutor pool(o);
  std::string name;
  std::latch done(1);
  pool.execute([&] {
    name = current_thread_name();
    done.count_down();
  });
  done.wait();
  EXPECT_EQ(name, "a-very-long-thr");
}

TEST_F(ExecutorPoolTest, MinWorkersZeroStartsWorkersOnDemand) {
  PoolExecutor pool(pool_options(0, 2));
  EXPECT_EQ(pool.workers(), 0u);
  std::latch done(1);
  pool.execute([&] { done.count_down(); });
  done.wait();
  EXPECT_EQ(pool.peak_workers(), 1u);
}

TEST_F(ExecutorPoolTest, BadOptionsThrowInvalidArgument) {
  EXPECT_THROW(PoolExecutor(pool_options(0, 0)), std::invalid_argument);
  EXPECT_THROW(PoolExecutor(pool_options(3, 2)), std::invalid_argument);
  PoolOptions o;
  o.idle_timeout = std::chrono::milliseconds(-1);
  EXPECT_THROW(PoolExecutor{o}, std::invalid_argument);
}

TEST_F(ExecutorPoolTest, ThrowingTaskIsCountedAndNextTaskRunsOnSameWorker) {
  LogCapture log;
  PoolExecutor pool(pool_options(1, 1));
  std::thread::id thrower;
  std::thread::id next;
  std::latch done(1);
  pool.execute([&] {
    thrower = std::this_thread::get_id();
    throw std::runtime_error("pool boom");
  });
  pool.execute([&] {
    next = std::this_thread::get_id();
    done.count_down();
  });
  done.wait();
  EXPECT_EQ(next, thrower);  // the worker survived
  EXPECT_TRUE(eventually([&] { return pool.tasks_run() == 2; }));
  EXPECT_EQ(pool.exceptions(), 1u);
  EXPECT_TRUE(log.has("ERROR", "pool boom"));
  EXPECT_TRUE(log.has("fl-worker-0", "pool boom"));
}

TEST_F(ExecutorPoolTest, BlockingScopeOutsideWorkerIsNoOp) {
  PoolExecutor pool;
  {
    Executor::BlockingScope scope;  // the test thread has no executor
    EXPECT_EQ(pool.blocked(), 0u);
  }
  EXPECT_EQ(pool.blocked(), 0u);
}

TEST_F(ExecutorPoolTest, NestedBlockingScopesCountOnce) {
  PoolExecutor pool(pool_options(1, 1));
  std::size_t inner = 0;
  std::size_t after = 0;
  std::latch done(1);
  pool.execute([&] {
    {
      Executor::BlockingScope outer;
      {
        Executor::BlockingScope nested;
        inner = pool.blocked();
      }
      after = pool.blocked();
    }
    done.count_down();
  });
  done.wait();
  EXPECT_EQ(inner, 1u);
  EXPECT_EQ(after, 1u);  // still inside the outer scope
  EXPECT_TRUE(eventually([&] { return pool.blocked() == 0; }));
}

// --- PoolExecutor: load ------------------------------------------------------------------------

class ExecutorPoolLoadTest : public testing::FaultTest,
                             public ::testing::WithParamInterface<std::size_t> {};

TEST_P(ExecutorPoolLoadTest, ManyTinyTasksFromTwoThreadsRunExactlyOnce) {
  constexpr std::size_t kTasks = 100'000;
  const std::size_t max_workers = GetParam();
  PoolExecutor pool(pool_options(1, max_workers));
  auto hits = std::make_unique<std::atomic<uint32_t>[]>(kTasks);
  std::atomic<std::size_t> total{0};
  auto submit = [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      pool.execute([&hits, &total, i] {
        hits[i].fetch_add(1, std::memory_order_relaxed);
        total.fetch_add(1, std::memory_order_relaxed);
      });
    }
  };
  std::thread producer(submit, 0, kTasks / 2);
  submit(kTasks / 2, kTasks);
  producer.join();
  ASSERT_TRUE(pool.shutdown(Clock::now() + kBound));
  EXPECT_EQ(total.load(), kTasks);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < kTasks; ++i) {
    wrong += hits[i].load() != 1 ? 1 : 0;
  }
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(pool.tasks_run(), kTasks);
  EXPECT_LE(pool.peak_workers(), max_workers);
  EXPECT_GE(pool.peak_workers(), 1u);
  EXPECT_EQ(pool.workers(), 0u);
  EXPECT_EQ(pool.queued(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Workers, ExecutorPoolLoadTest, ::testing::Values(2, 4, 8),
                         [](const ::testing::TestParamInfo<std::size_t>& param_info) {
                           return "Max" + std::to_string(param_info.param);
                         });

// --- PoolExecutor: growth ----------------------------------------------------------------------

class ExecutorPoolGrowthTest : public testing::FaultTest {};

TEST_F(ExecutorPoolGrowthTest, BlockedWorkersGrowPoolToMaxThenTasksQueue) {
  PoolExecutor pool(pool_options(1, 4));
  std::vector<std::unique_ptr<std::latch>> gates;
  for (int i = 0; i < 4; ++i) {
    gates.push_back(std::make_unique<std::latch>(1));
  }
  for (int i = 0; i < 4; ++i) {
    pool.execute([gate = gates[i].get()] {
      Executor::BlockingScope scope;  // as Connection::next(n) does before waiting
      gate->wait();
    });
  }
  ASSERT_TRUE(eventually([&] { return pool.blocked() == 4; }));
  EXPECT_EQ(pool.workers(), 4u);
  EXPECT_EQ(pool.busy(), 4u);
  EXPECT_EQ(pool.queued_at_max(), 0u);

  std::atomic<bool> fifth_ran{false};
  std::latch fifth_done(1);
  pool.execute([&] {
    fifth_ran = true;
    fifth_done.count_down();
  });
  EXPECT_EQ(pool.queued(), 1u);
  EXPECT_EQ(pool.queued_at_max(), 1u);
  EXPECT_EQ(pool.workers(), 4u);
  EXPECT_FALSE(fifth_ran.load());  // every worker is blocked

  gates[0]->count_down();  // one handler gets its bytes
  fifth_done.wait();
  EXPECT_TRUE(fifth_ran.load());
  EXPECT_EQ(pool.peak_workers(), 4u);
  for (int i = 1; i < 4; ++i) {
    gates[i]->count_down();
  }
  EXPECT_TRUE(pool.shutdown(Clock::now() + kBound));
  EXPECT_EQ(pool.tasks_run(), 5u);
  EXPECT_EQ(pool.blocked(), 0u);
}

TEST_F(ExecutorPoolGrowthTest, BusyWorkersDoNotGrowThePoolTasksWaitForThem) {
  // DESIGN: the pool grows when all workers are BLOCKED; a busy worker takes the next task.
  PoolExecutor pool(pool_options(1, 4));
  std::atomic<bool> go{false};
  pool.execute([&go] {
    while (!go.load(std::memory_order_acquire)) {  // busy, not blocked
      std::this_thread::yield();
    }
  });
  ASSERT_TRUE(eventually([&] { return pool.busy() == 1; }));
  std::latch second_done(1);
  pool.execute([&] { second_done.count_down(); });
  EXPECT_EQ(pool.workers(), 1u);  // no growth for a busy worker
  EXPECT_EQ(pool.queued(), 1u);
  EXPECT_EQ(pool.queued_at_max(), 0u);
  go.store(true, std::memory_order_release);
  second_done.wait();  // the busy worker took it when done
  EXPECT_TRUE(pool.shutdown(Clock::now() + kBound));
  EXPECT_EQ(pool.tasks_run(), 2u);
  EXPECT_EQ(pool.peak_workers(), 1u);
}

TEST_F(ExecutorPoolGrowthTest, OneBusyWorkerAmongBlockedOnesStopsGrowth) {
  PoolExecutor pool(pool_options(2, 4));
  std::latch blocked_gate(1);
  std::atomic<bool> go{false};
  pool.execute([&] {
    Executor::BlockingScope blocked;
    blocked_gate.wait();
  });
  pool.execute([&go] {
    while (!go.load(std::memory_order_acquire)) {
      std::this_thread::yield();
    }
  });
  ASSERT_TRUE(eventually([&] { return pool.busy() == 2 && pool.blocked() == 1; }));
  std::latch third_done(1);
  pool.execute([&] { third_done.count_down(); });
  EXPECT_EQ(pool.workers(), 2u);  // not every worker is blocked: the task waits
  go.store(true, std::memory_order_release);
  third_done.wait();
  blocked_gate.count_down();
  EXPECT_TRUE(pool.shutdown(Clock::now() + kBound));
  EXPECT_EQ(pool.tasks_run(), 3u);
}

TEST_F(ExecutorPoolGrowthTest, IdleWorkersAboveMinExitAfterIdleTimeout) {
  PoolOptions o = pool_options(1, 4);
  o.idle_timeout = 50ms;
  PoolExecutor pool(o);
  std::latch gate(1);
  for (int i = 0; i < 4; ++i) {
    pool.execute([&gate] {
      Executor::BlockingScope scope;
      gate.wait();
    });
  }
  ASSERT_TRUE(eventually([&] { return pool.blocked() == 4; }));
  EXPECT_EQ(pool.workers(), 4u);
  gate.count_down();
  EXPECT_TRUE(eventually([&] { return pool.workers() == 1; }));  // back to min_workers
  EXPECT_EQ(pool.peak_workers(), 4u);

  // The remaining worker still serves.
  std::latch done(1);
  pool.execute([&] { done.count_down(); });
  done.wait();
  EXPECT_TRUE(pool.shutdown(Clock::now() + kBound));
}

// --- PoolExecutor: shutdown --------------------------------------------------------------------

class ExecutorPoolShutdownTest : public testing::FaultTest {};

TEST_F(ExecutorPoolShutdownTest, QueuedTasksRunAndDeadlineIsMet) {
  LogCapture log;
  PoolExecutor pool(pool_options(1, 1));
  std::latch gate(1);
  std::atomic<int> ran{0};
  pool.execute([&] {
    Executor::BlockingScope scope;
    gate.wait();
    ran.fetch_add(1);
  });
  for (int i = 0; i < 10; ++i) {
    pool.execute([&] { ran.fetch_add(1); });
  }
  EXPECT_EQ(pool.queued_at_max(), 10u);
  std::thread opener([&] {
    std::this_thread::sleep_for(20ms);  // usually after shutdown() began; either order is fine
    gate.count_down();
  });
  EXPECT_TRUE(pool.shutdown(Clock::now() + kBound));
  opener.join();
  EXPECT_EQ(ran.load(), 11);
  EXPECT_EQ(pool.workers(), 0u);

  bool late_ran = false;
  pool.execute([&] { late_ran = true; });  // refused after shutdown
  EXPECT_FALSE(late_ran);
  EXPECT_EQ(pool.rejected(), 1u);
  EXPECT_TRUE(log.has("WARN", "after shutdown"));
  EXPECT_TRUE(pool.shutdown(Clock::now()));  // idempotent
}

TEST_F(ExecutorPoolShutdownTest, TaskBlockedPastDeadlineReportsMissedDeadline) {
  PoolExecutor pool(pool_options(1, 2));
  std::latch gate(1);
  std::latch started(1);
  pool.execute([&] {
    Executor::BlockingScope scope;
    started.count_down();
    gate.wait();  // "forever": until the test lets go
  });
  started.wait();
  const auto begin = Clock::now();
  EXPECT_FALSE(pool.shutdown(begin + 100ms));
  const auto took = Clock::now() - begin;
  EXPECT_GE(took, 100ms);
  EXPECT_LT(took, 100ms + 2s);  // generous slack for sanitizers
  EXPECT_EQ(pool.workers(), 1u);  // still blocked, not detached

  gate.count_down();
  EXPECT_TRUE(pool.shutdown(Clock::now() + kBound));  // a later deadline: joined
  EXPECT_EQ(pool.workers(), 0u);
  EXPECT_EQ(pool.tasks_run(), 1u);
}

TEST_F(ExecutorPoolShutdownTest, DestructorJoinsWorkerThatFinishesAfterMissedDeadline) {
  std::atomic<bool> finished{false};
  std::latch gate(1);
  std::thread opener;
  {
    PoolExecutor pool(pool_options(1, 1));
    std::latch started(1);
    pool.execute([&] {
      started.count_down();
      gate.wait();
      finished = true;
    });
    started.wait();
    EXPECT_FALSE(pool.shutdown(Clock::now() + 10ms));
    opener = std::thread([&] { gate.count_down(); });
  }  // ~PoolExecutor waits for the task and joins its worker
  EXPECT_TRUE(finished.load());
  opener.join();
}

TEST_F(ExecutorPoolShutdownTest, ShutdownFromOwnWorkerReturnsFalseWithoutWaiting) {
  PoolExecutor pool(pool_options(1, 1));
  std::atomic<int> result{-1};
  std::latch done(1);
  pool.execute([&] {
    result = pool.shutdown(Clock::now() + kBound) ? 1 : 0;
    done.count_down();
  });
  done.wait();
  EXPECT_EQ(result.load(), 0);
  EXPECT_TRUE(pool.shutdown(Clock::now() + kBound));
}

}  // namespace
}  // namespace faultloop
