// Public: the race points of the connection lifecycle — one list (STYLE 13) of the places where
// FAULTLOOP_RACE_POINT lets a `delay`/`yield` rule stretch a window of the user/poller close
// race (DESIGN "Race points"; issue 4).
//
// Use: `FAULTLOOP_RACE_POINT(race::kAfterCloseCas);` in lifecycle code; a plan such as
// `reactor/race/conn/after_close_cas:delay=5ms,conn=3` stretches that window. Race points
// compile to nothing in release.
//
// Registration (fault build): a plan may name a race point before the code that contains it
// ever ran, because every name in kAll is registered with the engine at static initialisation.
// faultloop_reactor is a static library, and the linker takes an object from it only when the
// program references one of its symbols, so a registrar object that nothing references would be
// silently dropped. The registration is therefore tied to this header: every translation unit
// that includes it (every one that names a race point) defines the inline variable
// detail::race_points_registered, whose initialiser calls register_race_points(). That call is
// a reference into observer.cc, so the object holding the registrar is linked whenever code that
// can run a race point is, and the registration runs before main(). A program that only parses
// plans and links no lifecycle code (so nothing includes this header) can call
// register_race_points() itself, as it can call sys::register_points().
#pragma once

#include "reactor/sys/sys.h"  // FAULTLOOP_FAULTS, FAULTLOOP_RACE_POINT (call_context.h)

#include <array>
#include <string_view>

namespace faultloop::race {

/// After close_by's CAS on the state word was won, before the winner does anything else:
/// stretches the window in which the loser (user close() against a poller hang-up) sees the
/// connection closed while the winner has not yet detached it or run a callback.
inline constexpr std::string_view kAfterCloseCas = "reactor/race/conn/after_close_cas";

/// After the close was decided, before the poller's Detach (EPOLL_CTL_DEL): stretches the
/// window in which the poll thread may still dispatch events of the batch to a connection that
/// is closing.
inline constexpr std::string_view kBeforeDetach = "reactor/race/conn/before_detach";

/// Between on_request's return and the release of the `processing` lock: a close that arrives
/// here finds the lock held and must be completed by the request path when it lets go
/// (netpoll #304).
inline constexpr std::string_view kAfterHandlerReturn = "reactor/race/conn/after_handler_return";

/// Between the release of the `processing` lock and the request path's re-check for new input
/// or a pending close: whatever arrives in this window must still be seen (no lost wake-up, no
/// close left half done).
inline constexpr std::string_view kAfterProcessingUnlock =
    "reactor/race/conn/after_processing_unlock";

/// Between the finalizer's close of the fd and the release of the fd's poller slot (its
/// generation bump): another thread's accept4 may get the same fd number meanwhile, so a stale
/// event or call must not reach the new owner (fd-reuse cross-talk, gnet #621, nbio #404).
inline constexpr std::string_view kAfterFdClose = "reactor/race/conn/after_fd_close";

/// In the dialer, when the connect timeout fires and before it claims the connection: races
/// EPOLLOUT reporting that the non-blocking connect completed (exactly one of them may win).
inline constexpr std::string_view kConnectTimeout = "reactor/race/dialer/connect_timeout";

/// Every race point above, in lifecycle order; the list registered at static initialisation.
inline constexpr std::array kAll{kAfterCloseCas,         kBeforeDetach, kAfterHandlerReturn,
                                 kAfterProcessingUnlock, kAfterFdClose, kConnectTimeout};

#if FAULTLOOP_FAULTS

/// Registers every name in kAll with the fault engine (sys::race_point_id). Idempotent; runs at
/// static initialisation of every program that includes this header (see the top of the file).
/// Throws what sys::race_point_id throws (std::length_error when the point table is full).
void register_race_points();

namespace detail {
/// Registers kAll before main() in every program with a translation unit that includes this
/// header (one initialisation per program: an inline variable).
inline const bool race_points_registered = (register_race_points(), true);
}  // namespace detail

#else  // release

/// Release: there is no engine to register with; does nothing.
inline void register_race_points() {}

#endif

}  // namespace faultloop::race
