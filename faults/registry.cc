// Internal: the registry of fault points, fd roles and thread kinds (faults/registry.h).
//
// Each table is fixed-capacity and only grows: an entry is written completely under the
// table's mutex and then published by a release store of the count, so readers by id
// (point_info, role_name, thread_kind_name) need only an acquire load and no lock. The tables
// are created on first use and never destroyed, so registration from static initialisers of
// other libraries and lookups during process exit are both safe.
#include "faults/registry.h"

#include <array>
#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>

namespace faultloop::faults {
namespace {

/// The point table.
struct PointTable {
  std::mutex mutex;
  std::array<PointInfo, kMaxPoints> infos;
  std::atomic<std::size_t> count{0};
};

/// A table of names (roles or thread kinds); id 0 is "other".
struct NameTable {
  NameTable() {
    names[0] = "other";
    count.store(1, std::memory_order_release);
  }
  std::mutex mutex;
  std::array<std::string, kMaxNames> names;
  std::atomic<std::size_t> count{0};
};

PointTable& points() {
  // Leaked on purpose: lookups may run from other static destructors at exit.
  static PointTable* const kTable = new PointTable;
  return *kTable;
}

NameTable& roles() {
  static NameTable* const kTable = new NameTable;
  return *kTable;
}

NameTable& thread_kinds() {
  static NameTable* const kTable = new NameTable;
  return *kTable;
}

bool same_fields(const PointInfo& a, const PointInfo& b) {
  return a.kind == b.kind && a.default_errno == b.default_errno && a.actions == b.actions &&
         a.traits == b.traits;
}

std::optional<uint16_t> find_name_locked(const NameTable& table, std::string_view name) {
  const std::size_t count = table.count.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < count; ++i) {
    if (table.names[i] == name) {
      return static_cast<uint16_t>(i);
    }
  }
  return std::nullopt;
}

uint16_t register_name(NameTable& table, std::string_view name, const char* what) {
  if (!is_valid_segment(name)) {
    throw std::invalid_argument(std::string("invalid ") + what + " name \"" + std::string(name) +
                                "\" (expected [a-z0-9_]+)");
  }
  const std::lock_guard lock(table.mutex);
  if (auto id = find_name_locked(table, name)) {
    return *id;
  }
  const std::size_t count = table.count.load(std::memory_order_relaxed);
  if (count >= kMaxNames) {
    throw std::length_error(std::string("too many ") + what + " names (max " +
                            std::to_string(kMaxNames) + "): cannot register \"" +
                            std::string(name) + "\"");
  }
  table.names[count] = std::string(name);
  table.count.store(count + 1, std::memory_order_release);
  return static_cast<uint16_t>(count);
}

std::optional<uint16_t> find_name(NameTable& table, std::string_view name) {
  const std::lock_guard lock(table.mutex);
  return find_name_locked(table, name);
}

std::string_view name_of(const NameTable& table, uint16_t id, const char* what) {
  if (id >= table.count.load(std::memory_order_acquire)) {
    throw std::out_of_range(std::string("unregistered ") + what + " id " + std::to_string(id));
  }
  return table.names[id];
}

}  // namespace

std::string_view action_name(ActionKind kind) {
  switch (kind) {
    case ActionKind::kError:
      return "error";
    case ActionKind::kShort:
      return "short";
    case ActionKind::kEvents:
      return "events";
    case ActionKind::kReset:
      return "reset";
    case ActionKind::kDelay:
      return "delay";
    case ActionKind::kYield:
      return "yield";
  }
  return "?";
}

bool is_valid_point_name(std::string_view name) {
  while (true) {
    const std::size_t slash = name.find('/');
    if (!is_valid_segment(name.substr(0, slash))) {
      return false;
    }
    if (slash == std::string_view::npos) {
      return true;
    }
    name.remove_prefix(slash + 1);
  }
}

bool is_valid_segment(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  for (const char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      return false;
    }
  }
  return true;
}

PointId register_point(const PointInfo& info) {
  if (!is_valid_point_name(info.name)) {
    throw std::invalid_argument("invalid point name \"" + info.name +
                                "\" (expected segments of [a-z0-9_] joined by '/')");
  }
  if ((info.actions & ~kAllActions) != 0) {
    throw std::invalid_argument("point \"" + info.name + "\": unknown action bits in its mask");
  }
  if (info.kind == PointKind::kRace && (info.actions & ~kRaceActions) != 0) {
    throw std::invalid_argument("race point \"" + info.name +
                                "\": only delay and yield are legal on race points");
  }
  PointTable& table = points();
  const std::lock_guard lock(table.mutex);
  const std::size_t count = table.count.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < count; ++i) {
    if (table.infos[i].name == info.name) {
      if (!same_fields(table.infos[i], info)) {
        throw std::invalid_argument("point \"" + info.name +
                                    "\" is already registered with different fields");
      }
      return static_cast<PointId>(i);
    }
  }
  if (count >= kMaxPoints) {
    throw std::length_error("too many fault points (max " + std::to_string(kMaxPoints) +
                            "): cannot register \"" + info.name + "\"");
  }
  table.infos[count] = info;
  table.count.store(count + 1, std::memory_order_release);
  return static_cast<PointId>(count);
}

std::optional<PointId> find_point(std::string_view name) {
  PointTable& table = points();
  const std::lock_guard lock(table.mutex);
  const std::size_t count = table.count.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < count; ++i) {
    if (table.infos[i].name == name) {
      return static_cast<PointId>(i);
    }
  }
  return std::nullopt;
}

const PointInfo& point_info(PointId id) {
  const PointTable& table = points();
  if (id >= table.count.load(std::memory_order_acquire)) {
    throw std::out_of_range("unregistered point id " + std::to_string(id));
  }
  return table.infos[id];
}

std::size_t point_count() {
  return points().count.load(std::memory_order_acquire);
}

std::vector<PointId> match_points(std::string_view pattern) {
  std::vector<PointId> ids;
  const bool wildcard = pattern.size() >= 2 && pattern.substr(pattern.size() - 2) == "/*";
  // "a/b/*" matches every name that starts with "a/b/" (keep the slash: not "a/bc").
  const std::string_view prefix = wildcard ? pattern.substr(0, pattern.size() - 1) : pattern;
  PointTable& table = points();
  const std::lock_guard lock(table.mutex);
  const std::size_t count = table.count.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < count; ++i) {
    const std::string_view name = table.infos[i].name;
    if (wildcard ? name.starts_with(prefix) : name == pattern) {
      ids.push_back(static_cast<PointId>(i));
    }
  }
  return ids;
}

RoleId register_role(std::string_view name) {
  return register_name(roles(), name, "role");
}

std::optional<RoleId> find_role(std::string_view name) {
  return find_name(roles(), name);
}

std::string_view role_name(RoleId id) {
  return name_of(roles(), id, "role");
}

ThreadKindId register_thread_kind(std::string_view name) {
  return register_name(thread_kinds(), name, "thread kind");
}

std::optional<ThreadKindId> find_thread_kind(std::string_view name) {
  return find_name(thread_kinds(), name);
}

std::string_view thread_kind_name(ThreadKindId id) {
  return name_of(thread_kinds(), id, "thread kind");
}

}  // namespace faultloop::faults
