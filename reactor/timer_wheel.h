// Public: TimerWheel, the hashed timing wheel of one loop (DESIGN "Timeouts": read, write and
// idle timeouts; seed 001: WuKongIM's idle timeout on a timing wheel).
//
// Thread contract: a TimerWheel belongs to ONE loop thread and has no locks inside; the owning
// loop calls every method. Other threads reach it through the loop's task queue.
//
// Time: the wheel never reads a clock. The loop reads its Clock once per iteration and passes
// the time to advance(); add() and reset() count their delay from the time of the last
// advance() (the loop's cached time, like libuv's uv_now). A timer never fires before its
// deadline on that time line. After EINTR or an early wake-up the loop asks next_timeout()
// again with a fresh time (libuv update_timeout): nothing is carried over.
//
// Structure: `slots` lists indexed by tick (deadline / tick modulo slots); a deadline more than
// one turn away waits in its slot for later rounds (its absolute tick is kept in the node).
// The tick is a hashing granularity, not a precision: advance() fires a timer as soon as
// now >= deadline. Timer nodes come from a pool with a free list, so steady-state add, cancel
// and reset do not allocate; small callbacks are stored inline (detail::SmallFunction).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "reactor/clock.h"
#include "reactor/detail/small_function.h"

namespace faultloop {

/// Names one armed timer of one TimerWheel: a pool index plus the generation the node had when
/// the timer was armed. The generation changes whenever the node is released (fired or
/// cancelled), so a stale id never cancels or resets a newer timer that reuses the node
/// (WuKongIM 108988f4, BUGZOO 36: timers act only on the generation they were armed for).
class TimerId {
 public:
  /// An id that names no timer (cancel and reset return false for it).
  constexpr TimerId() = default;

  /// False for a default-constructed id.
  constexpr bool valid() const { return generation_ != 0; }

  /// The id as one integer (for logs and epoll-style packing): generation << 32 | index.
  constexpr uint64_t value() const { return uint64_t{generation_} << 32 | index_; }

  /// Ids are equal when they name the same node and generation.
  friend constexpr bool operator==(TimerId, TimerId) = default;

 private:
  friend class TimerWheel;
  constexpr TimerId(uint32_t index, uint32_t generation)
      : index_(index), generation_(generation) {}

  uint32_t index_ = 0;
  uint32_t generation_ = 0;  // 0: no timer
};

/// Construction parameters of a TimerWheel.
struct TimerWheelOptions {
  /// Width of one slot. Must be > 0.
  Duration tick = std::chrono::milliseconds(10);
  /// Number of slots; a power of two. One turn of the wheel is tick * slots (5.12 s by default).
  std::size_t slots = 512;
  /// Timer nodes allocated up front (the pool grows on demand beyond it).
  std::size_t initial_capacity = 0;
};

/// The hashed timing wheel of one loop. Not thread-safe by design (see the file comment).
class TimerWheel {
 public:
  /// A timer's action: a move-only callable. Lambdas of up to 48 bytes (e.g. a pointer plus a
  /// generation, or a shared_ptr) are stored without allocating.
  using Callback = detail::SmallFunction<void()>;

  /// A wheel whose time starts at `start` (normally the loop clock's now()). Throws
  /// std::invalid_argument for a tick <= 0, a slot count that is not a power of two, or more
  /// than 2^31 slots (configuration errors).
  explicit TimerWheel(TimePoint start, TimerWheelOptions options = {});

  /// Destroys the pending callbacks without running them (clear()).
  ~TimerWheel();

  /// Not copyable (ids name nodes of one wheel).
  TimerWheel(const TimerWheel&) = delete;
  /// Not copyable.
  TimerWheel& operator=(const TimerWheel&) = delete;

  /// Arms a timer that fires `delay` after now() (a negative delay counts as 0: it fires at the
  /// next advance()). A timer armed from inside a callback never fires in the same advance()
  /// call, so a callback that re-arms itself with delay 0 cannot loop forever. Allocates only
  /// when the node pool is exhausted or the callable is too big to store inline.
  TimerId add(Duration delay, Callback cb);

  /// Disarms `id`: true when it was pending (its callback is destroyed unrun), false when it
  /// already fired, was cancelled, or is a stale id of a node that has since been reused.
  bool cancel(TimerId id);

  /// Re-arms a pending timer to fire `delay` after now() (idle timeouts are reset on every
  /// read). The id stays valid. False, and nothing changes, when `id` is not pending (a timer
  /// cannot be reset from inside its own callback: it is no longer pending; add a new one).
  bool reset(TimerId id, Duration delay);

  /// Moves the wheel's time to `now` (an earlier time than the last one counts as no progress)
  /// and runs every timer whose deadline is <= now exactly once, in deadline order (ties in
  /// the order they were armed or reset). Callbacks may add, cancel and reset timers, their
  /// own id included; a pending timer cancelled by an earlier callback of the same batch does
  /// not run. Returns how many callbacks ran.
  ///
  /// Exceptions: a callback may throw. The exception propagates out of advance(); the wheel
  /// stays consistent and the expired timers that had not run yet stay pending (the next
  /// advance() runs them). Must not be called from inside a callback.
  std::size_t advance(TimePoint now);

  /// Time from `now` until the earliest pending deadline (zero when it has passed), or nullopt
  /// when no timer is pending. For epoll_wait the caller rounds it UP to whole milliseconds
  /// (epoll_timeout_ms), so that waking up never comes before the deadline.
  std::optional<Duration> next_timeout(TimePoint now);

  /// The wheel's time: the latest `now` given to advance() (or the start time).
  TimePoint now() const { return now_; }

  /// Number of pending timers.
  std::size_t pending() const { return pending_; }

  /// Number of timer nodes in the pool (pending plus free). It grows only when add() finds the
  /// pool empty, so it is flat in a steady state.
  std::size_t capacity() const { return nodes_.size(); }

  /// Grows the pool to at least `n` nodes now, so that later adds do not allocate.
  void reserve(std::size_t n);

  /// Cancels every pending timer (callbacks destroyed, not run).
  void clear();

  /// The width of one slot.
  Duration tick() const { return tick_; }
  /// The number of slots.
  std::size_t slots() const { return heads_.size(); }

 private:
  enum class State : uint8_t { kFree, kPending, kFiring };
  static constexpr uint32_t kNil = UINT32_MAX;

  struct Node {
    TimePoint deadline{};
    uint64_t tick = 0;  // absolute tick of the slot the node is linked in
    uint64_t seq = 0;   // arm order, breaks deadline ties
    Callback cb;
    uint32_t prev = kNil;
    uint32_t next = kNil;  // slot list, or the free list when kFree
    uint32_t generation = 1;
    State state = State::kFree;
  };

  struct Expired {
    TimePoint deadline;
    uint64_t seq;
    uint32_t index;
    uint32_t generation;
  };

  uint64_t tick_of(TimePoint t) const;
  uint32_t allocate();
  void release(uint32_t index) noexcept;  // bumps the generation, back to the free list
  void link(uint32_t index, TimePoint deadline) noexcept;
  void unlink(uint32_t index) noexcept;
  Node* find(TimerId id);
  void grow(std::size_t n);
  void relink_unrun(std::size_t from) noexcept;

  Duration tick_;
  uint64_t mask_;
  TimePoint origin_;
  TimePoint now_;
  uint64_t cursor_ = 0;  // every tick below it is empty
  uint64_t next_seq_ = 0;
  std::size_t pending_ = 0;
  std::vector<Node> nodes_;
  std::vector<uint32_t> heads_;
  uint32_t free_head_ = kNil;
  std::vector<Expired> batch_;  // scratch of advance(), kept to avoid reallocating
  bool in_advance_ = false;
  // Cached earliest pending deadline; valid_ false means "recompute on demand".
  TimePoint earliest_{};
  bool earliest_valid_ = true;
};

/// The epoll_wait timeout for `timeout`: -1 (wait forever) for nullopt, else the duration
/// rounded UP to whole milliseconds and capped at INT_MAX.
int epoll_timeout_ms(std::optional<Duration> timeout);

}  // namespace faultloop
