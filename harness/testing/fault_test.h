// Public: faultloop::testing — the GoogleTest base fixture every faultloop test derives from.
//
// SetUp resets the fault engine (process-global, like libfiu's table of enabled points),
// records the ledger, fd and buffer-pool baselines, and picks the test's seed (FAULTLOOP_SEED, or a hash of
// the test's full name), reported with SCOPED_TRACE and RecordProperty("faultloop_seed").
// TearDown disarms everything and asserts that no fd opened through the seam during the test is
// still open and that the ledger saw no violation the test did not claim
// (faults::take_violations()), and that the reactor's NodePool has as many nodes and bytes handed
// out as at SetUp (the buffer-release invariant; every build). In release builds the ledger
// part is skipped and the fd count is checked.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace faultloop::testing {

/// Base fixture: reset in SetUp, disarm and leak-check in TearDown (STYLE 39).
class FaultTest : public ::testing::Test {
 protected:
  /// Resets the engine, picks and records the seed, records the baselines.
  void SetUp() override;
  /// Disarms, fails the test on unclaimed ledger violations and on fds left open, resets.
  void TearDown() override;

  /// The seed of this test: FAULTLOOP_SEED when set, else a hash of "Suite.Test".
  uint64_t seed() const { return seed_; }

  /// Parses `rules` (compact grammar) and arms them with this test's seed. A bad plan fails
  /// the test with the parser's message. Fault builds only (a no-op returning false in
  /// release, where nothing can be armed).
  bool arm(std::string_view rules, uint64_t iteration = 0);

 private:
  uint64_t seed_ = 0;
  int64_t fds_open_baseline_ = 0;
  int64_t pool_nodes_baseline_ = 0;
  int64_t pool_bytes_baseline_ = 0;
  // Fault build: (fd, generation) of the ledger's open fds at SetUp, so a leak that reuses the
  // number of a baseline fd closed during the test is still caught.
  std::vector<std::pair<int, uint32_t>> open_baseline_;
  std::optional<::testing::ScopedTrace> seed_trace_;
};

}  // namespace faultloop::testing
