// Public: fault plans — the rules the engine evaluates — and their two textual forms.
//
// The compact string grammar (DESIGN "Compact plan string", used by FAULTLOOP_RULES):
//
//   plan     = rule *( ";" rule )
//   rule     = point ":" action *( "," selector )
//   action   = "error=" ERRNO | "short=" UINT | "short=" UINT "%"
//            | "events=" ev *( "|" ev ) | "reset" | "delay=" DURATION | "yield"
//   selector = "role=" NAME *( "|" NAME ) | "thread=" NAME | KEY "=" NUMBER
//
// and the TOML form (FAULTLOOP_PLAN=FILE, `[[faults]]` tables; see plan_toml.h), which
// carries the same fields. Both are validated against the registry (faults/registry.h):
// unknown points, roles, thread kinds, actions, errnos, keys, actions illegal on a point and
// out-of-range values are PlanErrors that quote the offending fragment (compact form) or name
// file:line:column (TOML form).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "faults/registry.h"

namespace faultloop::faults {

/// A bad plan: the message names the place (quoted fragment, or file:line:column) and the
/// problem, e.g. `rule 2 "reactor/sys/redv:reset": unknown point "reactor/sys/redv"`.
class PlanError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// epoll event bits the `events` action may add or remove (EPOLLIN, EPOLLOUT, EPOLLHUP,
/// EPOLLRDHUP, EPOLLERR, EPOLLPRI — the values of <sys/epoll.h>).
inline constexpr uint32_t kEventBitsAllowed = 0x001 | 0x004 | 0x010 | 0x2000 | 0x008 | 0x002;

/// One action of a rule. Which fields are meaningful depends on `kind`.
struct Action {
  ActionKind kind = ActionKind::kError;
  int error = 0;                  ///< kError: the errno to inject (> 0)
  uint32_t short_bytes = 0;       ///< kShort: cap in bytes (>= 1), or 0 when short_percent is used
  uint32_t short_percent = 0;     ///< kShort: 1..99 % of the requested total (rounded down, >= 1 byte)
  uint32_t events_add = 0;        ///< kEvents: EPOLL* bits to add ("+IN")
  uint32_t events_remove = 0;     ///< kEvents: EPOLL* bits to remove ("-IN"; level mode only)
  std::chrono::nanoseconds delay{0};  ///< kDelay: how long to sleep before the real call

  /// The compact spelling: "error=EAGAIN", "short=50%", "events=+HUP|+RDHUP", "reset",
  /// "delay=5ms", "yield". parse_action(to_string()) gives back an equal Action.
  std::string to_string() const;
  friend bool operator==(const Action&, const Action&) = default;
};

/// One rule: a point pattern, an action, and selectors (DESIGN "Selectors").
struct Rule {
  std::string point;               ///< the pattern as written: exact name or "prefix/*"
  std::vector<PointId> points;     ///< the registered points it matched (at least one)
  Action action;
  std::vector<RoleId> roles;       ///< role=a|b; empty = any role
  std::optional<int> fd;           ///< fd=N
  std::optional<uint64_t> conn;    ///< conn=N (connection id as tagged by the reactor)
  std::optional<ThreadKindId> thread;  ///< thread=NAME
  uint64_t nth = 0;                ///< nth=K (1-based; 0 = unset)
  uint64_t after = 0;              ///< after=K (0 = unset)
  uint64_t every = 0;              ///< every=K (0 = unset)
  std::optional<uint64_t> count;   ///< count=N: at most N injections
  std::optional<uint64_t> seed;    ///< seed=S: the rule's own seed instead of the plan's
  double probability = 1.0;        ///< probability=P in [0, 1]
  std::string where;               ///< where the rule came from, for messages: `rule 2 "..."`
                                   ///< or "plan.toml:4:1"

  /// The compact spelling of the whole rule (canonical order: point, action, selectors).
  std::string to_string() const;
};

/// An ordered list of rules; rules on one point are tried in plan order, first fire wins.
struct Plan {
  std::vector<Rule> rules;         ///< in plan order
  std::optional<uint64_t> seed;    ///< top-level `seed` of a TOML plan, if given

  /// The compact spelling ("" for an empty plan); parse_plan(to_string()) round-trips.
  std::string to_string() const;
};

/// Parses the compact grammar. An empty or all-blank string is an empty plan. Throws PlanError.
Plan parse_plan(std::string_view text);

/// Parses one action (the part after "point:" up to the first ","), checked against the
/// points it will apply to. Throws PlanError quoting `text`. Used for replay records.
Action parse_action(std::string_view text, const std::vector<PointId>& points);

/// Reads and parses a TOML plan file (`[[faults]]` tables, optional top-level `seed`).
/// Throws PlanError naming path:line:column (or the path when it cannot be read).
Plan parse_plan_file(const std::string& path);

/// The errno value of a symbolic name ("EAGAIN" -> 11), if known.
std::optional<int> errno_from_name(std::string_view name);

/// The symbolic name of an errno value ("EAGAIN"), or "" when not in the table.
std::string_view errno_name(int value);

/// Parses "5ms", "10us", "1s", "250ns" (DURATION of the grammar). nullopt when malformed.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);

}  // namespace faultloop::faults
