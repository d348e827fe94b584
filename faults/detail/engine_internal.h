// Internal: pieces of the engine shared between its translation units (engine.cc, trace.cc,
// events.cc): the replay table and the trace/summary hooks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>

#include "faults/plan.h"
#include "faults/registry.h"
#include "faults/trace.h"

namespace faultloop::faults::detail {

/// The replay key of DESIGN "Trace": (point, role, connection ordinal, per-fd call index).
struct ReplayKey {
  PointId point = 0;          ///< the call's point
  RoleId role = 0;            ///< the target fd's role
  uint32_t conn_ordinal = 0;  ///< the target fd's connection ordinal (0 = none)
  uint64_t fd_call = 0;       ///< 1-based index of the point's calls on the fd
  friend bool operator==(const ReplayKey&, const ReplayKey&) = default;
};

/// Hash of a ReplayKey.
struct ReplayKeyHash {
  std::size_t operator()(const ReplayKey& k) const noexcept;
};

/// A loaded replay: immutable once installed.
struct ReplayTable {
  std::unordered_map<ReplayKey, Action, ReplayKeyHash> actions;  ///< what fires at each key
};

/// Installs `table` (replacing any earlier one) and sets kArmReplay; nullptr uninstalls.
void install_replay(std::unique_ptr<ReplayTable> table);

/// True while a trace file is open (trace.cc).
bool trace_enabled();

/// Numbers `record` (seq: 1, 2, ... in file order) and appends it to the open trace, flushed
/// at once (trace.cc). Thread-safe.
void trace_write(TraceRecord record);

/// The next record written is seq 1 again (engine reset()).
void trace_restart_numbering();

/// CLOCK_MONOTONIC in nanoseconds.
uint64_t monotonic_ns();

/// splitmix64 as a pure function of its input (DESIGN "Selectors": draws are counter-based).
constexpr uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace faultloop::faults::detail
