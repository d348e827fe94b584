#include "faults/events.h"

#include <fmt/format.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "faults/detail/engine_internal.h"
#include "faults/engine.h"
#include "faults/fd_ledger.h"

namespace faultloop::faults {

namespace {

std::mutex g_events_mu;
std::FILE* g_events = nullptr;  // guarded by g_events_mu
std::atomic<bool> g_events_on{false};
bool g_atexit_registered = false;  // guarded by g_events_mu

void write_locked(const nlohmann::json& j) {
  const std::string line = j.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), g_events);
  std::fflush(g_events);
}

nlohmann::json summary_json() {
  const LedgerCounts counts = ledger_counts();
  nlohmann::json leaks = nlohmann::json::array();
  for (const OpenFd& o : open_fds()) {
    leaks.push_back({{"fd", o.fd}, {"role", o.role}, {"conn", o.conn}, {"target", o.target}});
  }
  return {{"type", "summary"},
          {"ns", detail::monotonic_ns()},
          {"opened", counts.opened},
          {"closed", counts.closed},
          {"open_fds", leaks},
          {"violations", violations().size()},
          {"injections", injection_count()}};
}

}  // namespace

void open_events(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "we");
  if (f == nullptr) {
    throw std::runtime_error(fmt::format("FAULTLOOP_EVENTS: cannot open \"{}\" for writing", path));
  }
  std::lock_guard lock(g_events_mu);
  if (g_events != nullptr) {
    std::fclose(g_events);
  }
  g_events = f;
  g_events_on.store(true, std::memory_order_release);
  if (!g_atexit_registered) {
    g_atexit_registered = true;
    std::atexit([] { close_events(); });
  }
}

void close_events() {
  if (!g_events_on.load(std::memory_order_acquire)) {
    return;
  }
  const nlohmann::json summary = summary_json();  // takes other locks: build it first
  std::lock_guard lock(g_events_mu);
  if (g_events == nullptr) {
    return;
  }
  write_locked(summary);
  std::fclose(g_events);
  g_events = nullptr;
  g_events_on.store(false, std::memory_order_release);
}

bool events_enabled() { return g_events_on.load(std::memory_order_acquire); }

void emit_event(std::string_view type,
                const std::vector<std::pair<std::string_view, EventValue>>& fields) {
  if (!events_enabled()) {
    return;
  }
  nlohmann::json j{{"type", type}, {"ns", detail::monotonic_ns()}};
  for (const auto& [key, value] : fields) {
    std::visit([&j, k = std::string(key)](const auto& v) { j[k] = v; }, value);
  }
  std::lock_guard lock(g_events_mu);
  if (g_events != nullptr) {
    write_locked(j);
  }
}

}  // namespace faultloop::faults
