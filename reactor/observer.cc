// The observer hooks (reactor/observer.h) and, in the fault build, the registration of the race
// points (reactor/race_points.h). register_race_points() lives here, not in a registrar object
// of its own: faultloop_reactor is a static library, and an object nothing references is never
// linked. race_points.h makes every translation unit that names a race point call it at static
// initialisation, which references this object, so the registration cannot be dropped.
#include "reactor/observer.h"

#include "reactor/log.h"
#include "reactor/race_points.h"

#include <array>
#include <atomic>
#include <exception>

namespace faultloop {

namespace {

// Indexed by LifecycleKind; the events file's "type" of each kind. Stable: out-of-process
// checks and reports match on these spellings.
constexpr std::array<const char*, kLifecycleKindCount> kKindNames = {
    "accepted",       "dialed",    "prepare",        "connect",  "close_winner",  "disconnect",
    "close_callback", "finalizer", "buffer_release", "fd_close", "handler_threw", "timeout",
};

#if FAULTLOOP_FAULTS
// The installed observer. Acquire/release, so an observer's own state written before
// set_observer is visible to the threads that call it.
constinit std::atomic<Observer*> g_observer{nullptr};
#endif

}  // namespace

const char* lifecycle_kind_name(LifecycleKind kind) noexcept {
  const auto index = static_cast<std::size_t>(kind);
  return index < kKindNames.size() ? kKindNames[index] : "unknown";
}

#if FAULTLOOP_FAULTS

void set_observer(Observer* observer) {
  g_observer.store(observer, std::memory_order_release);
}

Observer* observer() {
  return g_observer.load(std::memory_order_acquire);
}

namespace detail {

void notify(const LifecycleEvent& event) noexcept {
  if (Observer* const o = g_observer.load(std::memory_order_acquire)) {
    o->on_event(event);
  }
  if (sys::events_enabled()) {
    try {
      sys::emit_lifecycle(lifecycle_kind_name(event.kind), event.conn, event.fd, event.value,
                          event.detail != nullptr ? event.detail : "");
    } catch (const std::exception& e) {
      // Evidence lost must not go unnoticed, but must not take the system under test down.
      FAULTLOOP_LOG(kError, "events file: lifecycle record {} conn={} fd={} dropped: {}",
                    lifecycle_kind_name(event.kind), event.conn, event.fd, e.what());
    }
  }
}

}  // namespace detail

namespace race {

void register_race_points() {
  for (const std::string_view name : kAll) {
    sys::race_point_id(name);
  }
}

}  // namespace race

#else  // release: the hooks compile away (observer.h)

void set_observer(Observer* /*observer*/) {}

Observer* observer() {
  return nullptr;
}

#endif

}  // namespace faultloop
