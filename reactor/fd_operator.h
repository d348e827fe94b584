// Public: FDOperator — what a Poll dispatches an fd's events to (netpoll's FDOperator, seed 002).
//
// A listener reads for itself (on_read: accept). A connection lets the poller do its I/O:
// the poller asks inputs() for iovecs (LinkBuffer::book), calls readv through io_ops and hands
// the result to input_ack(); for output it asks outputs() (LinkBuffer::get_bytes), calls sendmsg
// and hands the result to output_ack(). A hang-up (EPOLLHUP/EPOLLERR) is reported with on_hup()
// after the round's detach, once per registration.
//
// All handlers run on the owning Poll's thread and are noexcept: internal dispatch never
// throws (DESIGN "Handlers may throw": user handlers are caught further up).
//
// Dispatch costs one virtual call per handler (inputs, input_ack, outputs, output_ack): the
// poller is shared by listeners, connections and dialers, and a call through a vtable costs a
// few instructions next to the readv/sendmsg it brackets (callgrind figures with the echo
// fixture, issue 4).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>

#include "reactor/io_ops.h"

namespace faultloop {

class Poll;

/// Control operations of a Poll (netpoll's PollEvent; DESIGN "Poll").
enum class PollEvent : uint8_t {
  kReadable,     ///< register: ADD IN|RDHUP (edge: IN|OUT|RDHUP|ET, once); on an operator
                 ///< registered kWritable: the connect is done, switch to reading (MOD)
  kWritable,     ///< register for a connect in progress: ADD OUT|RDHUP (edge: +ET); every
                 ///< event then goes to on_connect_ready()
  kR2RW,         ///< output pending: MOD +OUT (level mode); edge mode re-arms (MOD, same mask)
  kRW2R,         ///< output drained: MOD -OUT (level mode; a no-op in edge mode)
  kPauseRead,    ///< backpressure: MOD -IN|RDHUP (level); edge mode simply stops reading
  kResumeRead,   ///< MOD +IN|RDHUP; in edge mode the MOD re-arms, so waiting input is reported
  kDetach,       ///< deregister: DEL; the slot's generation moves on
};

/// The spelling of `event` in logs: "Readable", "Writable", "R2RW", "RW2R", "PauseRead",
/// "ResumeRead", "Detach".
const char* poll_event_name(PollEvent event);

/// Level (default) or edge triggering (nbio's option; DESIGN "Trigger mode").
enum class TriggerMode : uint8_t {
  kLevel,  ///< EPOLLOUT only while output is pending (R2RW/RW2R)
  kEdge,   ///< IN|OUT|RDHUP|ET registered once; readers and writers drain until EAGAIN
};

/// The object a Poll dispatches an fd's events to. Owned by a std::shared_ptr: the Poll holds
/// a reference from Readable/Writable until Detach, and releases it only at the end of the
/// loop iteration, so an operator is never freed while the poller is inside it.
class FDOperator {
 public:
  /// `fd`: the descriptor this operator stands for (the operator does not own it).
  /// `reads_itself`: listeners and eventfds read for themselves (on_read()); connections let
  /// the poller read through inputs()/input_ack().
  explicit FDOperator(int fd, bool reads_itself = false) : fd_(fd), reads_itself_(reads_itself) {}
  virtual ~FDOperator() = default;
  FDOperator(const FDOperator&) = delete;
  FDOperator& operator=(const FDOperator&) = delete;

  /// The descriptor.
  int fd() const { return fd_; }

  /// The Poll it is registered with, or nullptr.
  Poll* poll() const { return poll_; }

  /// True for operators that read for themselves (listeners, eventfds): the poller calls
  /// on_read() instead of doing readv through inputs()/input_ack().
  bool reads_itself() const { return reads_itself_; }

  /// EPOLLIN on an operator that reads_itself().
  virtual void on_read() noexcept {}

  /// Any event while registered kWritable (a connect completed or failed: check SO_ERROR).
  virtual void on_connect_ready() noexcept {}

  /// Fills `out` with iovecs to read into (booked buffer space, netpoll inputs); returns how
  /// many. 0 means "no room now": the poller pauses reading (as kPauseRead, so a level-mode
  /// loop does not spin on readable data) until the operator asks for kResumeRead.
  virtual int inputs(std::span<iovec> out) noexcept {
    (void)out;
    return 0;
  }

  /// The result of the poller's readv into what inputs() gave: kDone (n bytes arrived),
  /// kWouldBlock (nothing: undo the booking), kEof (peer FIN) or kError. netpoll inputAck.
  /// After kEof the poller stops reading (level mode: IN|RDHUP leave the interest set, or the
  /// end of input would be reported forever); EPOLLHUP/EPOLLERR still come.
  virtual void input_ack(const io_ops::IoResult& result) noexcept { (void)result; }

  /// Fills `out` with iovecs of pending output (netpoll outputs); returns how many. 0: nothing
  /// pending (level mode: the poller switches the registration back to RW2R itself).
  virtual int outputs(std::span<iovec> out) noexcept {
    (void)out;
    return 0;
  }

  /// The result of the poller's sendmsg of what outputs() gave (netpoll outputAck).
  virtual void output_ack(const io_ops::IoResult& result) noexcept { (void)result; }

  /// EPOLLHUP or EPOLLERR was seen: called after the round's batched detach, once.
  virtual void on_hup() noexcept {}

  /// The connection id the poller sets in the seam's call context (sys::ConnScope) around its
  /// readv/sendmsg on this fd, so the fault build's ledger catches fd-reuse cross-talk; 0 for
  /// operators that are no connection.
  uint64_t conn_id() const { return conn_id_; }

 protected:
  /// Sets conn_id() (a Connection, at construction).
  void set_conn_id(uint64_t id) { conn_id_ = id; }

 private:
  friend class Poll;
  int fd_;
  bool reads_itself_;
  uint64_t conn_id_ = 0;
  // Owned by the Poll's loop thread (every control() runs there).
  Poll* poll_ = nullptr;       // set on register, cleared on detach
  uint32_t generation_ = 0;    // the registration's generation, in epoll_event.data
  uint32_t events_ = 0;        // the registered interest set
  bool reading_ = false;       // IN|RDHUP wanted (level mode)
  bool writing_ = false;       // OUT wanted (level mode)
  bool connecting_ = false;    // registered kWritable: events go to on_connect_ready()
  bool hup_queued_ = false;    // already in this round's hang-up list
};

}  // namespace faultloop
