// Public: the fd ledger (fault build) — which fds the stack opened and closed through the seam,
// with role, connection and generation — and the violations it saw: double closes, closes of
// fds the stack never opened, calls after close, and calls on a reused number by a connection
// that no longer owns it (gnet #621, nbio #404, WuKongIM a53e4e60).
//
// Open and close bookkeeping runs on every call, armed or not; the identity checks run on the
// seam's armed path. Violations are also written to the events file as they happen.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace faultloop::faults {

/// What the ledger caught.
enum class ViolationKind : uint8_t {
  kDoubleClose,     ///< close of an fd the ledger holds as closed
  kForeignClose,    ///< close of an fd the stack never opened (nor adopted)
  kCallAfterClose,  ///< a call on an fd the ledger holds as closed
  kCrossTalk,       ///< a call by connection A on an fd number now owned by connection B
};

/// The stable spelling of a kind: "double_close", "foreign_close", "call_after_close",
/// "fd_reuse_cross_talk".
const char* violation_name(ViolationKind kind);

/// One violation, with what the ledger knew at the time.
struct Violation {
  ViolationKind kind = ViolationKind::kDoubleClose;
  int fd = -1;
  std::string point;        ///< the seam point of the offending call ("reactor/sys/close")
  std::string role;         ///< the fd's role when it was last owned
  uint64_t owner_conn = 0;  ///< the connection the ledger holds as the fd's owner (0 = none)
  uint64_t caller_conn = 0; ///< the calling thread's current connection (0 = none)
  uint32_t generation = 0;  ///< the fd number's generation in the ledger (bumped per open)

  /// One line for messages: "double_close fd=7 point=reactor/sys/close role=conn conn=3 ...".
  std::string to_string() const;
};

/// An fd the ledger holds as open.
struct OpenFd {
  int fd = -1;              ///< the number
  std::string role;         ///< its role ("other" when untagged)
  uint64_t conn = 0;        ///< its connection (0 = none)
  uint32_t generation = 0;  ///< opens of this number through the seam so far
  std::string target;  ///< readlink("/proc/self/fd/N"): "socket:[1234]", "anon_inode:[eventfd]"
};

/// Every fd the ledger holds as open now, by number.
std::vector<OpenFd> open_fds();

/// The violations seen since the last reset() or take_violations(), in order.
std::vector<Violation> violations();

/// Returns and clears the violations (a test that provokes one claims it this way).
std::vector<Violation> take_violations();

/// Fds opened (or adopted) through the seam and closed through it, since process start.
struct LedgerCounts {
  uint64_t opened = 0;  ///< successful opens and adopts
  uint64_t closed = 0;  ///< closes of fds the ledger held as open
};

/// The ledger's totals.
LedgerCounts ledger_counts();

}  // namespace faultloop::faults
