// Public: the seam's per-call context — what the reactor tells the seam about the calling
// thread (its kind and current connection) — and race points.
//
// In the fault build the seam reads this thread-local context on its armed path: the thread
// kind feeds `thread=` selectors and trace records, and the current connection feeds the
// ledger's identity check (a call on an fd number now owned by another connection is the
// fd-reuse cross-talk of gnet #621 and nbio #404). In release everything here compiles away.
#pragma once

#include <cstdint>
#include <string_view>

#if FAULTLOOP_FAULTS
#include "faults/armed.h"
#include "faults/context.h"
#endif

namespace faultloop::sys {

#if FAULTLOOP_FAULTS

/// Sets the calling thread's current connection for the duration of a scope, so the ledger can
/// check that the connection making an I/O call still owns the fd (DESIGN "reactor/sys",
/// step 3). Nests: the destructor restores the previous connection.
class ConnScope {
 public:
  /// `conn`: the connection id the reactor tagged the fd with (sys::tag); 0 = none.
  explicit ConnScope(uint64_t conn) noexcept : prev_(faults::tls_context.conn) {
    faults::tls_context.conn = conn;
  }
  ~ConnScope() { faults::tls_context.conn = prev_; }
  ConnScope(const ConnScope&) = delete;
  ConnScope& operator=(const ConnScope&) = delete;

 private:
  uint64_t prev_;
};

/// A registered race point's id (see FAULTLOOP_RACE_POINT).
using RacePointId = uint16_t;

/// Registers (idempotently) the race point `name` ("reactor/race/<component>/<where>") and
/// returns its id. Throws std::invalid_argument for a malformed name.
RacePointId race_point_id(std::string_view name);

/// Applies the engine's delay/yield rules for race point `id` when armed; otherwise returns at
/// once (one relaxed load).
void race_point(RacePointId id);

/// A place in lifecycle code where a `delay`/`yield` rule may stretch a race window
/// (DESIGN "Race points"). Compiles to nothing in release.
#define FAULTLOOP_RACE_POINT(name)                                                       \
  do {                                                                                   \
    static const ::faultloop::sys::RacePointId faultloop_race_id_ =                      \
        ::faultloop::sys::race_point_id(name);                                           \
    if (::faultloop::faults::armed()) [[unlikely]] {                                     \
      ::faultloop::sys::race_point(faultloop_race_id_);                                  \
    }                                                                                    \
  } while (0)

#else  // release

/// Release: the current connection is not tracked; the scope costs nothing.
class ConnScope {
 public:
  /// `conn`: ignored in release.
  explicit ConnScope(uint64_t /*conn*/) noexcept {}
  ConnScope(const ConnScope&) = delete;
  ConnScope& operator=(const ConnScope&) = delete;
};

/// Release: race points compile to nothing.
#define FAULTLOOP_RACE_POINT(name) \
  do {                             \
  } while (0)

#endif

}  // namespace faultloop::sys
