#include "faults/engine.h"

#include <fiu-control.h>
#include <fiu.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "faults/context.h"
#include "faults/detail/engine_internal.h"
#include "faults/detail/fd_table.h"
#include "faults/events.h"
#include "faults/fd_ledger.h"
#include "faults/seam_api.h"
#include "faults/trace.h"

namespace faultloop::faults {

namespace detail {
constinit std::atomic<uint32_t> g_armed{0};
}  // namespace detail

constinit thread_local ThreadContext tls_context{};

namespace {

using detail::FdEntry;
using detail::IoState;
using detail::splitmix64;

// ---- the armed plan: an immutable snapshot, swapped atomically -------------------------------

struct CompiledRule {
  Rule rule;
  uint64_t seed = 0;       // rule_seed of DESIGN "Selectors"
  uint64_t role_mask = 0;  // bit per RoleId; 0 = any role
  std::atomic<uint64_t> eligible{0};
  std::atomic<uint64_t> injected{0};
};

struct Snapshot {
  std::vector<std::unique_ptr<CompiledRule>> rules;
  // Rule indices per point, plan order; sized to the points registered when armed (a point
  // registered later has no rule).
  std::vector<std::vector<uint16_t>> by_point;

  const std::vector<uint16_t>& rules_of(PointId point) const {
    static const std::vector<uint16_t> kNone;
    return point < by_point.size() ? by_point[point] : kNone;
  }
  bool has_events_rules = false;
};

std::atomic<Snapshot*> g_snapshot{nullptr};
std::atomic<detail::ReplayTable*> g_replay{nullptr};

// Retired snapshots and replay tables stay alive: a seam call on another thread may still be
// reading one. A snapshot is its rules plus one small vector per registered point (about 1 KB
// for the seam's points); a process arms a handful of plans, an in-process sweep thousands.
std::mutex g_admin_mu;
std::vector<std::unique_ptr<Snapshot>> g_retired_snapshots;
std::vector<std::unique_ptr<detail::ReplayTable>> g_retired_replays;

std::atomic<uint64_t> g_injections{0};
std::atomic<bool> g_libfiu{false};
std::atomic<bool> g_emfile_sticky{false};
std::atomic<int64_t> g_fds_in_state{0};
std::atomic<int64_t> g_synthetic_pending{0};
std::atomic<uint64_t> g_nofd_calls[kMaxPoints] = {};

void set_bit(uint32_t bit, bool on) {
  if (on) {
    detail::g_armed.fetch_or(bit, std::memory_order_release);
  } else {
    detail::g_armed.fetch_and(~bit, std::memory_order_release);
  }
}

// Bits that follow counters are recomputed under one mutex so that two threads moving a counter
// across zero cannot leave the bit wrong.
std::mutex g_bits_mu;
void refresh_counted_bits() {
  std::lock_guard lock(g_bits_mu);
  set_bit(kArmFdState, g_fds_in_state.load(std::memory_order_acquire) > 0);
  set_bit(kArmSynthetic, g_synthetic_pending.load(std::memory_order_acquire) > 0);
  set_bit(kArmEmfile, g_emfile_sticky.load(std::memory_order_acquire));
}

// ---- emulated kernel state per fd ---------------------------------------------------------

void enter_state(FdEntry* e, IoState state, bool reset_pending) {
  // A closed number has no kernel state to emulate: a call after close (a violation the ledger
  // reports) must not leave a state behind for the number's next owner. An fd the ledger never
  // saw (inherited, raw) is a real socket: it gets the state (on_open clears it when the number
  // is opened through the seam).
  if (e == nullptr || e->state.load(std::memory_order_acquire) == detail::FdState::kClosed) {
    return;
  }
  const IoState before = e->io_state.exchange(state, std::memory_order_acq_rel);
  e->reset_pending.store(reset_pending, std::memory_order_release);
  if (before == IoState::kNone) {
    g_fds_in_state.fetch_add(1, std::memory_order_acq_rel);
    refresh_counted_bits();
  }
}

void leave_state(FdEntry* e) {
  if (e == nullptr) {
    return;
  }
  e->reset_pending.store(false, std::memory_order_release);
  e->eof_seen.store(false, std::memory_order_relaxed);
  if (e->io_state.exchange(IoState::kNone, std::memory_order_acq_rel) != IoState::kNone) {
    g_fds_in_state.fetch_sub(1, std::memory_order_acq_rel);
    refresh_counted_bits();
  }
}

// The events a socket in `state` reports, before masking by the interest set (DESIGN
// "Realism", measured on a real RST: IN|ERR|HUP|RDHUP while the error is pending).
uint32_t state_events(IoState state, bool pending) {
  switch (state) {
    case IoState::kReset:
      return EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLOUT | (pending ? EPOLLERR : 0u);
    case IoState::kPeerHup:
      return EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLOUT;
    case IoState::kPeerRdhup:
      return EPOLLIN | EPOLLRDHUP;
    case IoState::kNone:
      break;
  }
  return 0;
}

// What the kernel reports for an fd registered with `interest`: EPOLLHUP and EPOLLERR always.
uint32_t mask_by_interest(uint32_t events, uint32_t interest) {
  return events & (interest | EPOLLHUP | EPOLLERR);
}

// ---- epoll shadows ------------------------------------------------------------------------

// Data of the engine's eventfd entry in a shadowed set; filtered out of every result.
constexpr uint64_t kWakeData = 0xfa171001fa171001ULL;

struct Registration {
  uint32_t events = 0;
  uint64_t data = 0;
  IoState reported = IoState::kNone;  // edge mode: the state last reported
};

struct Shadow {
  int epfd = -1;
  int wake_fd = -1;
  std::mutex mu;
  std::unordered_map<int, Registration> regs;
  std::vector<epoll_event> synthetic;  // data.fd holds the fd until delivery
  bool wake_signalled = false;
};

std::mutex g_shadows_mu;
std::unordered_map<int, std::shared_ptr<Shadow>> g_shadows;

std::shared_ptr<Shadow> find_shadow(int epfd) {
  std::lock_guard lock(g_shadows_mu);
  auto it = g_shadows.find(epfd);
  return it == g_shadows.end() ? nullptr : it->second;
}

void signal_wake(Shadow& s) {
  if (s.wake_fd >= 0 && !s.wake_signalled) {
    const uint64_t one = 1;
    // The engine's own fd: outside the seam, the ledger and fds_open by design.
    [[maybe_unused]] ssize_t n = ::write(s.wake_fd, &one, sizeof one);
    s.wake_signalled = true;
  }
}

void drain_wake(Shadow& s) {
  if (s.wake_fd >= 0 && s.wake_signalled) {
    uint64_t value = 0;
    [[maybe_unused]] ssize_t n = ::read(s.wake_fd, &value, sizeof value);
    s.wake_signalled = false;
  }
}

// Queues `events` for `fd` in `s` (caller holds s.mu). Returns whether it was registered there.
bool queue_locked(Shadow& s, int fd, uint32_t events) {
  auto it = s.regs.find(fd);
  if (it == s.regs.end()) {
    return false;
  }
  const uint32_t masked = mask_by_interest(events, it->second.events);
  if (masked == 0) {
    return true;
  }
  epoll_event ev{};
  ev.events = masked;
  ev.data.fd = fd;
  s.synthetic.push_back(ev);
  g_synthetic_pending.fetch_add(1, std::memory_order_acq_rel);
  refresh_counted_bits();  // the bit is set before the wake-up is signalled
  signal_wake(s);
  return true;
}

void drop_synthetic_locked(Shadow& s, int fd) {
  const auto before = s.synthetic.size();
  std::erase_if(s.synthetic, [fd](const epoll_event& ev) { return ev.data.fd == fd; });
  const auto dropped = static_cast<int64_t>(before - s.synthetic.size());
  if (dropped > 0) {
    g_synthetic_pending.fetch_sub(dropped, std::memory_order_acq_rel);
    refresh_counted_bits();
  }
  if (s.synthetic.empty()) {
    // Nothing left to wake a poller for. A wake-up left signalled would be reported by the
    // next epoll_wait on this set, which may take the unarmed path and hand the engine's
    // level-triggered eventfd to the caller on every call (a busy loop).
    drain_wake(s);
  }
}

// ---- rule evaluation ------------------------------------------------------------------------

bool selectors_match(const CompiledRule& r, RoleId role, uint64_t conn, int fd,
                     ThreadKindId thread) {
  if (r.role_mask != 0 && (role >= 64 || (r.role_mask & (uint64_t{1} << role)) == 0)) {
    return false;
  }
  if (r.rule.fd && *r.rule.fd != fd) {
    return false;
  }
  if (r.rule.conn && *r.rule.conn != conn) {
    return false;
  }
  if (r.rule.thread && *r.rule.thread != thread) {
    return false;
  }
  return true;
}

// Gates, draw and count cap for the k-th eligible call of `r` (DESIGN "Selectors").
bool fires(CompiledRule& r, uint64_t k) {
  const Rule& rule = r.rule;
  if (rule.nth != 0 && k != rule.nth) {
    return false;
  }
  if (rule.after != 0 && k <= rule.after) {
    return false;
  }
  if (rule.every != 0 && k % rule.every != 0) {
    return false;
  }
  if (rule.probability < 1.0) {
    const double u = static_cast<double>(splitmix64(r.seed + k) >> 11) * 0x1.0p-53;
    if (!(u < rule.probability)) {
      return false;
    }
  }
  if (rule.count) {
    uint64_t c = r.injected.load(std::memory_order_relaxed);
    do {
      if (c >= *rule.count) {
        return false;
      }
    } while (!r.injected.compare_exchange_weak(c, c + 1, std::memory_order_relaxed));
  } else {
    r.injected.fetch_add(1, std::memory_order_relaxed);
  }
  return true;
}

std::size_t short_cap(const Action& a, std::size_t requested) {
  if (a.short_bytes != 0) {
    return a.short_bytes;
  }
  // requested / 100 * percent plus the remainder's share: no overflow for any size_t.
  const std::size_t cap =
      requested / 100 * a.short_percent + requested % 100 * a.short_percent / 100;
  return cap == 0 ? 1 : cap;
}

// Turns a fired action into a verdict on a non-epoll_wait call, entering emulated states.
void apply(seam::Decision& d, const Action& a, int rule, const PointInfo& info, FdEntry* e) {
  d.injected = true;
  d.rule = rule;
  d.action = a;
  switch (a.kind) {
    case ActionKind::kError:
      d.verdict = seam::Decision::Verdict::kFail;
      d.error = a.error;
      if ((info.traits & kTraitCreatesFd) != 0 && a.error == EMFILE) {
        // The process is out of fds until something is closed (DESIGN "Realism").
        g_emfile_sticky.store(true, std::memory_order_release);
        refresh_counted_bits();
      }
      if ((info.traits & kTraitSocketIo) != 0 && (a.error == ECONNRESET || a.error == EPIPE)) {
        enter_state(e, IoState::kReset, /*reset_pending=*/false);  // this call consumed it
      }
      break;
    case ActionKind::kShort:
      d.verdict = seam::Decision::Verdict::kShort;
      d.cap = short_cap(a, d.requested);
      break;
    case ActionKind::kReset:
      // A received RST; this read or send is the first to see it, so it consumes the error.
      enter_state(e, IoState::kReset, /*reset_pending=*/false);
      d.verdict = seam::Decision::Verdict::kFail;
      d.error = ECONNRESET;
      break;
    case ActionKind::kDelay:
      std::this_thread::sleep_for(a.delay);
      break;
    case ActionKind::kYield:
      ::sched_yield();
      break;
    case ActionKind::kEvents:
      break;  // only on epoll_wait, per registered fd (epoll_wait_after)
  }
}

// Answers a data call from the emulated state of its fd. Returns true when answered.
bool answer_from_state(seam::Decision& d, const PointInfo& info, FdEntry* e) {
  const IoState state = e->io_state.load(std::memory_order_acquire);
  if (state == IoState::kNone) {
    return false;
  }
  const bool reads = (info.traits & kTraitReads) != 0;
  const bool writes = (info.traits & kTraitWrites) != 0;
  if (!reads && !writes) {
    return false;
  }
  if (state == IoState::kReset) {
    if (e->reset_pending.exchange(false, std::memory_order_acq_rel)) {
      d.verdict = seam::Decision::Verdict::kFail;
      d.error = ECONNRESET;
    } else if (reads) {
      d.verdict = seam::Decision::Verdict::kReturn;
      d.value = 0;
    } else {
      d.verdict = seam::Decision::Verdict::kFail;
      d.error = EPIPE;
    }
    return true;
  }
  if (reads) {
    if (e->eof_seen.load(std::memory_order_acquire)) {
      d.verdict = seam::Decision::Verdict::kReturn;
      d.value = 0;
      return true;
    }
    d.eof_on_eagain = true;  // buffered data first, then end of input
    return false;
  }
  if (state == IoState::kPeerHup) {
    d.verdict = seam::Decision::Verdict::kFail;
    d.error = EPIPE;
    return true;
  }
  return false;  // half-closed peer: writes still work
}

void write_trace_record(const seam::Decision& d, int fd, const FdEntry* e, int64_t result,
                        int error) {
  if (!detail::trace_enabled()) {
    return;
  }
  TraceRecord r;  // trace_write numbers it
  r.ns = detail::monotonic_ns();
  r.thread = std::string(thread_kind_name(tls_context.thread_kind));
  r.point = point_info(d.point).name;
  r.fd = fd;
  if (e != nullptr) {
    r.role = std::string(role_name(e->role.load(std::memory_order_relaxed)));
    r.conn = e->conn.load(std::memory_order_relaxed);
    r.conn_ordinal = e->conn_ordinal.load(std::memory_order_relaxed);
  } else {
    r.role = std::string(role_name(kRoleOther));
  }
  r.fd_call = d.fd_call;
  r.rule = d.rule;
  r.action = d.action.to_string();
  r.result = result;
  r.error = result < 0 ? std::string(errno_name(error)) : std::string();
  detail::trace_write(r);
}

RoleId role_of(const FdEntry* e) {
  return e == nullptr ? kRoleOther : e->role.load(std::memory_order_relaxed);
}

uint32_t ordinal_of(const FdEntry* e) {
  return e == nullptr ? 0 : e->conn_ordinal.load(std::memory_order_relaxed);
}

uint64_t conn_of(const FdEntry* e) {
  return e == nullptr ? 0 : e->conn.load(std::memory_order_relaxed);
}

void retire_snapshot_locked() {
  Snapshot* old = g_snapshot.exchange(nullptr, std::memory_order_acq_rel);
  if (old != nullptr) {
    g_retired_snapshots.emplace_back(old);
  }
  set_bit(kArmRules, false);
}

std::string getenv_string(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

uint64_t env_number(const char* name, uint64_t fallback) {
  const std::string text = getenv_string(name);
  if (text.empty()) {
    return fallback;
  }
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    throw PlanError(std::string(name) + "=\"" + text + "\": not an unsigned 64-bit integer");
  }
  return value;
}

std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) {
    args.push_back(arg);
  }
  return args;
}

}  // namespace

// ---- detail ---------------------------------------------------------------------------------

namespace detail {

std::size_t ReplayKeyHash::operator()(const ReplayKey& k) const noexcept {
  uint64_t h = splitmix64(k.point);
  h = splitmix64(h ^ k.role);
  h = splitmix64(h ^ k.conn_ordinal);
  return static_cast<std::size_t>(splitmix64(h ^ k.fd_call));
}

void install_replay(std::unique_ptr<ReplayTable> table) {
  std::lock_guard lock(g_admin_mu);
  ReplayTable* old = g_replay.exchange(table.release(), std::memory_order_acq_rel);
  if (old != nullptr) {
    g_retired_replays.emplace_back(old);
  }
  set_bit(kArmReplay, g_replay.load(std::memory_order_acquire) != nullptr);
}

uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec);
}

}  // namespace detail

// ---- public API -----------------------------------------------------------------------------

uint32_t armed_reasons() { return detail::g_armed.load(std::memory_order_acquire); }

void arm(const Plan& plan, uint64_t seed, uint64_t iteration) {
  auto snap = std::make_unique<Snapshot>();
  snap->by_point.resize(point_count());
  for (std::size_t i = 0; i < plan.rules.size(); ++i) {
    auto r = std::make_unique<CompiledRule>();
    r->rule = plan.rules[i];
    const uint64_t base = r->rule.seed ? *r->rule.seed : seed;
    r->seed = splitmix64(base) ^ splitmix64(iteration) ^ splitmix64(i);
    for (RoleId role : r->rule.roles) {
      if (role < 64) {
        r->role_mask |= uint64_t{1} << role;
      }
    }
    for (PointId p : r->rule.points) {
      snap->by_point.at(p).push_back(static_cast<uint16_t>(i));
    }
    if (r->rule.action.kind == ActionKind::kEvents) {
      snap->has_events_rules = true;
    }
    snap->rules.push_back(std::move(r));
  }
  const bool any = !snap->rules.empty();
  std::lock_guard lock(g_admin_mu);
  retire_snapshot_locked();
  if (any) {
    g_snapshot.store(snap.release(), std::memory_order_release);
    set_bit(kArmRules, true);
  }
}

void disarm() {
  std::lock_guard lock(g_admin_mu);
  retire_snapshot_locked();
}

void reset() {
  disarm();
  detail::install_replay(nullptr);
  // Call indices restart too, so that a trace recorded after one reset replays after another
  // (replay keys on the per-fd call index, DESIGN "Trace").
  detail::for_each_fd_entry([](int, FdEntry& e) {
    leave_state(&e);
    for (auto& c : e.calls) {
      c.store(0, std::memory_order_relaxed);
    }
    e.last_conn.store(0, std::memory_order_relaxed);  // connection ids restart too
  });
  for (auto& c : g_nofd_calls) {
    c.store(0, std::memory_order_relaxed);
  }
  {
    std::lock_guard lock(g_shadows_mu);
    for (auto& [epfd, shadow] : g_shadows) {
      std::lock_guard slock(shadow->mu);
      drain_wake(*shadow);
      g_synthetic_pending.fetch_sub(static_cast<int64_t>(shadow->synthetic.size()));
      shadow->synthetic.clear();
      for (auto& [fd, reg] : shadow->regs) {
        reg.reported = IoState::kNone;
      }
    }
  }
  g_emfile_sticky.store(false, std::memory_order_release);
  refresh_counted_bits();
  set_bit(kArmScenario, false);
  g_injections.store(0, std::memory_order_relaxed);
  detail::trace_restart_numbering();
  detail::ledger_clear_violations();
}

void set_scenario_armed(bool on) { set_bit(kArmScenario, on); }

void enable_libfiu() {
  bool expected = false;
  if (g_libfiu.compare_exchange_strong(expected, true)) {
    fiu_init(0);
    set_bit(kArmLibfiu, true);
  }
}

bool libfiu_enabled() { return g_libfiu.load(std::memory_order_acquire); }

std::vector<RuleStats> rule_stats() {
  std::vector<RuleStats> out;
  const Snapshot* snap = g_snapshot.load(std::memory_order_acquire);
  if (snap == nullptr) {
    return out;
  }
  for (const auto& r : snap->rules) {
    out.push_back({r->rule.to_string(), r->eligible.load(std::memory_order_relaxed),
                   r->injected.load(std::memory_order_relaxed)});
  }
  return out;
}

uint64_t injection_count() { return g_injections.load(std::memory_order_relaxed); }

int queue_event(int fd, uint32_t events) {
  std::vector<std::shared_ptr<Shadow>> shadows;
  {
    std::lock_guard lock(g_shadows_mu);
    for (auto& [epfd, s] : g_shadows) {
      shadows.push_back(s);
    }
  }
  int queued = 0;
  for (auto& s : shadows) {
    std::lock_guard lock(s->mu);
    if (queue_locked(*s, fd, events)) {
      ++queued;
    }
  }
  return queued;
}

EnvironmentConfig configure_from_environment() {
  EnvironmentConfig c;
  c.rules = getenv_string("FAULTLOOP_RULES");
  c.plan_file = getenv_string("FAULTLOOP_PLAN");
  const bool rules_set = std::getenv("FAULTLOOP_RULES") != nullptr;
  const bool plan_set = std::getenv("FAULTLOOP_PLAN") != nullptr;
  c.trace_file = getenv_string("FAULTLOOP_TRACE");
  c.events_file = getenv_string("FAULTLOOP_EVENTS");
  c.replay_file = getenv_string("FAULTLOOP_REPLAY");
  if (rules_set && plan_set) {
    throw PlanError("FAULTLOOP_RULES and FAULTLOOP_PLAN are both set; set one of them");
  }
  if (!c.replay_file.empty() && (rules_set || plan_set)) {
    throw PlanError("FAULTLOOP_REPLAY cannot be combined with FAULTLOOP_RULES or FAULTLOOP_PLAN");
  }
  Plan plan;
  if (!c.rules.empty()) {
    try {
      plan = parse_plan(c.rules);
    } catch (const PlanError& e) {
      throw PlanError(std::string("FAULTLOOP_RULES: ") + e.what());
    }
  } else if (!c.plan_file.empty()) {
    plan = parse_plan_file(c.plan_file);  // its messages name file:line:column
  }
  // FAULTLOOP_SEED wins over a TOML plan's own `seed`; a replay takes both from its header.
  c.seed = env_number("FAULTLOOP_SEED", plan.seed.value_or(0));
  c.iteration = env_number("FAULTLOOP_ITERATION", 0);
  Trace replay;
  if (!c.replay_file.empty()) {
    replay = read_trace(c.replay_file);
    c.seed = replay.header.seed;
    c.iteration = replay.header.iteration;
  }
  if (!c.events_file.empty()) {
    open_events(c.events_file);
  }
  if (!c.trace_file.empty()) {
    TraceHeader h;
    h.scenario = getenv_string("FAULTLOOP_SCENARIO");
    h.command = own_command_line();
    h.seed = c.seed;
    h.iteration = c.iteration;
    h.plan = c.replay_file.empty() ? plan.to_string() : replay.header.plan;
    open_trace(c.trace_file, h);
  }
  if (!c.replay_file.empty()) {
    load_replay(replay);
  } else if (!plan.rules.empty()) {
    arm(plan, c.seed, c.iteration);
  }
  return c;
}

// ---- the seam's armed path ----------------------------------------------------------------

namespace seam {

Decision decide(PointId point, int fd, std::size_t requested) {
  Decision d;
  d.point = point;
  d.fd = fd;
  d.requested = requested;
  const PointInfo& info = point_info(point);

  FdEntry* e = nullptr;
  if (fd >= 0) {
    // close: the ledger already checked it in on_close (a close after close is a double close,
    // not a call after close).
    e = (info.traits & kTraitClosesFd) != 0 ? detail::fd_entry(fd) : detail::ledger_check(fd, point);
  }
  d.fd_call = e != nullptr ? e->calls_of(point).fetch_add(1, std::memory_order_relaxed) + 1
                           : g_nofd_calls[point].fetch_add(1, std::memory_order_relaxed) + 1;

  // Kernel state first: a reset socket or a process out of fds answers for itself. Such a call
  // is still eligible for the rules (each counts its own eligible calls), but none fires on it.
  bool answered = false;
  if ((info.traits & kTraitCreatesFd) != 0 && g_emfile_sticky.load(std::memory_order_acquire)) {
    d.verdict = Decision::Verdict::kFail;
    d.error = EMFILE;
    answered = true;
  } else if (e != nullptr) {
    answered = answer_from_state(d, info, e);
  }

  const RoleId role = role_of(e);
  if (const detail::ReplayTable* replay = g_replay.load(std::memory_order_acquire)) {
    if (!answered) {
      auto it = replay->actions.find({point, role, ordinal_of(e), d.fd_call});
      if (it != replay->actions.end() && it->second.kind != ActionKind::kEvents) {
        apply(d, it->second, kRuleReplay, info, e);
      }
    }
    return d;
  }

  if (Snapshot* snap = g_snapshot.load(std::memory_order_acquire)) {
    const uint64_t conn = conn_of(e);
    const ThreadKindId thread = tls_context.thread_kind;
    for (uint16_t index : snap->rules_of(point)) {
      CompiledRule& r = *snap->rules[index];
      if (r.rule.action.kind == ActionKind::kEvents || !selectors_match(r, role, conn, fd, thread)) {
        continue;
      }
      // Every rule counts its own eligible calls, even when an earlier rule took the call.
      const uint64_t k = r.eligible.fetch_add(1, std::memory_order_relaxed) + 1;
      if (!answered && !d.injected && fires(r, k)) {
        apply(d, r.rule.action, index, info, e);
      }
    }
  }

  if (!answered && !d.injected && g_libfiu.load(std::memory_order_relaxed) &&
      fiu_fail(info.name.c_str())) {
    // libfiu's default action for the point: errno from failinfo when given.
    Action a;
    if (info.kind == PointKind::kRace) {
      a.kind = ActionKind::kYield;
    } else {
      a.kind = ActionKind::kError;
      const auto failinfo = reinterpret_cast<intptr_t>(fiu_failinfo());
      a.error = failinfo > 0 ? static_cast<int>(failinfo) : info.default_errno;
    }
    apply(d, a, kRuleLibfiu, info, e);
  }
  return d;
}

int64_t finish(const Decision& d, int64_t result, int error) {
  if (d.eof_on_eagain) {
    if (result < 0 && (error == EAGAIN || error == EWOULDBLOCK)) {
      result = 0;  // the peer is gone: after the buffered data comes end of input
    }
    if (result == 0) {
      if (FdEntry* e = detail::find_fd_entry(d.fd)) {
        e->eof_seen.store(true, std::memory_order_release);
      }
    }
  }
  if (d.injected) {
    g_injections.fetch_add(1, std::memory_order_relaxed);
    const PointInfo& info = point_info(d.point);
    const bool reads = (info.traits & kTraitReads) != 0;
    const bool writes = (info.traits & kTraitWrites) != 0;
    const bool accepts = (info.traits & kTraitCreatesFd) != 0 && d.fd >= 0;  // accept4
    const bool again = d.verdict == Decision::Verdict::kFail &&
                       (d.error == EAGAIN || d.error == EWOULDBLOCK);
    if ((reads || writes || accepts) && d.fd >= 0 &&
        (again || d.verdict == Decision::Verdict::kShort)) {
      // The kernel would still report this fd (data, room, or a backlog): an edge must not be
      // lost to an injection.
      queue_event(d.fd, writes ? EPOLLOUT : EPOLLIN);
    }
    write_trace_record(d, d.fd, detail::find_fd_entry(d.fd), result, error);
  }
  errno = error;
  return result;
}

void check_identity(int fd, PointId point) { detail::ledger_check(fd, point); }

void on_open(int fd) {
  leave_state(detail::fd_entry(fd));  // a new file: no state of the number's last owner
  detail::ledger_open(fd, kRoleOther);
}

void on_adopt(int fd, RoleId role) {
  leave_state(detail::fd_entry(fd));
  detail::ledger_open(fd, role);
}

void on_tag(int fd, RoleId role, uint64_t conn) { detail::ledger_tag(fd, role, conn); }

void on_close(int fd, PointId point) {
  FdEntry* e = detail::fd_entry(fd);
  leave_state(e);
  detail::ledger_close(fd, point, armed());
  if (g_emfile_sticky.exchange(false, std::memory_order_acq_rel)) {
    refresh_counted_bits();
  }
  std::shared_ptr<Shadow> closed_set;
  std::vector<std::shared_ptr<Shadow>> others;
  {
    std::lock_guard lock(g_shadows_mu);
    if (g_shadows.empty()) {
      return;
    }
    auto it = g_shadows.find(fd);
    if (it != g_shadows.end()) {
      closed_set = it->second;
      g_shadows.erase(it);
    }
    for (auto& [epfd, s] : g_shadows) {
      others.push_back(s);
    }
  }
  if (closed_set) {
    std::lock_guard lock(closed_set->mu);
    g_synthetic_pending.fetch_sub(static_cast<int64_t>(closed_set->synthetic.size()));
    closed_set->synthetic.clear();
    refresh_counted_bits();
    if (closed_set->wake_fd >= 0) {
      ::close(closed_set->wake_fd);  // the engine's own fd, outside the ledger
      closed_set->wake_fd = -1;
    }
  }
  // Closing the last reference removes an fd from every epoll set.
  for (auto& s : others) {
    std::lock_guard lock(s->mu);
    if (s->regs.erase(fd) != 0) {
      drop_synthetic_locked(*s, fd);
    }
  }
}

void on_epoll_create(int epfd) {
  auto s = std::make_shared<Shadow>();
  s->epfd = epfd;
  s->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->wake_fd >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeData;
    if (::epoll_ctl(epfd, EPOLL_CTL_ADD, s->wake_fd, &ev) != 0) {
      ::close(s->wake_fd);
      s->wake_fd = -1;
    }
  }
  std::lock_guard lock(g_shadows_mu);
  g_shadows[epfd] = std::move(s);
}

void on_epoll_ctl(int epfd, int op, int fd, const epoll_event* event) {
  std::shared_ptr<Shadow> s = find_shadow(epfd);
  if (!s) {
    return;
  }
  std::lock_guard lock(s->mu);
  switch (op) {
    case EPOLL_CTL_ADD:
    case EPOLL_CTL_MOD: {
      Registration& reg = s->regs[fd];
      reg.events = event != nullptr ? event->events : 0;
      reg.data = event != nullptr ? event->data.u64 : 0;
      reg.reported = IoState::kNone;  // a MOD re-arms an edge: current state is reported again
      break;
    }
    case EPOLL_CTL_DEL:
      s->regs.erase(fd);
      drop_synthetic_locked(*s, fd);
      break;
    default:
      break;
  }
}

bool epoll_has_pending(int epfd) {
  std::shared_ptr<Shadow> s = find_shadow(epfd);
  if (!s) {
    return false;
  }
  std::lock_guard lock(s->mu);
  if (!s->synthetic.empty()) {
    return true;
  }
  if (g_fds_in_state.load(std::memory_order_acquire) == 0) {
    return false;
  }
  for (const auto& [fd, reg] : s->regs) {
    const FdEntry* e = detail::find_fd_entry(fd);
    if (e == nullptr) {
      continue;
    }
    const IoState state = e->io_state.load(std::memory_order_acquire);
    if (state == IoState::kNone) {
      continue;
    }
    const bool edge = (reg.events & EPOLLET) != 0;
    if (edge && reg.reported == state) {
      continue;
    }
    // Only what the registration would report: a state masked away entirely (reads paused,
    // interest 0) must not turn the poller's wait into a spin.
    const bool pending = e->reset_pending.load(std::memory_order_acquire);
    if (mask_by_interest(state_events(state, pending), reg.events) != 0) {
      return true;
    }
  }
  return false;
}

int epoll_wait_after(int epfd, epoll_event* events, int maxevents, int n, int error,
                     bool apply_rules) {
  std::shared_ptr<Shadow> s = find_shadow(epfd);
  if (!s || n < 0 || maxevents <= 0) {
    errno = error;
    return n;
  }
  const PointId point = [] {
    static const PointId id = *find_point("reactor/sys/epoll_wait");
    return id;
  }();
  std::lock_guard lock(s->mu);

  // The kernel's entries, less the engine's wake-up eventfd.
  std::vector<epoll_event> out;
  out.reserve(static_cast<std::size_t>(n) + s->synthetic.size());
  for (int i = 0; i < n; ++i) {
    if (events[i].data.u64 == kWakeData) {
      continue;
    }
    out.push_back(events[i]);
  }
  drain_wake(*s);

  std::unordered_map<uint64_t, int> fd_of_data;
  for (const auto& [fd, reg] : s->regs) {
    fd_of_data.emplace(reg.data, fd);
  }
  auto entry_for = [&](int fd, const Registration& reg) -> epoll_event& {
    for (auto& ev : out) {
      auto it = fd_of_data.find(ev.data.u64);
      if (it != fd_of_data.end() && it->second == fd) {
        return ev;
      }
    }
    epoll_event ev{};
    ev.data.u64 = reg.data;
    out.push_back(ev);
    return out.back();
  };

  // Emulated kernel states: level mode reports them every time, edge mode once per state.
  if (g_fds_in_state.load(std::memory_order_acquire) > 0) {
    for (auto& [fd, reg] : s->regs) {
      const FdEntry* e = detail::find_fd_entry(fd);
      const IoState state = e == nullptr ? IoState::kNone : e->io_state.load(std::memory_order_acquire);
      if (state == IoState::kNone) {
        continue;
      }
      const bool edge = (reg.events & EPOLLET) != 0;
      if (edge && reg.reported == state) {
        continue;
      }
      reg.reported = state;
      const uint32_t ev = mask_by_interest(
          state_events(state, e->reset_pending.load(std::memory_order_acquire)), reg.events);
      if (ev != 0) {
        entry_for(fd, reg).events |= ev;
      }
    }
  }

  // Synthetic events queued since the last call.
  if (!s->synthetic.empty()) {
    std::vector<epoll_event> queued;
    queued.swap(s->synthetic);
    g_synthetic_pending.fetch_sub(static_cast<int64_t>(queued.size()), std::memory_order_acq_rel);
    for (const epoll_event& q : queued) {
      auto it = s->regs.find(q.data.fd);
      if (it == s->regs.end()) {
        continue;
      }
      entry_for(q.data.fd, it->second).events |= mask_by_interest(q.events, it->second.events);
    }
  }

  // `events` rules: one unit per (call, registered fd), matched on that fd's tag.
  Snapshot* snap = g_snapshot.load(std::memory_order_acquire);
  const detail::ReplayTable* replay = g_replay.load(std::memory_order_acquire);
  const bool rules = snap != nullptr && snap->has_events_rules && !snap->rules_of(point).empty();
  if (apply_rules && (rules || replay != nullptr)) {
    const ThreadKindId thread = tls_context.thread_kind;
    for (auto& [fd, reg] : s->regs) {
      FdEntry* e = detail::fd_entry(fd);
      const RoleId role = role_of(e);
      const uint64_t conn = conn_of(e);
      const bool edge = (reg.events & EPOLLET) != 0;
      const Action* fired = nullptr;
      int fired_rule = seam::kRuleNone;
      uint64_t unit = 0;
      if (e != nullptr) {
        unit = e->calls_of(point).fetch_add(1, std::memory_order_relaxed) + 1;
      }
      if (replay != nullptr) {
        auto it = replay->actions.find({point, role, ordinal_of(e), unit});
        if (it != replay->actions.end() && it->second.kind == ActionKind::kEvents) {
          fired = &it->second;
          fired_rule = seam::kRuleReplay;
        }
      } else {
        for (uint16_t index : snap->rules_of(point)) {
          CompiledRule& r = *snap->rules[index];
          if (r.rule.action.kind != ActionKind::kEvents ||
              !selectors_match(r, role, conn, fd, thread)) {
            continue;
          }
          // A dropped edge starves a loop, which the kernel never does: `-EV` is refused on
          // edge-triggered registrations (they are not eligible).
          if (edge && r.rule.action.events_remove != 0) {
            continue;
          }
          const uint64_t k = r.eligible.fetch_add(1, std::memory_order_relaxed) + 1;
          if (fired == nullptr && fires(r, k)) {
            fired = &r.rule.action;
            fired_rule = index;
          }
        }
      }
      if (fired == nullptr) {
        continue;
      }
      const uint32_t add = fired->events_add;
      if ((add & EPOLLERR) != 0) {
        enter_state(e, IoState::kReset, /*reset_pending=*/true);
      } else if ((add & EPOLLHUP) != 0) {
        enter_state(e, IoState::kPeerHup, false);
      } else if ((add & EPOLLRDHUP) != 0 && e != nullptr &&
                 e->io_state.load(std::memory_order_acquire) == IoState::kNone) {
        enter_state(e, IoState::kPeerRdhup, false);
      }
      uint32_t extra = add;
      if (e != nullptr && e->io_state.load(std::memory_order_acquire) != IoState::kNone) {
        extra |= state_events(e->io_state.load(std::memory_order_acquire),
                              e->reset_pending.load(std::memory_order_acquire));
        reg.reported = e->io_state.load(std::memory_order_acquire);
      }
      epoll_event& ev = entry_for(fd, reg);
      ev.events |= mask_by_interest(extra, reg.events);
      ev.events &= ~fired->events_remove;  // level mode: reported again by the next call
      Decision d;
      d.injected = true;
      d.rule = fired_rule;
      d.action = *fired;
      d.point = point;
      d.fd = fd;
      d.fd_call = unit;
      g_injections.fetch_add(1, std::memory_order_relaxed);
      write_trace_record(d, fd, e, static_cast<int64_t>(ev.events), 0);
    }
  }

  // Entries left empty are dropped; what does not fit waits for the next call.
  std::erase_if(out, [](const epoll_event& ev) { return ev.events == 0; });
  const auto limit = static_cast<std::size_t>(maxevents);
  if (out.size() > limit) {
    for (std::size_t i = limit; i < out.size(); ++i) {
      auto it = fd_of_data.find(out[i].data.u64);
      if (it == fd_of_data.end()) {
        continue;  // an fd the shadow does not know: the kernel reports it again if still ready
      }
      epoll_event q = out[i];
      q.data.fd = it->second;
      s->synthetic.push_back(q);
      g_synthetic_pending.fetch_add(1, std::memory_order_acq_rel);
    }
    out.resize(limit);
  }
  refresh_counted_bits();
  if (!s->synthetic.empty()) {
    signal_wake(*s);
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    events[i] = out[i];
  }
  errno = error;
  return static_cast<int>(out.size());
}

int take_pending_error(int fd) {
  FdEntry* e = detail::find_fd_entry(fd);
  if (e == nullptr || e->io_state.load(std::memory_order_acquire) != IoState::kReset) {
    return 0;
  }
  return e->reset_pending.exchange(false, std::memory_order_acq_rel) ? ECONNRESET : 0;
}

}  // namespace seam

}  // namespace faultloop::faults
