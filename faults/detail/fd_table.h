// Internal: the engine's per-fd table — the ledger's entries and the emulated kernel state of
// each fd (reset, peer closed) — shared by fd_ledger.cc and engine.cc.
//
// Entries live in chunks allocated on first use and never freed, so a pointer to an entry
// stays valid for the life of the process and lookups take no lock. Every field is atomic: the
// seam's armed path reads them from any thread.
#pragma once

#include <atomic>
#include <cstdint>

#include "faults/registry.h"

namespace faultloop::faults::detail {

/// What the ledger knows of an fd number.
enum class FdState : uint8_t {
  kUnknown = 0,  ///< never opened or adopted through the seam
  kOpen,         ///< opened (or adopted) through the seam and not closed since
  kClosed,       ///< closed through the seam and not reopened through it since
};

/// The emulated kernel state of a socket after an injected reset or peer close (DESIGN
/// "Realism").
enum class IoState : uint8_t {
  kNone = 0,   ///< no emulated state: the kernel answers
  kReset,      ///< a received RST: pending ECONNRESET, then reads 0 and writes EPIPE
  kPeerHup,    ///< a full peer close: reads 0 after buffered data, writes EPIPE
  kPeerRdhup,  ///< a peer half-close: reads 0 after buffered data, writes work
};

/// Per-fd call counters kept for the first kCallSlots point ids (the seam's syscalls, which
/// register first); later ids share the last slot.
inline constexpr unsigned kCallSlots = 40;

/// One fd number.
struct FdEntry {
  std::atomic<FdState> state{FdState::kUnknown};  ///< what the ledger knows
  std::atomic<IoState> io_state{IoState::kNone};  ///< emulated kernel state (engine.cc)
  std::atomic<bool> reset_pending{false};  ///< ECONNRESET not yet consumed (kReset)
  std::atomic<bool> eof_seen{false};       ///< a read returned 0 in a peer-closed state
  std::atomic<RoleId> role{kRoleOther};    ///< sys::tag / sys::adopt
  std::atomic<uint32_t> generation{0};     ///< bumped at every open through the seam
  std::atomic<uint32_t> conn_ordinal{0};   ///< the connection's order of first appearance
  std::atomic<uint64_t> conn{0};           ///< the owning connection (0 = none yet)
  std::atomic<uint64_t> last_conn{0};      ///< the owner when the number was last closed
  std::atomic<uint64_t> calls[kCallSlots] = {};  ///< per-point call index since the open

  /// The call counter of `point`.
  std::atomic<uint64_t>& calls_of(PointId point) {
    return calls[point < kCallSlots ? point : kCallSlots - 1];
  }
};

/// The entry of `fd`, created on first use; nullptr for a negative fd or one beyond the table
/// (2^20 numbers).
FdEntry* fd_entry(int fd);

/// The entry of `fd` if its chunk exists already (never allocates); nullptr otherwise.
FdEntry* find_fd_entry(int fd);

/// Calls `fn(fd, entry)` for every entry in an allocated chunk.
template <class Fn>
void for_each_fd_entry(Fn&& fn);

/// Highest fd number the table covers, plus one.
inline constexpr int kMaxFds = 1 << 20;
/// Numbers per chunk.
inline constexpr int kChunkFds = 1024;

/// The chunk table (defined in fd_ledger.cc).
extern std::atomic<FdEntry*> g_fd_chunks[kMaxFds / kChunkFds];

template <class Fn>
void for_each_fd_entry(Fn&& fn) {
  for (int c = 0; c < kMaxFds / kChunkFds; ++c) {
    FdEntry* chunk = g_fd_chunks[c].load(std::memory_order_acquire);
    if (chunk == nullptr) {
      continue;
    }
    for (int i = 0; i < kChunkFds; ++i) {
      fn(c * kChunkFds + i, chunk[i]);
    }
  }
}

// ---- ledger bookkeeping (fd_ledger.cc) ---------------------------------------------------

/// A successful open (or adopt) through the seam: new generation, role, no connection. The
/// emulated kernel state is the engine's to clear (it keeps the count behind kArmFdState).
void ledger_open(int fd, RoleId role);

/// A close through the seam, recorded before the real close. Reports a double close (state
/// closed) or a foreign close (state unknown); `armed` adds the cross-talk check against the
/// calling thread's connection.
void ledger_close(int fd, PointId point, bool armed);

/// Names an fd's role and connection (sys::tag); assigns the connection's ordinal on first
/// sight.
void ledger_tag(int fd, RoleId role, uint64_t conn);

/// The identity check of an armed call on `fd` by the calling thread: call after close and
/// fd-reuse cross-talk. Returns the entry (nullptr for fd < 0).
FdEntry* ledger_check(int fd, PointId point);

/// Clears violations and connection ordinals (engine reset(): ordinals restart at 1).
void ledger_clear_violations();

}  // namespace faultloop::faults::detail
