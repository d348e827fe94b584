// Public: the reactor's observer hooks (DESIGN "reactor/", "Observer hooks"; issue 4).
//
// The reactor reports lifecycle events — a connection accepted or dialed, prepare and connect,
// the close winner, on_disconnect, each close callback, the finalizer, buffer release, the fd
// close, a handler that threw, a timeout — through FAULTLOOP_OBSERVE, so the harness can check
// callbacks and close winners and draw timelines, in process (an Observer installed with
// set_observer) and out of process (the events file, FAULTLOOP_EVENTS; DESIGN "Events file").
//
// Cost (DESIGN): a compile-time no-op in release — FAULTLOOP_OBSERVE expands to nothing that
// evaluates its arguments, and set_observer() does nothing. In the fault build each
// FAULTLOOP_OBSERVE is one out-of-line call (detail::notify) that tests for an observer and an
// open events file. Lifecycle events happen per connection, not per request, so one call is
// cheap enough; the call site itself has no branch.
#pragma once

#include "reactor/sys/sys.h"  // FAULTLOOP_FAULTS (and its #error when the target is missing)

#include <cstddef>
#include <cstdint>

namespace faultloop {

/// What happened to a connection. The events file spells each kind as lifecycle_kind_name().
enum class LifecycleKind : uint8_t {
  kAccepted,       ///< a listener accepted the connection (fd = the new socket)
  kDialed,         ///< dial_connection made the connection (fd = the new socket)
  kPrepare,        ///< the prepare step ran (on_prepare; seed 000: prepare → connect → ...)
  kConnect,        ///< the connect step ran (on_connect; at most once per connection)
  kCloseWinner,    ///< close_by's CAS was won; value = who (1 user, 2 poller)
  kDisconnect,     ///< on_disconnect ran (only when the poller won; never before on_connect)
  kCloseCallback,  ///< a close callback ran; value = its registration index
  kFinalizer,      ///< the finalizer ran (it closes the fd and releases the buffers, last)
  kBufferRelease,  ///< buffers were released; value = bytes
  kFdClose,        ///< the connection's fd was closed through the seam
  kHandlerThrew,   ///< a user handler threw; the connection is closed (netpoll #238)
  kTimeout,        ///< a timeout fired; value = which (1 read, 2 write, 3 idle, 4 dial)
};

/// How many LifecycleKinds there are (the enumerators are 0 .. kLifecycleKindCount - 1).
inline constexpr std::size_t kLifecycleKindCount =
    static_cast<std::size_t>(LifecycleKind::kTimeout) + 1;

/// The stable name of `kind` in the events file and in logs: "accepted", "dialed", "prepare",
/// "connect", "close_winner", "disconnect", "close_callback", "finalizer", "buffer_release",
/// "fd_close", "handler_threw", "timeout"; "unknown" for a value outside the enum.
const char* lifecycle_kind_name(LifecycleKind kind) noexcept;

/// One lifecycle event, as reported to an Observer. Valid only during on_event: copy what you
/// keep (`detail` in particular).
struct LifecycleEvent {
  LifecycleKind kind;  ///< what happened
  uint64_t conn;       ///< the connection's id (sys::kNoConn when there is none yet)
  int fd;              ///< the connection's fd (-1 when there is none)
  /// Depends on `kind`:
  ///  - kCloseWinner: 1 = user (close()), 2 = poller (hang-up) — CloseWho's values;
  ///  - kCloseCallback: the callback's registration index (0 = the finalizer, which is
  ///    registered first and runs last: callbacks run LIFO);
  ///  - kBufferRelease: bytes released;
  ///  - kTimeout: 1 read, 2 write, 3 idle, 4 dial;
  ///  - otherwise 0.
  int64_t value;
  /// A short static note (an error name, a state name), or nullptr.
  const char* detail;
};

/// Receives lifecycle events. on_event is called on the thread where the event happens — poll
/// threads, executor workers, user threads — possibly on several at once: implementations must
/// be thread-safe, must not throw (noexcept) and should be quick (they run inside the
/// reactor's dispatch paths, sometimes under a connection's locks; do not call back into the
/// connection).
class Observer {
 public:
  /// Virtual: observers are installed through this base.
  virtual ~Observer() = default;
  /// One event; see LifecycleEvent for the fields.
  virtual void on_event(const LifecycleEvent& event) noexcept = 0;
};

/// Fault build: installs `observer` for the whole process (atomically; it replaces any earlier
/// one); nullptr removes it. A call to on_event already under way on another thread may still
/// be running when set_observer returns: keep an observer alive until the loops that report to
/// it have stopped (or at least until their in-flight events are done).
/// Release: does nothing — the hooks compile away, so no observer is ever called.
void set_observer(Observer* observer);

/// The installed observer, or nullptr (always nullptr in release).
Observer* observer();

#if FAULTLOOP_FAULTS

namespace detail {
/// What FAULTLOOP_OBSERVE calls in the fault build: hands `event` to the installed observer (if
/// any) and, when an events file is open, writes it there (sys::emit_lifecycle, with the kind's
/// name as the record type and "" for a null detail). Never throws: a record that cannot be
/// written is logged at error level and dropped.
void notify(const LifecycleEvent& event) noexcept;
}  // namespace detail

/// Reports a lifecycle event (see LifecycleEvent for the arguments). Fault build: one call to
/// detail::notify; the arguments are converted with static_cast, so a CloseWho or a size_t can
/// be passed as `value`. Usable as an expression statement: `FAULTLOOP_OBSERVE(...);`.
#define FAULTLOOP_OBSERVE(kind, conn, fd, value, note)                                         \
  ::faultloop::detail::notify(::faultloop::LifecycleEvent{(kind), static_cast<uint64_t>(conn), \
                                                          static_cast<int>(fd),                \
                                                          static_cast<int64_t>(value), (note)})

#else  // release

/// Release: compiles to nothing. The arguments are never evaluated (they sit in an unevaluated
/// sizeof operand), but they are still type-checked and count as used, so a variable used only
/// here does not warn in release.
#define FAULTLOOP_OBSERVE(kind, conn, fd, value, note)                                      \
  static_cast<void>(sizeof(::faultloop::LifecycleEvent{(kind), static_cast<uint64_t>(conn), \
                                                       static_cast<int>(fd),                \
                                                       static_cast<int64_t>(value), (note)}))

#endif

}  // namespace faultloop
