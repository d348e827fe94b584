#include "reactor/timer_wheel.h"

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <utility>

namespace faultloop {

TimerWheel::TimerWheel(TimePoint start, TimerWheelOptions options)
    : tick_(options.tick),
      mask_(options.slots - 1),
      origin_(start),
      now_(start),
      earliest_(TimePoint::max()) {
  if (tick_ <= Duration::zero()) {
    throw std::invalid_argument("TimerWheel: tick must be > 0");
  }
  if (options.slots == 0 || (options.slots & (options.slots - 1)) != 0 ||
      options.slots > (std::size_t{1} << 31)) {
    throw std::invalid_argument("TimerWheel: slots must be a power of two <= 2^31");
  }
  heads_.assign(options.slots, kNil);
  reserve(options.initial_capacity);
}

TimerWheel::~TimerWheel() { clear(); }

uint64_t TimerWheel::tick_of(TimePoint t) const {
  if (t <= origin_) {
    return 0;
  }
  return static_cast<uint64_t>((t - origin_) / tick_);
}

void TimerWheel::reserve(std::size_t n) {
  if (n > nodes_.size()) {
    grow(n);
  }
}

void TimerWheel::grow(std::size_t n) {
  if (n >= kNil) {
    throw std::length_error("TimerWheel: too many timers");
  }
  const auto old_size = static_cast<uint32_t>(nodes_.size());
  nodes_.resize(n);  // Node moves are noexcept: pending callbacks move with their nodes
  // Push the new nodes so that the lowest index comes out first.
  for (auto i = static_cast<uint32_t>(n); i-- > old_size;) {
    nodes_[i].next = free_head_;
    free_head_ = i;
  }
}

uint32_t TimerWheel::allocate() {
  if (free_head_ == kNil) {
    grow(std::max<std::size_t>(64, nodes_.size() * 2));
  }
  const uint32_t index = free_head_;
  free_head_ = nodes_[index].next;
  return index;
}

void TimerWheel::release(uint32_t index) noexcept {
  Node& n = nodes_[index];
  // A new generation: ids armed on this node are stale from now on (BUGZOO 36).
  n.generation = n.generation == UINT32_MAX ? 1 : n.generation + 1;
  n.state = State::kFree;
  n.prev = kNil;
  n.next = free_head_;
  free_head_ = index;
  if (--pending_ == 0) {
    earliest_ = TimePoint::max();
    earliest_valid_ = true;
  }
}

void TimerWheel::link(uint32_t index, TimePoint deadline) noexcept {
  Node& n = nodes_[index];
  n.deadline = deadline;
  // A deadline in a tick the wheel has already passed goes to the current tick: advance()
  // looks at it next time and fires it then (deadline <= now).
  n.tick = std::max(tick_of(deadline), cursor_);
  n.state = State::kPending;
  uint32_t& head = heads_[n.tick & mask_];
  n.prev = kNil;
  n.next = head;
  if (head != kNil) {
    nodes_[head].prev = index;
  }
  head = index;
  if (earliest_valid_ && deadline < earliest_) {
    earliest_ = deadline;
  }
}

void TimerWheel::unlink(uint32_t index) noexcept {
  Node& n = nodes_[index];
  if (n.prev != kNil) {
    nodes_[n.prev].next = n.next;
  } else {
    heads_[n.tick & mask_] = n.next;
  }
  if (n.next != kNil) {
    nodes_[n.next].prev = n.prev;
  }
  n.prev = kNil;
  n.next = kNil;
  if (n.deadline == earliest_) {
    earliest_valid_ = false;
  }
}

TimerWheel::Node* TimerWheel::find(TimerId id) {
  if (!id.valid() || id.index_ >= nodes_.size()) {
    return nullptr;
  }
  Node& n = nodes_[id.index_];
  if (n.generation != id.generation_ || n.state == State::kFree) {
    return nullptr;
  }
  return &n;
}

namespace {
// now + delay, with a negative delay as 0 and saturation instead of overflow.
TimePoint deadline_after(TimePoint now, Duration delay) {
  if (delay <= Duration::zero()) {
    return now;
  }
  if (delay >= TimePoint::max() - now) {
    return TimePoint::max();
  }
  return now + delay;
}
}  // namespace

TimerId TimerWheel::add(Duration delay, Callback cb) {
  const uint32_t index = allocate();  // the only step that may throw (std::bad_alloc)
  Node& n = nodes_[index];
  n.cb = std::move(cb);
  n.seq = next_seq_++;
  ++pending_;
  link(index, deadline_after(now_, delay));
  return TimerId(index, n.generation);
}

bool TimerWheel::cancel(TimerId id) {
  Node* n = find(id);
  if (n == nullptr) {
    return false;
  }
  if (n->state == State::kPending) {
    unlink(id.index_);
  }
  // A kFiring node (expired in the current advance() batch, not run yet) is not linked; its
  // batch entry sees the new generation and skips it.
  Callback cb = std::move(n->cb);
  release(id.index_);
  // cb is destroyed here, with the wheel consistent: its destructor may call into the wheel.
  return true;
}

bool TimerWheel::reset(TimerId id, Duration delay) {
  Node* n = find(id);
  if (n == nullptr) {
    return false;
  }
  if (n->state == State::kPending) {
    unlink(id.index_);
  }
  n->seq = next_seq_++;
  link(id.index_, deadline_after(now_, delay));  // a kFiring node leaves the batch this way
  return true;
}

std::size_t TimerWheel::advance(TimePoint now) {
  if (in_advance_) {
    throw std::logic_error("TimerWheel::advance called from a timer callback");
  }
  now_ = std::max(now_, now);
  const uint64_t now_tick = tick_of(now_);
  if (pending_ == 0) {
    cursor_ = now_tick;
    return 0;
  }

  // Collect every expired node: all of ticks [cursor_, now_tick) and the part of now_tick
  // whose deadline has come. A jump of a whole turn or more visits each slot once.
  batch_.clear();
  auto collect = [this, now_tick](uint64_t slot) {
    uint32_t index = heads_[slot];
    while (index != kNil) {
      Node& n = nodes_[index];
      const uint32_t next = n.next;
      if (n.tick < now_tick || (n.tick == now_tick && n.deadline <= now_)) {
        batch_.push_back({n.deadline, n.seq, index, n.generation});  // may throw: first
        unlink(index);
        n.state = State::kFiring;
      }
      index = next;
    }
  };
  try {
    if (now_tick - cursor_ >= heads_.size()) {
      for (uint64_t slot = 0; slot < heads_.size(); ++slot) {
        collect(slot);
      }
    } else {
      for (uint64_t t = cursor_; t <= now_tick; ++t) {
        collect(t & mask_);
      }
    }
  } catch (...) {  // std::bad_alloc growing the batch: put back what was taken
    relink_unrun(0);
    throw;
  }
  cursor_ = now_tick;
  if (batch_.empty()) {
    return 0;
  }
  std::sort(batch_.begin(), batch_.end(), [](const Expired& a, const Expired& b) {
    return a.deadline != b.deadline ? a.deadline < b.deadline : a.seq < b.seq;
  });

  // Run them. Each callback leaves its node before it runs (moved to the stack, node
  // released), so it may add, cancel or reset anything, and the pool may grow meanwhile.
  in_advance_ = true;
  std::size_t ran = 0;
  std::size_t i = 0;
  try {
    for (; i < batch_.size(); ++i) {
      const Expired e = batch_[i];
      Node& n = nodes_[e.index];
      if (n.state != State::kFiring || n.generation != e.generation) {
        continue;  // cancelled or reset by an earlier callback of this batch
      }
      Callback cb = std::move(n.cb);
      release(e.index);
      ++ran;
      cb();
    }
  } catch (...) {
    relink_unrun(i + 1);
    in_advance_ = false;
    throw;
  }
  in_advance_ = false;
  return ran;
}

void TimerWheel::relink_unrun(std::size_t from) noexcept {
  for (std::size_t j = from; j < batch_.size(); ++j) {
    const Expired& e = batch_[j];
    Node& n = nodes_[e.index];
    if (n.state == State::kFiring && n.generation == e.generation) {
      link(e.index, n.deadline);  // overdue: lands in the current tick, fires next advance()
    }
  }
}

std::optional<Duration> TimerWheel::next_timeout(TimePoint now) {
  if (pending_ == 0) {
    return std::nullopt;
  }
  if (!earliest_valid_) {
    TimePoint best = TimePoint::max();
    if (in_advance_) {  // called from a callback: the rest of the batch is still pending
      for (const Expired& e : batch_) {
        const Node& n = nodes_[e.index];
        if (n.state == State::kFiring && n.generation == e.generation) {
          best = std::min(best, n.deadline);
        }
      }
    }
    // The first tick (from the cursor on) that holds a node of the current round holds the
    // earliest linked deadline: later ticks start after it ends.
    bool found = false;
    for (uint64_t t = cursor_; t < cursor_ + heads_.size() && !found; ++t) {
      for (uint32_t index = heads_[t & mask_]; index != kNil; index = nodes_[index].next) {
        if (nodes_[index].tick == t) {
          best = std::min(best, nodes_[index].deadline);
          found = true;
        }
      }
    }
    if (!found) {  // every linked timer is at least one turn away: look at all of them
      for (uint32_t head : heads_) {
        for (uint32_t index = head; index != kNil; index = nodes_[index].next) {
          best = std::min(best, nodes_[index].deadline);
        }
      }
    }
    earliest_ = best;
    earliest_valid_ = true;
  }
  if (earliest_ <= now) {
    return Duration::zero();
  }
  return earliest_ - now;
}

void TimerWheel::clear() {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    Node& n = nodes_[i];
    if (n.state != State::kFree) {
      cancel(TimerId(static_cast<uint32_t>(i), n.generation));
    }
  }
}

int epoll_timeout_ms(std::optional<Duration> timeout) {
  if (!timeout) {
    return -1;
  }
  if (*timeout <= Duration::zero()) {
    return 0;
  }
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(*timeout).count();
  return ms >= INT_MAX ? INT_MAX : static_cast<int>(ms);
}

}  // namespace faultloop
