#include "reactor/poll_manager.h"

namespace faultloop {

namespace {

// splitmix64 as a pure function: a counter-based draw per pick.
uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

Result<std::unique_ptr<PollManager>> PollManager::create(PollManagerOptions options) {
  if (options.num_loops < 1) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  if (!options.clock) {
    options.clock = std::make_shared<SteadyClock>();
  }
  std::unique_ptr<PollManager> manager(new PollManager(options));
  for (int i = 0; i < options.num_loops; ++i) {
    PollOptions po;
    po.index = i;
    po.trigger = options.trigger;
    po.clock = options.clock;
    Result<std::unique_ptr<Poll>> poll = Poll::create(po);
    if (!poll) {
      return poll.error();
    }
    manager->loops_.push_back(std::move(*poll));
  }
  return manager;
}

PollManager::~PollManager() { stop(); }

void PollManager::start() {
  for (auto& loop : loops_) {
    loop->start();
  }
}

void PollManager::stop() {
  for (auto& loop : loops_) {
    loop->stop();
  }
}

Poll& PollManager::pick() {
  const uint64_t k = next_.fetch_add(1, std::memory_order_relaxed);
  if (options_.balance == LoadBalance::kRoundRobin) {
    return *loops_[k % loops_.size()];
  }
  // Counter-based draws: threads never share PRNG state (as the fault engine's).
  return *loops_[splitmix64(options_.seed + k) % loops_.size()];
}

}  // namespace faultloop
