#include "faults/fd_ledger.h"

#include <fmt/format.h>
#include <unistd.h>

#include <climits>
#include <mutex>
#include <unordered_map>

#include "faults/context.h"
#include "faults/detail/fd_table.h"
#include "faults/events.h"

namespace faultloop::faults {

namespace detail {

std::atomic<FdEntry*> g_fd_chunks[kMaxFds / kChunkFds] = {};

namespace {

std::atomic<uint64_t> g_opened{0};
std::atomic<uint64_t> g_closed{0};

// Violations are rare: a mutex and a vector are enough.
std::mutex g_violations_mu;
std::vector<Violation> g_violations;

// Connection ordinals: order of first appearance in sys::tag.
std::mutex g_ordinals_mu;
std::unordered_map<uint64_t, uint32_t> g_ordinals;

uint32_t ordinal_of(uint64_t conn) {
  if (conn == 0) {
    return 0;
  }
  std::lock_guard lock(g_ordinals_mu);
  auto [it, inserted] = g_ordinals.try_emplace(conn, static_cast<uint32_t>(g_ordinals.size() + 1));
  return it->second;
}

void record(ViolationKind kind, int fd, PointId point, const FdEntry* entry, uint64_t caller) {
  Violation v;
  v.kind = kind;
  v.fd = fd;
  v.point = point_info(point).name;
  if (entry != nullptr) {
    v.role = std::string(role_name(entry->role.load(std::memory_order_relaxed)));
    v.owner_conn = entry->conn.load(std::memory_order_relaxed);
    v.generation = entry->generation.load(std::memory_order_relaxed);
  }
  v.caller_conn = caller;
  if (events_enabled()) {
    emit_event("violation", {{"kind", std::string(violation_name(kind))},
                             {"fd", int64_t{fd}},
                             {"point", v.point},
                             {"role", v.role},
                             {"owner_conn", v.owner_conn},
                             {"caller_conn", v.caller_conn},
                             {"generation", uint64_t{v.generation}}});
  }
  std::lock_guard lock(g_violations_mu);
  g_violations.push_back(std::move(v));
}

}  // namespace

FdEntry* find_fd_entry(int fd) {
  if (fd < 0 || fd >= kMaxFds) {
    return nullptr;
  }
  FdEntry* chunk = g_fd_chunks[fd / kChunkFds].load(std::memory_order_acquire);
  return chunk == nullptr ? nullptr : &chunk[fd % kChunkFds];
}

FdEntry* fd_entry(int fd) {
  if (fd < 0 || fd >= kMaxFds) {
    return nullptr;
  }
  std::atomic<FdEntry*>& slot = g_fd_chunks[fd / kChunkFds];
  FdEntry* chunk = slot.load(std::memory_order_acquire);
  if (chunk == nullptr) {
    // Chunks are never freed: entries must outlive every thread that may hold a pointer.
    auto* fresh = new FdEntry[kChunkFds];
    if (slot.compare_exchange_strong(chunk, fresh, std::memory_order_acq_rel)) {
      chunk = fresh;
    } else {
      delete[] fresh;  // another thread installed the chunk first; `chunk` holds it
    }
  }
  return &chunk[fd % kChunkFds];
}

void ledger_open(int fd, RoleId role) {
  FdEntry* e = fd_entry(fd);
  g_opened.fetch_add(1, std::memory_order_relaxed);
  if (e == nullptr) {
    return;
  }
  for (auto& c : e->calls) {
    c.store(0, std::memory_order_relaxed);
  }
  e->role.store(role, std::memory_order_relaxed);
  e->conn.store(0, std::memory_order_relaxed);
  e->conn_ordinal.store(0, std::memory_order_relaxed);
  e->generation.fetch_add(1, std::memory_order_relaxed);
  e->state.store(FdState::kOpen, std::memory_order_release);
}

void ledger_close(int fd, PointId point, bool armed) {
  FdEntry* e = fd_entry(fd);
  if (e == nullptr) {
    return;
  }
  const uint64_t caller = tls_context.conn;
  // One exchange: of two threads closing the same fd at once, exactly one sees it open.
  // Recorded before the real close, so an accept4 in another thread that gets this number
  // right after is never confused with it.
  const FdState before = e->state.exchange(FdState::kClosed, std::memory_order_acq_rel);
  if (before == FdState::kClosed) {
    record(ViolationKind::kDoubleClose, fd, point, e, caller);
  } else if (before == FdState::kUnknown) {
    record(ViolationKind::kForeignClose, fd, point, e, caller);
  } else {
    const uint64_t owner = e->conn.load(std::memory_order_relaxed);
    if (armed && owner != 0 && caller != 0 && owner != caller) {
      record(ViolationKind::kCrossTalk, fd, point, e, caller);
    }
    e->last_conn.store(owner, std::memory_order_relaxed);
    g_closed.fetch_add(1, std::memory_order_relaxed);
  }
}

void ledger_tag(int fd, RoleId role, uint64_t conn) {
  FdEntry* e = fd_entry(fd);
  if (e == nullptr) {
    return;
  }
  e->role.store(role, std::memory_order_relaxed);
  e->conn.store(conn, std::memory_order_relaxed);
  e->conn_ordinal.store(ordinal_of(conn), std::memory_order_relaxed);
}

FdEntry* ledger_check(int fd, PointId point) {
  FdEntry* e = fd_entry(fd);
  if (e == nullptr) {
    return nullptr;
  }
  const uint64_t caller = tls_context.conn;
  const FdState state = e->state.load(std::memory_order_acquire);
  if (state == FdState::kClosed) {
    record(ViolationKind::kCallAfterClose, fd, point, e, caller);
  } else if (state == FdState::kOpen && caller != 0) {
    const uint64_t owner = e->conn.load(std::memory_order_relaxed);
    // A call by a connection other than the owner; or, before the new owner tagged the
    // number, by the connection that owned it before it was closed (gnet #621).
    if ((owner != 0 && owner != caller) ||
        (owner == 0 && e->last_conn.load(std::memory_order_relaxed) == caller)) {
      record(ViolationKind::kCrossTalk, fd, point, e, caller);
    }
  }
  return e;
}

void ledger_clear_violations() {
  {
    std::lock_guard lock(g_violations_mu);
    g_violations.clear();
  }
  // engine reset() is "back to a fresh process": connection ordinals restart at 1 too, so a
  // trace recorded after one reset replays after another even when the reactor hands out
  // different connection ids (replay keys on the ordinal, DESIGN "Trace").
  std::lock_guard lock(g_ordinals_mu);
  g_ordinals.clear();
}

}  // namespace detail

const char* violation_name(ViolationKind kind) {
  switch (kind) {
    case ViolationKind::kDoubleClose:
      return "double_close";
    case ViolationKind::kForeignClose:
      return "foreign_close";
    case ViolationKind::kCallAfterClose:
      return "call_after_close";
    case ViolationKind::kCrossTalk:
      return "fd_reuse_cross_talk";
  }
  return "unknown";
}

std::string Violation::to_string() const {
  return fmt::format("{} fd={} point={} role={} owner_conn={} caller_conn={} generation={}",
                     violation_name(kind), fd, point, role.empty() ? "other" : role, owner_conn,
                     caller_conn, generation);
}

std::vector<OpenFd> open_fds() {
  std::vector<OpenFd> out;
  detail::for_each_fd_entry([&](int fd, detail::FdEntry& e) {
    if (e.state.load(std::memory_order_acquire) != detail::FdState::kOpen) {
      return;
    }
    OpenFd o;
    o.fd = fd;
    o.role = std::string(role_name(e.role.load(std::memory_order_relaxed)));
    o.conn = e.conn.load(std::memory_order_relaxed);
    o.generation = e.generation.load(std::memory_order_relaxed);
    char link[PATH_MAX];
    const std::string proc = fmt::format("/proc/self/fd/{}", fd);
    const ssize_t n = ::readlink(proc.c_str(), link, sizeof link - 1);
    o.target = n < 0 ? std::string("(not open in the kernel)") : std::string(link, size_t(n));
    out.push_back(std::move(o));
  });
  return out;
}

std::vector<Violation> violations() {
  std::lock_guard lock(detail::g_violations_mu);
  return detail::g_violations;
}

std::vector<Violation> take_violations() {
  std::lock_guard lock(detail::g_violations_mu);
  std::vector<Violation> out;
  out.swap(detail::g_violations);
  return out;
}

LedgerCounts ledger_counts() {
  return {detail::g_opened.load(std::memory_order_relaxed),
          detail::g_closed.load(std::memory_order_relaxed)};
}

}  // namespace faultloop::faults
