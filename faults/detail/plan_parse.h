// Internal: the one validation path shared by the compact plan parser (plan.cc) and the TOML
// plan parser (plan_toml.cc).
//
// Each function checks one field of a Rule and throws PlanError whose message is the problem
// only, quoting the fragment in its compact spelling (`out of range in "nth=0" (...)`); the
// caller prefixes where the field came from (`rule 2 "..."` or `plan.toml:4:7`). So both
// forms report the same problems.
#pragma once

#include "faults/plan.h"
#include "faults/registry.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace faultloop::faults::detail {

/// `text` in double quotes, for messages that quote the offending fragment.
std::string quote(std::string_view text);

/// The action named `name` ("error", "short", ...), if it is one.
std::optional<ActionKind> action_from_name(std::string_view name);

/// True when `key` is a selector key of the grammar (role, thread, fd, conn, nth, after,
/// every, count, seed, probability).
bool is_selector_key(std::string_view key);

/// Checks the syntax of a point pattern (exact name or "prefix/*") and returns the registered
/// points it matches. Throws PlanError for a bad name or when nothing matches.
std::vector<PointId> resolve_points(std::string_view pattern);

/// Parses action `name` with its value in compact spelling (nullopt: written without "=").
/// Throws PlanError for an unknown action, a missing, extra or bad value.
Action parse_action_parts(std::string_view name, std::optional<std::string_view> value);

/// Keeps in `rule.points` only the points where `rule.action` is legal (their action mask).
/// Throws PlanError when it is legal on none of them.
void restrict_to_legal_points(Rule& rule);

/// Selector keys already set on a rule (duplicates are errors).
using SelectorSet = uint32_t;

/// Sets selector `key` of `rule` from its value in compact spelling ("conn|listener", "3",
/// "0.25"; nullopt: written without "="). Throws PlanError for an unknown or duplicate key, an
/// unregistered role or thread kind, a malformed or out-of-range value.
void apply_selector(Rule& rule,
                    std::string_view key,
                    std::optional<std::string_view> value,
                    SelectorSet& seen);

/// Sets `rule.probability` after checking it is in [0, 1]; marks the key in `seen`.
void apply_probability(Rule& rule, double probability, SelectorSet& seen);

/// The shortest decimal spelling of `value` without exponent that parses back equal ("0.25").
std::string format_probability(double value);

/// Prefixes the message of a problem with where it happened: "<where>: <problem>".
[[noreturn]] void rethrow_at(std::string_view where, const PlanError& problem);

}  // namespace faultloop::faults::detail
