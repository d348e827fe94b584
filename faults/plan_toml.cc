// Internal: the TOML form of a fault plan (faults/plan_toml.h) and parse_plan_file.
//
// Each field is turned into its compact spelling (or, for a float probability, its value) and
// handed to the checks the compact parser uses (faults/detail/plan_parse.h), so both forms
// give the same problems; here the place is the offending key or value's source position.
#include "faults/plan_toml.h"

#include "faults/detail/plan_parse.h"

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>

namespace faultloop::faults {
namespace {

using detail::quote;

/// "SOURCE:LINE:COLUMN" of `region`, or just SOURCE when the node has no position.
std::string location(std::string_view source_name, const toml::source_region& region) {
  std::string out(source_name);
  if (region.begin) {
    out += ':';
    out += std::to_string(region.begin.line);
    out += ':';
    out += std::to_string(region.begin.column);
  }
  return out;
}

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date/time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

/// Reads TOML nodes of one source and turns problems into located PlanErrors.
class Reader {
 public:
  explicit Reader(std::string_view source_name) : source_name_(source_name) {}

  [[noreturn]] void fail_at(const toml::source_region& region, std::string_view problem) const {
    throw PlanError(location(source_name_, region) + ": " + std::string(problem));
  }

  [[noreturn]] void rethrow_at(const toml::source_region& region, const PlanError& problem) const {
    detail::rethrow_at(location(source_name_, region), problem);
  }

  [[noreturn]] void wrong_type(const toml::key& key,
                               const toml::node& node,
                               std::string_view expected) const {
    fail_at(node.source(), "wrong type for " + quote(key.str()) + ": expected " +
                               std::string(expected) + ", got " + std::string(type_name(node)));
  }

  /// The entries of `table` in source order (toml::table iterates in key order).
  static std::vector<std::pair<const toml::key*, const toml::node*>> entries(
      const toml::table& table) {
    std::vector<std::pair<const toml::key*, const toml::node*>> out;
    for (auto&& [key, node] : table) {
      out.emplace_back(&key, &node);
    }
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
      const toml::source_position& pa = a.first->source().begin;
      const toml::source_position& pb = b.first->source().begin;
      return pa.line != pb.line ? pa.line < pb.line : pa.column < pb.column;
    });
    return out;
  }

  /// A string, or strings of an array joined with '|' ("role", "events").
  std::string joined_strings(const toml::key& key, const toml::node& node) const {
    if (const auto* text = node.as_string()) {
      return text->get();
    }
    const auto* array = node.as_array();
    if (array == nullptr) {
      wrong_type(key, node, "a string or an array of strings");
    }
    std::string out;
    bool first = true;
    for (const toml::node& element : *array) {
      const auto* text = element.as_string();
      if (text == nullptr) {
        wrong_type(key, element, "a string");
      }
      if (!first) {
        out += '|';
      }
      first = false;
      out += text->get();
    }
    return out;
  }

  /// The compact value of action `name` (nullopt for reset and yield).
  std::optional<std::string> action_value(const toml::key& key, const toml::node& node) const {
    const std::string_view name = key.str();
    if (name == "reset" || name == "yield") {
      const auto* flag = node.as_boolean();
      if (flag == nullptr) {
        wrong_type(key, node, "true");
      }
      if (!flag->get()) {
        fail_at(node.source(), quote(std::string(name) + " = false") +
                                   " is not allowed (leave the key out, or set it to true)");
      }
      return std::nullopt;
    }
    if (name == "events") {
      return joined_strings(key, node);
    }
    if (name == "short") {
      if (const auto* number = node.as_integer()) {
        return std::to_string(number->get());
      }
      if (const auto* text = node.as_string()) {
        return text->get();
      }
      wrong_type(key, node, "an integer (bytes) or a string like \"50%\"");
    }
    const auto* text = node.as_string();
    if (text == nullptr) {
      wrong_type(key, node, name == "error" ? "a string like \"EAGAIN\"" : "a string like \"5ms\"");
    }
    return text->get();
  }

  void apply_selector(Rule& rule,
                      const toml::key& key,
                      const toml::node& node,
                      detail::SelectorSet& seen) const {
    const std::string_view name = key.str();
    // Type checks first (located here), then the shared checks (located at the value).
    std::string text;
    std::optional<double> probability;
    if (name == "role") {
      text = joined_strings(key, node);
    } else if (name == "thread") {
      const auto* string = node.as_string();
      if (string == nullptr) {
        wrong_type(key, node, "a string");
      }
      text = string->get();
    } else if (name == "probability") {
      if (const auto* number = node.as_floating_point()) {
        probability = number->get();
      } else if (const auto* integer = node.as_integer()) {
        probability = static_cast<double>(integer->get());
      } else {
        wrong_type(key, node, "a number in [0, 1]");
      }
    } else {
      const auto* integer = node.as_integer();
      if (integer == nullptr) {
        wrong_type(key, node, "an integer");
      }
      text = std::to_string(integer->get());
    }
    try {
      if (probability) {
        detail::apply_probability(rule, *probability, seen);
      } else {
        detail::apply_selector(rule, name, text, seen);
      }
    } catch (const PlanError& problem) {
      rethrow_at(node.source(), problem);
    }
  }

  Rule rule(const toml::table& table) const {
    Rule rule;
    rule.where = location(source_name_, table.source());
    const toml::node* point = nullptr;
    const toml::key* point_key = nullptr;
    const toml::key* action_key = nullptr;
    const toml::node* action_node = nullptr;
    std::vector<std::pair<const toml::key*, const toml::node*>> selectors;
    for (const auto& [key, node] : entries(table)) {
      const std::string_view name = key->str();
      if (name == "point") {
        point = node;
        point_key = key;
      } else if (detail::action_from_name(name)) {
        if (action_key != nullptr) {
          fail_at(key->source(), "two actions " + quote(action_key->str()) + " and " + quote(name) +
                                     " (one action per rule)");
        }
        action_key = key;
        action_node = node;
      } else if (detail::is_selector_key(name)) {
        selectors.emplace_back(key, node);
      } else {
        fail_at(key->source(),
                "unknown key " + quote(name) +
                    " in [[faults]] (point; one action: error, short, events, reset, delay, "
                    "yield; selectors: role, thread, fd, conn, nth, after, every, count, seed, "
                    "probability)");
      }
    }
    if (point == nullptr) {
      fail_at(table.source(), "missing key \"point\" in [[faults]]");
    }
    const auto* pattern = point->as_string();
    if (pattern == nullptr) {
      wrong_type(*point_key, *point, "a string");
    }
    rule.point = pattern->get();
    try {
      rule.points = detail::resolve_points(rule.point);
    } catch (const PlanError& problem) {
      rethrow_at(point->source(), problem);
    }
    if (action_key == nullptr) {
      fail_at(table.source(),
              "missing action in [[faults]] (one of error, short, events, reset, delay, yield)");
    }
    const std::optional<std::string> value = action_value(*action_key, *action_node);
    try {
      rule.action = detail::parse_action_parts(action_key->str(), value);
    } catch (const PlanError& problem) {
      rethrow_at(action_node->source(), problem);
    }
    try {
      detail::restrict_to_legal_points(rule);
    } catch (const PlanError& problem) {
      rethrow_at(action_key->source(), problem);
    }
    detail::SelectorSet seen = 0;
    for (const auto& [key, node] : selectors) {
      apply_selector(rule, *key, *node, seen);
    }
    return rule;
  }

  std::vector<Rule> rules(const toml::array& faults) const {
    std::vector<Rule> out;
    for (const toml::node& element : faults) {
      const auto* table = element.as_table();
      if (table == nullptr) {
        fail_at(element.source(),
                "wrong type for an element of \"faults\": expected a table, got " +
                    std::string(type_name(element)));
      }
      out.push_back(rule(*table));
    }
    return out;
  }

 private:
  std::string_view source_name_;
};

}  // namespace

std::vector<Rule> parse_rules_toml(const toml::array& faults, std::string_view source_name) {
  return Reader(source_name).rules(faults);
}

Plan parse_plan_toml(const toml::table& table, std::string_view source_name) {
  const Reader reader(source_name);
  Plan plan;
  for (const auto& [key, node] : Reader::entries(table)) {
    const std::string_view name = key->str();
    if (name == "seed") {
      const auto* seed = node->as_integer();
      if (seed == nullptr) {
        reader.wrong_type(*key, *node, "an integer");
      }
      if (seed->get() < 0) {
        reader.fail_at(node->source(), "negative value in \"seed=" + std::to_string(seed->get()) +
                                           "\" (seed must be >= 0)");
      }
      plan.seed = static_cast<uint64_t>(seed->get());
    } else if (name == "faults") {
      const auto* faults = node->as_array();
      if (faults == nullptr) {
        reader.wrong_type(*key, *node, "an array of tables ([[faults]])");
      }
      plan.rules = reader.rules(*faults);
    } else {
      reader.fail_at(key->source(), "unknown key " + quote(name) + " in a plan (seed, [[faults]])");
    }
  }
  return plan;
}

Plan parse_plan_toml_text(std::string_view text, std::string_view source_name) {
  toml::table table;
  try {
    table = toml::parse(text, source_name);
  } catch (const toml::parse_error& error) {
    throw PlanError(location(source_name, error.source()) + ": " +
                    std::string(error.description()));
  }
  return parse_plan_toml(table, source_name);
}

Plan parse_plan_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const std::error_code error(errno, std::system_category());
    throw PlanError(path + ": cannot read plan file (" + error.message() + ")");
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) {
    throw PlanError(path + ": cannot read plan file");
  }
  return parse_plan_toml_text(content.str(), path);
}

}  // namespace faultloop::faults
