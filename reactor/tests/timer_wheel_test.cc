// Unit tests of TimerWheel and the clocks (label unit): ManualClock drives time, nothing else.
#include "reactor/timer_wheel.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "reactor/clock.h"

// ---- allocation counting ----------------------------------------------------------------------
// The plain (non-aligned) forms of operator new/delete are replaced for this binary so that a
// test can check that steady-state add/cancel/reset does not allocate. They only count and
// forward to malloc/free (sanitizers still see every allocation through malloc).

namespace {
std::atomic<uint64_t> g_allocations{0};

void* counted_alloc(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) {
    return p;
  }
  throw std::bad_alloc();
}
void* counted_alloc_nothrow(std::size_t n) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
// Out of line, so that GCC does not see free() meet a `new` once operator delete is inlined
// (a false -Wmismatched-new-delete for replaced operators).
[[gnu::noinline]] void counted_free(void* p) noexcept { std::free(p); }
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return counted_alloc_nothrow(n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return counted_alloc_nothrow(n);
}
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counted_free(p); }

namespace faultloop {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// ---- clocks -------------------------------------------------------------------------------------

TEST(ClockManualTest, AdvanceAndSetMoveTheTime) {
  ManualClock clock;
  const TimePoint start = clock.now();
  EXPECT_EQ(clock.advance(milliseconds(5)), start + milliseconds(5));
  EXPECT_EQ(clock.now(), start + milliseconds(5));
  clock.set(start + seconds(3));
  EXPECT_EQ(clock.now(), start + seconds(3));
  const Clock& base = clock;  // used through the base, as the loop does
  EXPECT_EQ(base.now(), start + seconds(3));
}

TEST(ClockSteadyTest, NowIsMonotonic) {
  const Clock& clock = SteadyClock::instance();
  const TimePoint a = clock.now();
  const TimePoint b = clock.now();
  EXPECT_LE(a, b);
}

// ---- TimerWheel ---------------------------------------------------------------------------------

/// A wheel on a ManualClock; `log` records which timers ran, in order.
class TimerWheelTest : public ::testing::Test {
 protected:
  explicit TimerWheelTest(TimerWheelOptions options = {}) : wheel_(clock_.now(), options) {}

  /// A timer that appends `name` to log_ when it fires.
  TimerId add(Duration delay, std::string name) {
    return wheel_.add(delay, [this, name = std::move(name)] { log_.push_back(name); });
  }

  /// Moves the clock by `d` and advances the wheel to it; returns how many timers ran.
  std::size_t step(Duration d) { return wheel_.advance(clock_.advance(d)); }

  ManualClock clock_;
  TimerWheel wheel_;
  std::vector<std::string> log_;
};

/// A small wheel (8 slots of 10 ms: one turn is 80 ms) so that rounds are easy to reach.
class TimerWheelRoundsTest : public TimerWheelTest {
 protected:
  TimerWheelRoundsTest() : TimerWheelTest({milliseconds(10), 8, 0}) {}
};

TEST_F(TimerWheelTest, ExpiredTimersRunInDeadlineOrderTiesInArmOrder) {
  add(milliseconds(30), "c");
  add(milliseconds(10), "a1");
  add(milliseconds(25), "b");  // same tick as c's neighbour, different deadline
  add(milliseconds(10), "a2");
  add(milliseconds(3), "first");  // same tick as nothing else, earliest
  EXPECT_EQ(step(milliseconds(50)), 5u);
  EXPECT_EQ(log_, (std::vector<std::string>{"first", "a1", "a2", "b", "c"}));
  EXPECT_EQ(wheel_.pending(), 0u);
}

TEST_F(TimerWheelTest, DeadlineInsideATickOrderedWithinTheTick) {
  add(milliseconds(17), "late");
  add(milliseconds(12), "early");  // both in tick 1 (10..20 ms)
  EXPECT_EQ(step(milliseconds(20)), 2u);
  EXPECT_EQ(log_, (std::vector<std::string>{"early", "late"}));
}

TEST_F(TimerWheelTest, NeverFiresBeforeItsDeadline) {
  add(milliseconds(25), "t");
  EXPECT_EQ(step(milliseconds(24)), 0u);
  EXPECT_EQ(step(Duration(999'999)), 0u);  // 24.999999 ms
  EXPECT_TRUE(log_.empty());
  EXPECT_EQ(step(Duration(1)), 1u);  // exactly 25 ms: fires (the tick does not delay it)
  EXPECT_EQ(log_, std::vector<std::string>{"t"});
}

TEST_F(TimerWheelTest, EachTimerRunsExactlyOnce) {
  add(milliseconds(5), "t");
  EXPECT_EQ(step(milliseconds(5)), 1u);
  EXPECT_EQ(step(milliseconds(5)), 0u);
  EXPECT_EQ(wheel_.advance(clock_.now()), 0u);
  EXPECT_EQ(log_.size(), 1u);
}

TEST_F(TimerWheelTest, ZeroAndNegativeDelayFireAtTheNextAdvance) {
  add(Duration::zero(), "zero");
  add(-seconds(1), "negative");
  EXPECT_EQ(wheel_.advance(clock_.now()), 2u);
  EXPECT_EQ(log_, (std::vector<std::string>{"zero", "negative"}));  // same deadline: arm order
}

TEST_F(TimerWheelTest, ClockGoingBackwardsIsNoProgress) {
  add(milliseconds(20), "t");
  step(milliseconds(15));
  EXPECT_EQ(wheel_.advance(clock_.now() - seconds(10)), 0u);
  EXPECT_EQ(wheel_.now(), clock_.now());
  EXPECT_EQ(step(milliseconds(5)), 1u);
}

TEST_F(TimerWheelRoundsTest, TimerBeyondOneTurnWaitsForItsRound) {
  add(milliseconds(255), "far");  // 3+ turns of 80 ms
  add(milliseconds(95), "near");  // hashes into the same slot region one turn later
  for (int i = 0; i < 25; ++i) {
    step(milliseconds(10));
    if (i == 8) {
      EXPECT_TRUE(log_.empty());  // 90 ms
    }
    if (i == 9) {
      EXPECT_EQ(log_, std::vector<std::string>{"near"});  // 100 ms
    }
  }
  EXPECT_EQ(log_, std::vector<std::string>{"near"});  // 250 ms: "far" not yet
  EXPECT_EQ(step(milliseconds(4)), 0u);               // 254 ms
  EXPECT_EQ(step(milliseconds(1)), 1u);               // 255 ms
  EXPECT_EQ(log_, (std::vector<std::string>{"near", "far"}));
}

TEST_F(TimerWheelRoundsTest, JumpOverManyTurnsRunsEverythingInDeadlineOrder) {
  add(milliseconds(700), "d");
  add(milliseconds(5), "a");
  add(milliseconds(81), "b");  // same slot as "a" one turn later
  add(milliseconds(333), "c");
  add(milliseconds(5000), "later");
  EXPECT_EQ(step(seconds(1)), 4u);  // 12.5 turns in one call
  EXPECT_EQ(log_, (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(wheel_.pending(), 1u);
  EXPECT_EQ(step(seconds(3)), 0u);
  EXPECT_EQ(step(seconds(1)), 1u);
}

TEST_F(TimerWheelTest, CancelPreventsFiringAndIsTrueOnlyOnce) {
  const TimerId id = add(milliseconds(10), "cancelled");
  add(milliseconds(10), "kept");
  EXPECT_EQ(wheel_.pending(), 2u);
  EXPECT_TRUE(wheel_.cancel(id));
  EXPECT_FALSE(wheel_.cancel(id));
  EXPECT_EQ(wheel_.pending(), 1u);
  EXPECT_EQ(step(milliseconds(20)), 1u);
  EXPECT_EQ(log_, std::vector<std::string>{"kept"});
  EXPECT_FALSE(wheel_.cancel(TimerId{}));
}

TEST_F(TimerWheelTest, CancelAfterFiringIsFalse) {
  const TimerId id = add(milliseconds(10), "t");
  step(milliseconds(10));
  EXPECT_FALSE(wheel_.cancel(id));
  EXPECT_FALSE(wheel_.reset(id, milliseconds(10)));
}

// WuKongIM 108988f4 / BUGZOO 36: a stale idle-timer id must not touch the timer that now
// lives in the same node.
TEST_F(TimerWheelTest, StaleIdNeverCancelsTheTimerThatReusedItsNode) {
  const TimerId old_id = add(milliseconds(10), "old");
  ASSERT_TRUE(wheel_.cancel(old_id));
  const TimerId new_id = add(milliseconds(10), "new");
  // The node was reused (same index, low 32 bits), with a new generation.
  ASSERT_EQ(old_id.value() & 0xffffffffu, new_id.value() & 0xffffffffu);
  ASSERT_NE(old_id, new_id);
  EXPECT_FALSE(wheel_.cancel(old_id));
  EXPECT_FALSE(wheel_.reset(old_id, seconds(10)));
  EXPECT_EQ(step(milliseconds(10)), 1u);
  EXPECT_EQ(log_, std::vector<std::string>{"new"});
}

TEST_F(TimerWheelTest, StaleIdOfAFiredTimerNeverCancelsItsSuccessor) {
  TimerId fired = add(milliseconds(10), "first");
  step(milliseconds(10));
  const TimerId next = add(milliseconds(10), "second");
  ASSERT_EQ(fired.value() & 0xffffffffu, next.value() & 0xffffffffu);
  EXPECT_FALSE(wheel_.cancel(fired));
  EXPECT_EQ(step(milliseconds(10)), 1u);
  EXPECT_EQ(log_, (std::vector<std::string>{"first", "second"}));
}

TEST_F(TimerWheelTest, ResetPostponesTheDeadline) {
  const TimerId idle = add(milliseconds(100), "idle");
  step(milliseconds(90));
  ASSERT_TRUE(wheel_.reset(idle, milliseconds(50)));  // now due at 140 ms
  EXPECT_EQ(wheel_.pending(), 1u);
  EXPECT_EQ(step(milliseconds(10)), 0u);  // 100 ms: the old deadline passes silently
  EXPECT_EQ(step(milliseconds(39)), 0u);  // 139 ms
  EXPECT_EQ(step(milliseconds(1)), 1u);   // 140 ms
  EXPECT_EQ(log_, std::vector<std::string>{"idle"});
}

TEST_F(TimerWheelTest, ResetCanAlsoBringADeadlineForward) {
  const TimerId id = add(seconds(30), "t");
  ASSERT_TRUE(wheel_.reset(id, milliseconds(5)));
  EXPECT_EQ(step(milliseconds(5)), 1u);
}

TEST_F(TimerWheelRoundsTest, ResetOnEveryReadKeepsAnIdleTimerFromFiring) {
  const TimerId idle = add(milliseconds(200), "idle");  // beyond one turn
  for (int read = 0; read < 50; ++read) {
    step(milliseconds(30));
    ASSERT_TRUE(wheel_.reset(idle, milliseconds(200)));
  }
  EXPECT_TRUE(log_.empty());
  EXPECT_EQ(step(milliseconds(199)), 0u);
  EXPECT_EQ(step(milliseconds(1)), 1u);
}

TEST_F(TimerWheelTest, CallbackCancellingALaterTimerOfTheSameBatchStopsIt) {
  TimerId victim;
  wheel_.add(milliseconds(5), [&] {
    log_.push_back("killer");
    EXPECT_TRUE(wheel_.cancel(victim));  // expired but not run yet: still pending
  });
  victim = add(milliseconds(8), "victim");
  EXPECT_EQ(step(milliseconds(10)), 1u);
  EXPECT_EQ(log_, std::vector<std::string>{"killer"});
  EXPECT_EQ(wheel_.pending(), 0u);
}

TEST_F(TimerWheelTest, CallbackResettingALaterTimerOfTheSameBatchPostponesIt) {
  TimerId later;
  wheel_.add(milliseconds(5), [&] { EXPECT_TRUE(wheel_.reset(later, milliseconds(50))); });
  later = add(milliseconds(8), "later");
  EXPECT_EQ(step(milliseconds(10)), 1u);
  EXPECT_TRUE(log_.empty());
  EXPECT_EQ(step(milliseconds(49)), 0u);  // reset counts from the wheel time (10 ms): due 60
  EXPECT_EQ(step(milliseconds(1)), 1u);
  EXPECT_EQ(log_, std::vector<std::string>{"later"});
}

TEST_F(TimerWheelTest, CallbackCancellingOrResettingItselfIsANoOp) {
  TimerId self;
  self = wheel_.add(milliseconds(5), [&] {
    log_.push_back("self");
    EXPECT_FALSE(wheel_.cancel(self));  // already running: no longer pending
    EXPECT_FALSE(wheel_.reset(self, milliseconds(5)));
  });
  EXPECT_EQ(step(milliseconds(5)), 1u);
  EXPECT_EQ(step(milliseconds(50)), 0u);
  EXPECT_EQ(log_, std::vector<std::string>{"self"});
}

TEST_F(TimerWheelTest, CallbackAddingTimersRunsThemInALaterAdvance) {
  int rearms = 0;
  std::function<void()> tick = [&] {
    ++rearms;
    if (rearms < 3) {
      wheel_.add(Duration::zero(), [&] { tick(); });  // delay 0 from inside: not this call
    }
  };
  wheel_.add(milliseconds(1), [&] { tick(); });
  EXPECT_EQ(step(milliseconds(1)), 1u);
  EXPECT_EQ(rearms, 1);
  EXPECT_EQ(wheel_.advance(clock_.now()), 1u);
  EXPECT_EQ(wheel_.advance(clock_.now()), 1u);
  EXPECT_EQ(wheel_.advance(clock_.now()), 0u);
  EXPECT_EQ(rearms, 3);
}

TEST_F(TimerWheelTest, CallbackReusingItsOwnNodeIsSafe) {
  // The callback's node is released before it runs, so the add below gets the same node while
  // the callback (moved out of it) is still executing.
  TimerId first;
  TimerId second;
  first = wheel_.add(milliseconds(1), [&, tag = std::string(40, 'x')] {
    second = add(milliseconds(1), "second");
    log_.push_back("first:" + tag.substr(0, 1));
  });
  EXPECT_EQ(step(milliseconds(1)), 1u);
  EXPECT_EQ(first.value() & 0xffffffffu, second.value() & 0xffffffffu);
  EXPECT_EQ(step(milliseconds(1)), 1u);
  EXPECT_EQ(log_, (std::vector<std::string>{"first:x", "second"}));
}

TEST_F(TimerWheelTest, ThrowingCallbackLeavesTheRestPendingForTheNextAdvance) {
  add(milliseconds(1), "before");
  wheel_.add(milliseconds(2), [] { throw std::runtime_error("handler failed"); });
  add(milliseconds(3), "after1");
  add(milliseconds(4), "after2");
  EXPECT_THROW(step(milliseconds(5)), std::runtime_error);
  EXPECT_EQ(log_, std::vector<std::string>{"before"});
  EXPECT_EQ(wheel_.pending(), 2u);
  EXPECT_EQ(wheel_.next_timeout(clock_.now()), Duration::zero());
  EXPECT_EQ(wheel_.advance(clock_.now()), 2u);
  EXPECT_EQ(log_, (std::vector<std::string>{"before", "after1", "after2"}));
}

TEST_F(TimerWheelTest, AdvanceFromACallbackIsRefused) {
  wheel_.add(milliseconds(1), [&] { wheel_.advance(clock_.now()); });
  EXPECT_THROW(step(milliseconds(1)), std::logic_error);
  EXPECT_EQ(wheel_.pending(), 0u);
}

TEST_F(TimerWheelTest, NextTimeoutIsTheTimeToTheEarliestDeadline) {
  EXPECT_EQ(wheel_.next_timeout(clock_.now()), std::nullopt);
  const TimerId a = add(milliseconds(25), "a");
  add(milliseconds(40), "b");
  EXPECT_EQ(wheel_.next_timeout(clock_.now()), milliseconds(25));
  step(milliseconds(10));
  EXPECT_EQ(wheel_.next_timeout(clock_.now()), milliseconds(15));
  // Asked with a later time than the wheel has seen (an early epoll wake-up recomputes).
  EXPECT_EQ(wheel_.next_timeout(clock_.now() + milliseconds(5)), milliseconds(10));
  EXPECT_EQ(wheel_.next_timeout(clock_.now() + seconds(1)), Duration::zero());
  ASSERT_TRUE(wheel_.cancel(a));
  EXPECT_EQ(wheel_.next_timeout(clock_.now()), milliseconds(30));
  add(milliseconds(1), "c");
  EXPECT_EQ(wheel_.next_timeout(clock_.now()), milliseconds(1));
  step(milliseconds(1));
  EXPECT_EQ(wheel_.next_timeout(clock_.now()), milliseconds(29));
  step(milliseconds(29));
  EXPECT_EQ(wheel_.next_timeout(clock_.now()), std::nullopt);
}

TEST_F(TimerWheelRoundsTest, NextTimeoutSeesTimersSeveralTurnsAway) {
  add(milliseconds(1234), "far");
  add(milliseconds(777), "less far");
  EXPECT_EQ(wheel_.next_timeout(clock_.now()), milliseconds(777));
  step(milliseconds(700));
  EXPECT_EQ(wheel_.next_timeout(clock_.now()), milliseconds(77));
  step(milliseconds(77));
  EXPECT_EQ(wheel_.next_timeout(clock_.now()), milliseconds(457));
}

TEST_F(TimerWheelTest, NextTimeoutThenAdvanceAtThatTimeFiresTheTimer) {
  // The loop's cycle: wait next_timeout rounded up to ms, then advance: never early, no
  // wake-up that finds nothing to do.
  add(Duration(12'345'678), "t");  // 12.345678 ms
  const int ms = epoll_timeout_ms(wheel_.next_timeout(clock_.now()));
  EXPECT_EQ(ms, 13);
  EXPECT_EQ(step(milliseconds(ms)), 1u);
}

TEST(TimerWheelEpollTimeoutTest, RoundsUpToWholeMilliseconds) {
  EXPECT_EQ(epoll_timeout_ms(std::nullopt), -1);
  EXPECT_EQ(epoll_timeout_ms(Duration::zero()), 0);
  EXPECT_EQ(epoll_timeout_ms(Duration(1)), 1);
  EXPECT_EQ(epoll_timeout_ms(milliseconds(1)), 1);
  EXPECT_EQ(epoll_timeout_ms(Duration(1'000'001)), 2);
  EXPECT_EQ(epoll_timeout_ms(std::chrono::hours(24 * 365)), INT32_MAX);
}

TEST(TimerWheelOptionsTest, BadConfigurationThrows) {
  const TimePoint t{};
  EXPECT_THROW(TimerWheel(t, {Duration::zero(), 512, 0}), std::invalid_argument);
  EXPECT_THROW(TimerWheel(t, {milliseconds(10), 500, 0}), std::invalid_argument);
  EXPECT_THROW(TimerWheel(t, {milliseconds(10), 0, 0}), std::invalid_argument);
  EXPECT_NO_THROW(TimerWheel(t, {milliseconds(1), 1, 0}));
}

TEST_F(TimerWheelTest, SmallCallbacksAreStoredInline) {
  struct Captures {
    void* self;
    uint64_t generation;
    int fd;
  };
  EXPECT_TRUE(TimerWheel::Callback::kFitsInline<Captures>);
  EXPECT_FALSE((TimerWheel::Callback::kFitsInline<std::array<char, 200>>));
  // A big callable still works (heap fallback).
  std::array<char, 200> big{};
  big[0] = 'B';
  wheel_.add(milliseconds(1), [this, big] { log_.push_back(std::string(1, big[0])); });
  EXPECT_EQ(step(milliseconds(1)), 1u);
  EXPECT_EQ(log_, std::vector<std::string>{"B"});
}

TEST_F(TimerWheelTest, HundredThousandAddCancelResetCyclesDoNotAllocate) {
  constexpr int kLive = 256;
  int fired = 0;
  std::vector<TimerId> live(kLive);
  // Warm up: the pool reaches its working size, the batch scratch too.
  for (int i = 0; i < kLive; ++i) {
    live[i] = wheel_.add(milliseconds(1 + i % 50), [&fired, i] { fired += i >= 0; });
  }
  step(seconds(1));
  for (int i = 0; i < kLive; ++i) {
    live[i] = wheel_.add(seconds(30), [&fired, i] { fired += i >= 0; });
  }
  const std::size_t capacity = wheel_.capacity();
  const uint64_t allocations = g_allocations.load();

  for (int i = 0; i < 100'000; ++i) {
    TimerId& slot = live[i % kLive];
    if (!wheel_.cancel(slot)) {
      ADD_FAILURE() << "cancel failed at " << i;
      break;
    }
    slot = wheel_.add(milliseconds(100 + i % 7'000), [&fired, i] { fired += i >= 0; });
    wheel_.reset(slot, seconds(30) + milliseconds(i % 1000));
    if (i % 1000 == 0) {
      step(milliseconds(10));
      (void)wheel_.next_timeout(clock_.now());
    }
  }

  EXPECT_EQ(g_allocations.load() - allocations, 0u);
  EXPECT_EQ(wheel_.capacity(), capacity);
  EXPECT_EQ(wheel_.pending(), static_cast<std::size_t>(kLive));
  wheel_.clear();
  EXPECT_EQ(wheel_.pending(), 0u);
  EXPECT_EQ(wheel_.next_timeout(clock_.now()), std::nullopt);
}

TEST_F(TimerWheelTest, ClearDestroysCallbacksWithoutRunningThem) {
  auto token = std::make_shared<int>(1);
  for (int i = 0; i < 10; ++i) {
    wheel_.add(milliseconds(i), [token] { FAIL() << "must not run"; });
  }
  EXPECT_EQ(token.use_count(), 11);
  wheel_.clear();
  EXPECT_EQ(token.use_count(), 1);
  EXPECT_EQ(step(seconds(1)), 0u);
}

TEST_F(TimerWheelTest, CancelDestroysTheCallbackAndItsDestructorMayUseTheWheel) {
  struct CancelOnDestroy {
    TimerWheel* wheel;
    TimerId* other;
    bool armed = true;
    CancelOnDestroy(TimerWheel* w, TimerId* o) : wheel(w), other(o) {}
    CancelOnDestroy(CancelOnDestroy&& m) noexcept
        : wheel(m.wheel), other(m.other), armed(std::exchange(m.armed, false)) {}
    ~CancelOnDestroy() {
      if (armed) {
        wheel->cancel(*other);
      }
    }
    void operator()() const {}
  };
  TimerId other = add(milliseconds(5), "other");
  const TimerId id = wheel_.add(milliseconds(5), CancelOnDestroy(&wheel_, &other));
  EXPECT_TRUE(wheel_.cancel(id));
  EXPECT_EQ(wheel_.pending(), 0u);  // the destructor cancelled "other" as well
  EXPECT_EQ(step(milliseconds(10)), 0u);
}

}  // namespace
}  // namespace faultloop
