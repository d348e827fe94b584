// Public: the TOML form of a fault plan (FAULTLOOP_PLAN=FILE, and the plan embedded in
// scenario files). This header includes toml++, which is heavy: include it only where a TOML
// table is at hand (the TOML loaders and their tests); everything else uses faults/plan.h.
//
//   seed = 42                      # optional: the plan seed (Plan::seed)
//
//   [[faults]]
//   point = "reactor/sys/readv"    # exact name or "prefix/*"
//   short = "50%"                  # exactly one action key:
//                                  #   error = "EAGAIN" | short = 1 | short = "50%"
//                                  #   events = "+HUP|+RDHUP" | events = ["+HUP", "+RDHUP"]
//                                  #   reset = true | delay = "5ms" | yield = true
//   role = "conn|listener"         # or ["conn", "listener"]; thread = "poller"
//   nth = 2                        # fd, conn, nth, after, every, count, seed: integers >= 0
//   probability = 0.5              # float or integer in [0, 1]
//
// The fields go through the same checks as the compact grammar (faults/plan.h), so both forms
// report the same problems; here each message starts with "SOURCE:LINE:COLUMN: " of the
// offending key or value, and Rule::where is "SOURCE:LINE:COLUMN" of the rule's table.
#pragma once

#include "faults/plan.h"

#include <toml++/toml.h>

#include <string_view>
#include <vector>

namespace faultloop::faults {

/// Parses a whole plan table: optional top-level `seed`, `[[faults]]` rules; any other key is
/// an error. `source_name` names the file in messages (positions come from the table's nodes).
/// Throws PlanError "SOURCE:LINE:COLUMN: problem".
Plan parse_plan_toml(const toml::table& table, std::string_view source_name);

/// Parses the rules of a `faults` array (each element a table as in `[[faults]]`), for files
/// that embed the rules beside keys of their own. Throws like parse_plan_toml.
std::vector<Rule> parse_rules_toml(const toml::array& faults, std::string_view source_name);

/// Parses TOML text, then the plan. A TOML syntax error is a PlanError
/// "SOURCE:LINE:COLUMN: <toml++ description>".
Plan parse_plan_toml_text(std::string_view text, std::string_view source_name);

}  // namespace faultloop::faults
