// Public: the fault trace — JSON Lines, one record per injection, each written and flushed at
// once so a crash keeps it — and replay (DESIGN "Trace").
//
// The first record is a header naming the scenario, the server command line, seed, iteration
// and plan. Replay re-fires each record at the same (point, role, connection ordinal, per-fd
// call index), a key that survives a different thread interleaving.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace faultloop::faults {

/// The first record of a trace.
struct TraceHeader {
  std::string scenario;              ///< scenario id ("close.user_close_during_request"), may be ""
  std::vector<std::string> command;  ///< the command line of the process under test
  uint64_t seed = 0;                 ///< the plan seed (FAULTLOOP_SEED)
  uint64_t iteration = 0;            ///< the iteration (FAULTLOOP_ITERATION)
  std::string plan;                  ///< the armed plan, compact spelling
};

/// One injection.
struct TraceRecord {
  uint64_t seq = 0;            ///< 1-based order of the record in the trace (file order)
  uint64_t ns = 0;             ///< CLOCK_MONOTONIC nanoseconds
  std::string thread;          ///< thread kind name
  std::string point;           ///< "reactor/sys/readv"
  int fd = -1;                 ///< target fd (for an `events` injection: the registered fd)
  std::string role;            ///< role of the target fd ("other" when untagged)
  uint64_t conn = 0;           ///< connection id of the target fd
  uint32_t conn_ordinal = 0;   ///< order of the connection's first appearance (0 = none)
  uint64_t fd_call = 0;        ///< 1-based index of this point's calls on this fd since it opened
  int rule = -1;               ///< plan rule index; -1 replay, -2 libfiu. The consequences of an
                               ///< emulated kernel state (reads 0 after a reset) are not records.
  std::string action;          ///< compact action: "error=EAGAIN", "short=1", "events=+HUP"
  int64_t result = 0;          ///< what the call returned
  std::string error;           ///< errno name when result is -1, else ""
};

/// A whole trace as read back.
struct Trace {
  TraceHeader header;                ///< the first record
  std::vector<TraceRecord> records;  ///< the injections, in file order
};

/// Starts writing a trace to `path` (truncating it) with `header` as its first record.
/// Throws std::runtime_error naming the path when it cannot be opened.
void open_trace(const std::string& path, const TraceHeader& header);

/// Stops writing the trace (no-op when none is open).
void close_trace();

/// Reads a trace file. Throws std::runtime_error naming path:line and the problem.
Trace read_trace(const std::string& path);

/// Writes `trace` to `path` (header then records), e.g. a subset made by shrink.
/// Throws std::runtime_error naming the path.
void write_trace(const std::string& path, const Trace& trace);

/// Replays `trace`: from now on every record fires at its (point, role, connection ordinal,
/// per-fd call index) instead of the plan's rules. Throws PlanError for a record naming an
/// unknown point or role or an illegal action.
void load_replay(const Trace& trace);

}  // namespace faultloop::faults
