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
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>

#include "reactor/io_ops.h"

namespace faultloop {

class Poll;

/// Control operations of a Poll (netpoll's PollEvent; DESIGN "Poll").
enum class PollEvent : uint8_t {
  kReadable,  ///< register: ADD IN|RDHUP (edge: IN|OUT|RDHUP|ET, once)
  kWritable,  ///< register for a connect in progress: ADD OUT|RDHUP (dialer)
  kR2RW,      ///< output pending: MOD +OUT (level mode; a no-op in edge mode)
  kRW2R,      ///< output drained: MOD -OUT (level mode; a no-op in edge mode)
  kDetach,    ///< deregister: DEL; the slot's generation moves on
};

/// The spelling of `event` in logs: "Readable", "Writable", "R2RW", "RW2R", "Detach".
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
  explicit FDOperator(int fd) : fd_(fd) {}
  virtual ~FDOperator() = default;
  FDOperator(const FDOperator&) = delete;
  FDOperator& operator=(const FDOperator&) = delete;

  /// The descriptor.
  int fd() const { return fd_; }

  /// The Poll it is registered with, or nullptr.
  Poll* poll() const { return poll_; }

  /// True for operators that read for themselves (listeners, eventfds): the poller calls
  /// on_read() instead of doing readv through inputs()/input_ack().
  virtual bool reads_itself() const { return false; }

  /// EPOLLIN on an operator that reads_itself().
  virtual void on_read() noexcept {}

  /// EPOLLOUT while registered Writable (a connect completed or failed: check SO_ERROR).
  virtual void on_connect_ready() noexcept {}

  /// Fills `out` with iovecs to read into (booked buffer space, netpoll inputs); returns how
  /// many. 0 means "no room now" (reads paused): the poller skips the read.
  virtual int inputs(std::span<iovec> out) noexcept {
    (void)out;
    return 0;
  }

  /// The result of the poller's readv into what inputs() gave: kDone (n bytes arrived),
  /// kWouldBlock (nothing: undo the booking), kEof (peer FIN) or kError. netpoll inputAck.
  virtual void input_ack(const io_ops::IoResult& result) noexcept { (void)result; }

  /// Fills `out` with iovecs of pending output (netpoll outputs); returns how many. 0: nothing
  /// pending (level mode: the poller switches the registration back to RW2R).
  virtual int outputs(std::span<iovec> out) noexcept {
    (void)out;
    return 0;
  }

  /// The result of the poller's sendmsg of what outputs() gave (netpoll outputAck).
  virtual void output_ack(const io_ops::IoResult& result) noexcept { (void)result; }

  /// EPOLLHUP or EPOLLERR was seen: called after the round's batched detach, once.
  virtual void on_hup() noexcept {}

 private:
  friend class Poll;
  int fd_;
  Poll* poll_ = nullptr;       // set by the Poll on register, cleared on detach (loop thread)
  uint32_t generation_ = 0;    // the registration's generation, in epoll_event.data
  uint32_t events_ = 0;        // the registered interest set
  bool hup_queued_ = false;    // already in this round's hang-up list
};

}  // namespace faultloop
