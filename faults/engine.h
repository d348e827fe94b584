// Public: the fault engine — arming plans, the armed flag, synthetic epoll events, libfiu as
// the control plane, the fixture environment, and what the engine saw (rule statistics).
//
// The engine is process-global (like libfiu's table of enabled points): tests reset it in
// SetUp and disarm it in TearDown (faultloop::testing::FaultTest does both).
//
// Call path (DESIGN "reactor/sys"): the seam tests armed() — one relaxed load — and only when
// it is set asks the engine (faults/seam_api.h). Rules are evaluated lock-free from an
// immutable snapshot swapped atomically; each rule has its own atomic counters.
//
// Limits of the epoll emulation, known and deliberate:
//  - `events` rules are evaluated when epoll_wait returns (the unit is a call and a registered
//    fd): on a loop blocked with no timeout and no traffic they fire at its next wake-up;
//  - EPOLLONESHOT is not modelled: re-reports and synthetic events reach a one-shot
//    registration the kernel has disabled (the reactor does not use EPOLLONESHOT);
//  - synthetic events are matched to fds by the registered epoll_data: two fds registered with
//    the same data in one set share them.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "faults/armed.h"
#include "faults/plan.h"

namespace faultloop::faults {

/// The ArmReason bits currently set (for tests and diagnostics).
uint32_t armed_reasons();

/// Arms `plan` in place of any earlier one. Counting starts now (DESIGN "Selectors"): each
/// rule's eligible-call counter starts at 0. `seed` and `iteration` feed every rule's seed:
///   rule_seed = splitmix64(rule.seed or seed) ^ splitmix64(iteration) ^ splitmix64(index).
/// Arm before loops start, or rely on the release store / acquire load of the snapshot.
void arm(const Plan& plan, uint64_t seed = 0, uint64_t iteration = 0);

/// Removes the armed plan (rules stop firing). Emulated fd states, synthetic events, sticky
/// EMFILE and a replay stay until reset(): they model kernel state, which a disarm does not
/// undo.
void disarm();

/// Back to a fresh process: no plan, no replay, no fd states, no synthetic events, no sticky
/// EMFILE, scenario flag off, statistics and ledger violations cleared. The ledger keeps which
/// fds are open. libfiu control, once on, stays on. Call while no seam call is in flight.
void reset();

/// Sets or clears kArmScenario: while set, every seam call runs the ledger's identity checks
/// even with no rule armed (the harness arms it for every scenario).
void set_scenario_armed(bool on);

/// Turns libfiu control on for the rest of the process (fiu_init plus the armed bit): the seam
/// then also asks fiu_fail("reactor/sys/<call>") after our rules and applies the point's
/// default action (errno = failinfo when given, else the point's default errno).
/// Called automatically at start-up when FIU_ENABLE or FIU_CTRL_FIFO is in the environment
/// (fiu-run sets both).
void enable_libfiu();

/// True once enable_libfiu() ran.
bool libfiu_enabled();

/// Statistics of one rule of the armed plan.
struct RuleStats {
  std::string rule;       ///< the rule's compact spelling
  uint64_t eligible = 0;  ///< eligible calls counted since arming
  uint64_t injected = 0;  ///< times it fired
};

/// Per-rule statistics of the armed plan, in plan order (empty when nothing is armed).
std::vector<RuleStats> rule_stats();

/// Injections made since the last reset(), from any source (rules, replay, libfiu, states).
uint64_t injection_count();

/// Queues a synthetic epoll event for `fd` in every shadowed epoll set that has it registered
/// (masked by its interest set; EPOLLHUP and EPOLLERR always pass). A poller blocked in
/// epoll_wait on such a set wakes up (through the set's engine-owned eventfd). Returns how many
/// sets it was queued in.
int queue_event(int fd, uint32_t events);

/// What configure_from_environment() found.
struct EnvironmentConfig {
  std::string rules;        ///< FAULTLOOP_RULES
  std::string plan_file;    ///< FAULTLOOP_PLAN
  uint64_t seed = 0;        ///< FAULTLOOP_SEED (default 0)
  uint64_t iteration = 0;   ///< FAULTLOOP_ITERATION (default 0)
  std::string trace_file;   ///< FAULTLOOP_TRACE
  std::string events_file;  ///< FAULTLOOP_EVENTS
  std::string replay_file;  ///< FAULTLOOP_REPLAY (an extension: replay a trace in a fixture)
};

/// Reads the fixture environment of DESIGN and applies it: opens the trace and events files,
/// parses and arms FAULTLOOP_RULES or FAULTLOOP_PLAN (both set is an error), or loads
/// FAULTLOOP_REPLAY. Throws PlanError (bad plan, both plan variables, bad seed/iteration
/// number) or std::runtime_error (a file that cannot be opened), naming the variable.
EnvironmentConfig configure_from_environment();

}  // namespace faultloop::faults
