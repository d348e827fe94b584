// Public: the reactor's clocks (STYLE 24: time is not a syscall).
//
// The timer wheel and the loops read time through a Clock: SteadyClock in production,
// ManualClock in unit tests, which move time by hand. clock_gettime does not go through the
// syscall seam (reactor/sys): time is not something the fault engine injects.
//
// The call is virtual; that is acceptable because a loop reads its clock once per iteration
// (libuv uv_update_time), never per I/O call.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <type_traits>

namespace faultloop {

/// A length of time: nanoseconds.
using Duration = std::chrono::nanoseconds;

/// A point on the monotonic time line: std::chrono::steady_clock's (nanoseconds since an
/// unspecified epoch, boot on Linux). ManualClock uses the same type, so code never depends on
/// which clock it runs on.
using TimePoint = std::chrono::steady_clock::time_point;

static_assert(std::is_same_v<TimePoint::duration, Duration>,
              "steady_clock is expected to count nanoseconds");

/// A source of monotonic time. Implementations are thread-safe.
class Clock {
 public:
  /// Virtual: clocks are used through references to this base.
  virtual ~Clock() = default;

  /// The current time; never earlier than an earlier call's result on the same clock
  /// (ManualClock::set may move backwards on purpose, see there).
  virtual TimePoint now() const = 0;
};

/// std::chrono::steady_clock: the clock of production loops.
class SteadyClock final : public Clock {
 public:
  /// steady_clock::now().
  TimePoint now() const override;

  /// A process-wide instance (stateless, so one is enough).
  static const SteadyClock& instance();
};

/// A clock moved by hand, for tests. Thread-safe: the time is one relaxed atomic, so a test
/// thread may advance it while a loop thread reads it.
class ManualClock final : public Clock {
 public:
  /// Starts at `start` (by default one hour after the epoch, so that tests never compute
  /// times before the epoch).
  explicit ManualClock(TimePoint start = TimePoint{std::chrono::hours(1)})
      : ns_(start.time_since_epoch().count()) {}

  /// The time set by the constructor, advance() and set().
  TimePoint now() const override {
    return TimePoint{Duration{ns_.load(std::memory_order_relaxed)}};
  }

  /// Moves the time forward by `d` (d >= 0) and returns the new time.
  TimePoint advance(Duration d) {
    return TimePoint{Duration{ns_.fetch_add(d.count(), std::memory_order_relaxed) + d.count()}};
  }

  /// Sets the time. Tests may move it backwards to check that users tolerate it; a
  /// TimerWheel treats a time earlier than the one it saw last as no progress.
  void set(TimePoint t) { ns_.store(t.time_since_epoch().count(), std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> ns_;
};

}  // namespace faultloop
