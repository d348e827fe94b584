// Public: PollManager — N event loops and the load balancer that picks one per new connection
// (netpoll's manager and `SetNumLoops`, `RoundRobin` / `Random`; seed 003).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "reactor/poll.h"
#include "reactor/result.h"

namespace faultloop {

/// How PollManager::pick() chooses a loop (netpoll LoadBalance).
enum class LoadBalance : uint8_t {
  kRoundRobin,  ///< 0, 1, ..., N-1, 0, ...
  kRandom,      ///< uniformly at random (a per-manager PRNG, seeded by the options)
};

/// Options of a PollManager.
struct PollManagerOptions {
  int num_loops = 1;                               ///< N >= 1 (set_num_loops)
  LoadBalance balance = LoadBalance::kRoundRobin;  ///< pick() policy
  TriggerMode trigger = TriggerMode::kLevel;       ///< for every loop
  std::shared_ptr<const Clock> clock;              ///< shared by every loop; null: SteadyClock
  uint64_t seed = 0;                               ///< kRandom's PRNG seed
};

/// N Polls, each on its own thread `fl-poll-<i>`.
class PollManager {
 public:
  /// Creates the loops (no threads yet). Errors: num_loops < 1 is std::errc::invalid_argument;
  /// otherwise the first Poll::create error.
  static Result<std::unique_ptr<PollManager>> create(PollManagerOptions options);

  /// Stops and joins every loop.
  ~PollManager();
  PollManager(const PollManager&) = delete;
  PollManager& operator=(const PollManager&) = delete;

  /// Starts every loop's thread.
  void start();

  /// Stops every loop and joins the threads. Idempotent.
  void stop();

  /// The loop for a new connection, by the balance policy. Thread-safe; lock-free.
  Poll& pick();

  /// Loop `i` (0 <= i < size()).
  Poll& loop(std::size_t i) { return *loops_.at(i); }

  /// N.
  std::size_t size() const { return loops_.size(); }

 private:
  explicit PollManager(PollManagerOptions options) : options_(std::move(options)) {}

  PollManagerOptions options_;
  std::vector<std::unique_ptr<Poll>> loops_;
  std::atomic<uint64_t> next_{0};
};

}  // namespace faultloop
