// Internal: what the seam's fault build (reactor/sys/sys_faults.cc) asks of the engine. Not for
// users: the reactor reaches the engine only through reactor/sys.
//
// Per call (DESIGN "reactor/sys"): the seam does the always-on bookkeeping (on_open, on_close,
// on_epoll_create, on_epoll_ctl), tests armed(), and when armed calls decide(), makes the real
// call (or not, as the Decision says) and hands the result to finish(), which re-reports
// readiness after an injected EAGAIN or short transfer, writes the trace record and restores
// errno last.
#pragma once

#include <sys/epoll.h>

#include <cstddef>
#include <cstdint>

#include "faults/plan.h"
#include "faults/registry.h"

namespace faultloop::faults::seam {

/// Rule index of a decision that came from a replayed trace record.
inline constexpr int kRuleReplay = -1;
/// Rule index of a decision that came from libfiu's fiu_fail.
inline constexpr int kRuleLibfiu = -2;
/// No rule: nothing was injected.
inline constexpr int kRuleNone = -100;

/// What the engine wants done with one armed call.
struct Decision {
  enum class Verdict : uint8_t {
    kPass,    ///< make the real call as asked
    kFail,    ///< make no call (close: make it), return -1 with `error`
    kReturn,  ///< make no call, return `value` (emulated state: a read after reset gives 0)
    kShort,   ///< make the real call with its total length capped at `cap` bytes
  };
  Verdict verdict = Verdict::kPass;  ///< what to do
  int error = 0;                      ///< kFail: the errno to return
  int64_t value = 0;                  ///< kReturn: the result to return
  std::size_t cap = SIZE_MAX;         ///< kShort: total bytes the real call may move
  bool eof_on_eagain = false;  ///< peer-closed emulation: the kernel's EAGAIN becomes 0 (EOF)

  // What finish() needs to report the injection.
  bool injected = false;       ///< a rule, replay record or libfiu fired
  int rule = kRuleNone;        ///< plan rule index, kRuleReplay or kRuleLibfiu
  Action action;               ///< what fired (valid when injected)
  PointId point = 0;           ///< the call's point
  int fd = -1;                 ///< the call's fd (-1: none)
  uint64_t fd_call = 0;        ///< 1-based index of this point's calls on the fd (replay key)
  std::size_t requested = 0;   ///< bytes the call asked to move
};

/// Asks the engine about an armed call of `point` on `fd` (-1 when the call names no fd, e.g.
/// socket) that asks to move `requested` bytes (0 when not a data call). Runs the ledger's
/// identity checks, answers from an emulated kernel state, then the replay, the rules and
/// libfiu; a `delay`/`yield` that fires has already slept when this returns.
Decision decide(PointId point, int fd, std::size_t requested);

/// Completes an armed call: `result` and `error` are what the call gave (errno only matters
/// when result is -1). Applies eof_on_eagain, re-reports readiness after an injected EAGAIN or
/// short transfer, records the injection in the trace, and sets errno to the final error as
/// its last act. Returns the final result.
int64_t finish(const Decision& decision, int64_t result, int error);

/// The ledger's identity check of an armed call on a second fd the call names (epoll_ctl's
/// target): call after close and fd-reuse cross-talk.
void check_identity(int fd, PointId point);

/// Always-on bookkeeping: a successful fd-making call through the seam (after the call).
void on_open(int fd);

/// Bookkeeping of sys::adopt: an fd made outside the seam enters the ledger with `role`.
void on_adopt(int fd, RoleId role);

/// Bookkeeping of sys::tag: the fd's role and connection (the connection's ordinal is assigned
/// on first sight).
void on_tag(int fd, RoleId role, uint64_t conn);

/// Always-on bookkeeping: a close through the seam, before the real close. Ends any sticky
/// EMFILE, forgets the fd's emulated state and its registrations in shadowed epoll sets, and
/// drops the shadow of a closed epoll fd.
void on_close(int fd, PointId point);

/// Always-on bookkeeping: a new epoll set. Creates its shadow and the engine-owned eventfd that
/// wakes a blocked poller when a synthetic event is queued.
void on_epoll_create(int epfd);

/// Always-on bookkeeping: a successful epoll_ctl (the shadow's interest set and data).
void on_epoll_ctl(int epfd, int op, int fd, const epoll_event* event);

/// True when `epfd` has events the kernel will not report by itself (synthetic events, or fds
/// in an emulated state that must be reported): the real epoll_wait must not block.
bool epoll_has_pending(int epfd);

/// Edits the result of a real epoll_wait on a shadowed set: drops the engine's eventfd entries,
/// adds emulated-state and synthetic events, applies `events` rules per registered fd, keeps to
/// `maxevents` (the rest waits for the next call). `n`/`error` are what the real call gave.
/// `apply_rules`: false on the later kernel rounds of one seam call (the seam waits again when
/// the engine emptied a blocking wait), so that `events` rules see one unit per call and fd.
/// Sets errno last; returns the final count.
int epoll_wait_after(int epfd, epoll_event* events, int maxevents, int n, int error,
                     bool apply_rules = true);

/// getsockopt(SO_ERROR) on an fd with a pending emulated ECONNRESET: returns the error and
/// clears it (0 when nothing is pending).
int take_pending_error(int fd);

}  // namespace faultloop::faults::seam
