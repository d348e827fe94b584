// Public: the registry of fault points, fd roles and thread kinds.
//
// faults/ knows nothing of the reactor (DESIGN, dependency DAG): the seam registers its
// syscall points, the reactor its race points, roles ("listener", "conn", ...) and thread
// kinds ("poller", "worker", ...) here, by name. Plans are validated against what is
// registered when they are parsed, so registration happens at static initialisation of the
// registering library (or by an explicit call) before any plan is parsed.
//
// Registration takes a mutex; lookups by id are lock-free (fixed-capacity tables that only
// grow), so the seam's armed path can read point, role and thread-kind data without locks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace faultloop::faults {

/// The six fault actions of DESIGN ("Actions"), one per rule.
enum class ActionKind : uint8_t { kError = 0, kShort, kEvents, kReset, kDelay, kYield };

/// A set of ActionKinds: bit `1 << ActionKind`.
using ActionMask = uint32_t;

/// The bit of `kind` in an ActionMask.
constexpr ActionMask action_bit(ActionKind kind) {
  return ActionMask{1} << static_cast<unsigned>(kind);
}

/// Every action: what a race point is *not* allowed (only delay and yield are).
constexpr ActionMask kAllActions = 0x3f;

/// The actions legal on a race point (DESIGN "Race points": delay and yield only).
constexpr ActionMask kRaceActions = action_bit(ActionKind::kDelay) | action_bit(ActionKind::kYield);

/// The spelling of an action kind in the plan grammar ("error", "short", ...).
std::string_view action_name(ActionKind kind);

/// What kind of place a point is: a syscall of the seam or a race point in lifecycle code.
enum class PointKind : uint8_t { kSyscall, kRace };

/// What a syscall point does, so the engine can keep its injected states realistic without
/// knowing the reactor: which calls move data, make or close fds, or poll.
enum PointTrait : uint32_t {
  kTraitNone = 0,             ///< none of the below
  kTraitReads = 1u << 0,      ///< read, readv, recvmsg: data flows in; EOF is 0
  kTraitWrites = 1u << 1,     ///< write, writev, sendmsg: data flows out; EPIPE after reset
  kTraitCreatesFd = 1u << 2,  ///< returns a new fd (socket, accept4, open, epoll_create1, ...)
  kTraitClosesFd = 1u << 3,   ///< close
  kTraitEpollWait = 1u << 4,  ///< epoll_wait: `events` rules edit its output
  kTraitEpollCtl = 1u << 5,   ///< epoll_ctl: shadowed by the engine
  kTraitSockopt = 1u << 6,    ///< getsockopt: SO_ERROR consumes a pending reset
  kTraitSocketIo = 1u << 7,   ///< a socket I/O call: `reset` and ECONNRESET/EPIPE are legal
};

/// One registered fault point.
struct PointInfo {
  std::string name;            ///< libfiu-style path: "reactor/sys/readv"
  PointKind kind = PointKind::kSyscall;
  int default_errno = 0;       ///< errno of a bare libfiu enable (no failinfo); 0 on race points
  ActionMask actions = 0;      ///< the actions legal here
  uint32_t traits = kTraitNone;  ///< PointTrait bits
};

/// Small dense id of a registered point (0 .. point_count() - 1).
using PointId = uint16_t;
/// Small dense id of a registered role (< kMaxNames; 0 is "other").
using RoleId = uint16_t;
/// Small dense id of a registered thread kind (< kMaxNames; 0 is "other").
using ThreadKindId = uint16_t;

/// Capacity of the point table. Registration beyond it throws std::length_error.
inline constexpr std::size_t kMaxPoints = 256;
/// Capacity of the role and thread-kind tables (ids fit a 64-bit mask).
inline constexpr std::size_t kMaxNames = 64;

/// The role of an fd nobody tagged ("other").
inline constexpr RoleId kRoleOther = 0;
/// The thread kind of a thread nobody registered ("other").
inline constexpr ThreadKindId kThreadOther = 0;

/// Registers `info` and returns its id. Idempotent: registering the same name again with the
/// same fields returns the first id. Throws std::invalid_argument when the name is not a valid
/// point path (segments of [a-z0-9_] joined by '/') or differs from an earlier registration.
PointId register_point(const PointInfo& info);

/// The point named exactly `name`, if registered.
std::optional<PointId> find_point(std::string_view name);

/// The info of a registered point; `id` must come from register_point or find_point.
const PointInfo& point_info(PointId id);

/// How many points are registered (ids are 0 .. point_count() - 1).
std::size_t point_count();

/// The points a plan pattern names: an exact name, or a prefix followed by "/*", which
/// matches every registered point below that prefix. Empty when nothing matches.
std::vector<PointId> match_points(std::string_view pattern);

/// Registers a role name ([a-z0-9_]+) and returns its id; idempotent. "other" is id 0.
/// Throws std::invalid_argument on a bad name, std::length_error beyond kMaxNames.
RoleId register_role(std::string_view name);
/// The id of a registered role.
std::optional<RoleId> find_role(std::string_view name);
/// The name of a registered role ("other" for kRoleOther).
std::string_view role_name(RoleId id);

/// Registers a thread kind ([a-z0-9_]+) and returns its id; idempotent. "other" is id 0.
/// Throws like register_role.
ThreadKindId register_thread_kind(std::string_view name);
/// The id of a registered thread kind.
std::optional<ThreadKindId> find_thread_kind(std::string_view name);
/// The name of a registered thread kind.
std::string_view thread_kind_name(ThreadKindId id);

/// True when `name` is a valid segment ([a-z0-9_]+): role, thread-kind and point segments.
bool is_valid_segment(std::string_view name);

/// True when `name` is a valid point path: segments joined by '/' ("reactor/sys/readv").
bool is_valid_point_name(std::string_view name);

}  // namespace faultloop::faults
