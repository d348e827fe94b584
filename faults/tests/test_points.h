// Internal: the fault points, roles and thread kinds the faults/ unit tests plan against —
// the shapes the seam and the reactor register (reactor/sys/sys.h, race points), registered
// here by name because faults/ knows nothing of the reactor.
#pragma once

#include "faults/plan.h"
#include "faults/registry.h"

#include <cerrno>
#include <string>
#include <tuple>

namespace faultloop::faults {

/// Actions of the socket I/O calls (read, readv, recvmsg, write, writev, sendmsg).
inline constexpr ActionMask kTestIoActions =
    action_bit(ActionKind::kError) | action_bit(ActionKind::kShort) |
    action_bit(ActionKind::kReset) | action_bit(ActionKind::kDelay) |
    action_bit(ActionKind::kYield);
/// Actions of epoll_wait.
inline constexpr ActionMask kTestPollActions =
    action_bit(ActionKind::kError) | action_bit(ActionKind::kEvents) |
    action_bit(ActionKind::kDelay) | action_bit(ActionKind::kYield);
/// Actions of the other calls (accept4, close, socket, epoll_ctl).
inline constexpr ActionMask kTestFdActions = action_bit(ActionKind::kError) |
                                             action_bit(ActionKind::kDelay) |
                                             action_bit(ActionKind::kYield);

/// Registers the test points, roles ("conn", "listener") and thread kinds ("poller",
/// "worker"). Idempotent: every fixture calls it in SetUp.
inline void register_test_points() {
  const auto sys = [](const char* call, int error, ActionMask actions, uint32_t traits) {
    register_point(
        PointInfo{std::string("reactor/sys/") + call, PointKind::kSyscall, error, actions, traits});
  };
  sys("accept4", EMFILE, kTestFdActions, kTraitCreatesFd);
  sys("close", EIO, kTestFdActions, kTraitClosesFd);
  sys("epoll_ctl", ENOMEM, kTestFdActions, kTraitEpollCtl);
  sys("epoll_wait", EINTR, kTestPollActions, kTraitEpollWait);
  sys("read", EAGAIN, kTestIoActions, kTraitReads | kTraitSocketIo);
  sys("readv", EAGAIN, kTestIoActions, kTraitReads | kTraitSocketIo);
  sys("recvmsg", EAGAIN, kTestIoActions, kTraitReads | kTraitSocketIo);
  sys("sendmsg", EAGAIN, kTestIoActions, kTraitWrites | kTraitSocketIo);
  sys("socket", EMFILE, kTestFdActions, kTraitCreatesFd);
  sys("write", EAGAIN, kTestIoActions, kTraitWrites | kTraitSocketIo);
  sys("writev", EAGAIN, kTestIoActions, kTraitWrites | kTraitSocketIo);
  for (const char* race :
       {"reactor/race/connection/after_close_cas", "reactor/race/connection/before_detach",
        "reactor/race/poll/before_dispatch"}) {
    register_point(PointInfo{race, PointKind::kRace, 0, kRaceActions, kTraitNone});
  }
  register_role("conn");
  register_role("listener");
  register_thread_kind("poller");
  register_thread_kind("worker");
}

/// Every field of a rule except `where` (which names the source), for comparing rules parsed
/// from different spellings.
inline auto rule_fields(const Rule& rule) {
  return std::tie(rule.point, rule.points, rule.action, rule.roles, rule.fd, rule.conn, rule.thread,
                  rule.nth, rule.after, rule.every, rule.count, rule.seed, rule.probability);
}

}  // namespace faultloop::faults
