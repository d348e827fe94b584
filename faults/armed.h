// Public: the armed flag — the one relaxed load the seam makes on every call (DESIGN "Armed
// flag"). Split from engine.h so the seam's inline parts (race points) can test it cheaply.
#pragma once

#include <atomic>
#include <cstdint>

namespace faultloop::faults {

/// Why the armed flag is on (DESIGN "Armed flag"): a bit each; armed() is "any bit set".
enum ArmReason : uint32_t {
  kArmRules = 1u << 0,      ///< a plan with at least one rule is armed
  kArmFdState = 1u << 1,    ///< some fd is in an emulated reset / peer-closed state
  kArmSynthetic = 1u << 2,  ///< a synthetic epoll event is queued
  kArmEmfile = 1u << 3,     ///< an injected EMFILE lasts until the next close
  kArmReplay = 1u << 4,     ///< a trace is being replayed
  kArmScenario = 1u << 5,   ///< a harness scenario runs (identity checks always on)
  kArmLibfiu = 1u << 6,     ///< libfiu control is active (stays on for the process)
};

namespace detail {
/// The armed flag: ArmReason bits. Read relaxed by the seam on every call.
extern constinit std::atomic<uint32_t> g_armed;
}  // namespace detail

/// True when the seam must consult the engine. One relaxed load.
inline bool armed() { return detail::g_armed.load(std::memory_order_relaxed) != 0; }

}  // namespace faultloop::faults
