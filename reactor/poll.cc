#include "reactor/poll.h"

#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>

#include "reactor/errc.h"
#include "reactor/log.h"
#include "reactor/sys/call_context.h"
#include "reactor/sys/sys.h"

namespace faultloop {

namespace {

// Fds beyond this are refused by control(): fd-indexed tables are bound-checked (nbio #238).
constexpr int kMaxFd = 1 << 20;

// The data of the wake-up eventfd's registration: fd | generation << 32 never reaches it,
// because slot generations start at 1 and the eventfd has no slot.
constexpr uint64_t kWakeData = ~uint64_t{0};

// Iovecs the poller offers an operator per readv/sendmsg.
constexpr int kIovecs = 8;

uint64_t pack(int fd, uint32_t generation) {
  return static_cast<uint32_t>(fd) | (uint64_t{generation} << 32);
}

}  // namespace

const char* poll_event_name(PollEvent event) {
  switch (event) {
    case PollEvent::kReadable:
      return "Readable";
    case PollEvent::kWritable:
      return "Writable";
    case PollEvent::kR2RW:
      return "R2RW";
    case PollEvent::kRW2R:
      return "RW2R";
    case PollEvent::kPauseRead:
      return "PauseRead";
    case PollEvent::kResumeRead:
      return "ResumeRead";
    case PollEvent::kDetach:
      return "Detach";
  }
  return "?";
}

Result<std::unique_ptr<Poll>> Poll::create(PollOptions options) {
  std::shared_ptr<const Clock> clock = options.clock;
  if (!clock) {
    clock = std::make_shared<SteadyClock>();
  }
  const int epfd = sys::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    return system_error(errno);
  }
  sys::tag(epfd, "epoll");
  const int wake_fd = sys::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    const int err = errno;
    sys::close(epfd);
    return system_error(err);
  }
  sys::tag(wake_fd, "eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeData;
  if (sys::epoll_ctl(epfd, EPOLL_CTL_ADD, wake_fd, &ev) != 0) {
    const int err = errno;
    sys::close(wake_fd);
    sys::close(epfd);
    return system_error(err);
  }
  try {
    return std::unique_ptr<Poll>(new Poll(std::move(options), std::move(clock), epfd, wake_fd));
  } catch (...) {
    // Bad timer options or no memory: nothing may be left open.
    sys::close(wake_fd);
    sys::close(epfd);
    throw;
  }
}

Poll::Poll(PollOptions options, std::shared_ptr<const Clock> clock, int epfd, int wake_fd)
    : options_(std::move(options)),
      clock_(std::move(clock)),
      epfd_(epfd),
      wake_fd_(wake_fd),
      events_(static_cast<std::size_t>(std::max(options_.initial_events, 1))),
      timers_(clock_->now(), options_.timers) {}

Poll::~Poll() {
  stop();
  while (queuing_.load(std::memory_order_acquire) != 0) {
    std::this_thread::yield();  // a thread between its push and its wake() (see queue_in_loop)
  }
  // Registered operators are released without callbacks: their owners close their fds.
  for (Slot& slot : slots_) {
    if (slot.op) {
      slot.op->poll_ = nullptr;
      slot.op.reset();
    }
  }
  released_.clear();
  sys::close(wake_fd_);
  sys::close(epfd_);
}

void Poll::start() {
  thread_ = std::thread([this] {
    const std::string name = "fl-poll-" + std::to_string(options_.index);
    sys::set_thread_name(name.c_str());
    run();
  });
}

void Poll::run() {
  loop_thread_.store(std::this_thread::get_id(), std::memory_order_release);
  sys::set_thread_kind("poller");
  loop();
  loop_thread_.store(std::thread::id(), std::memory_order_release);
}

void Poll::stop() {
  quit_.store(true, std::memory_order_release);
  wake();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
  }
}

void Poll::assert_in_loop_thread() const {
  if (!in_loop_thread()) {
    FAULTLOOP_LOG(kError, "fl-poll-{}: a loop-thread-only call from another thread",
                  options_.index);
    std::abort();
  }
}

TimerWheel& Poll::timers() {
  assert_in_loop_thread();
  return timers_;
}

TimerId Poll::add_timer(Duration delay, TimerWheel::Callback cb) {
  assert_in_loop_thread();
  // The wheel counts from when the loop last woke up; a handler may have run since.
  const Duration since_wake = std::max(Duration::zero(), clock_->now() - timers_.now());
  return timers_.add(delay + since_wake, std::move(cb));
}

bool Poll::reset_timer(TimerId id, Duration delay) {
  assert_in_loop_thread();
  const Duration since_wake = std::max(Duration::zero(), clock_->now() - timers_.now());
  return timers_.reset(id, delay + since_wake);
}

uint32_t Poll::interest(const FDOperator& op) const {
  if (options_.trigger == TriggerMode::kEdge) {
    // Registered once; a MOD with the same mask re-arms (kResumeRead).
    return op.connecting_ ? EPOLLOUT | EPOLLRDHUP | EPOLLET
                          : EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  }
  if (op.connecting_) {
    return EPOLLOUT | EPOLLRDHUP;
  }
  return (op.reading_ ? EPOLLIN | EPOLLRDHUP : 0u) | (op.writing_ ? EPOLLOUT : 0u);
}

std::error_code Poll::control(const std::shared_ptr<FDOperator>& op, PollEvent event) {
  if (in_loop_thread()) {
    return control_in_loop(op, event);
  }
  // The registration state is the loop's: hand the switch over. `op` stays alive in the task.
  queue_in_loop([this, op, event] {
    const bool registers = event == PollEvent::kReadable || event == PollEvent::kWritable;
    if (!registers && op->poll_ != this) {
      return;  // detached meanwhile: a late R2RW/RW2R/Detach has nothing to do
    }
    if (const std::error_code ec = control_in_loop(op, event)) {
      FAULTLOOP_LOG(kWarn, "fl-poll-{}: {} of fd {} failed: {}", options_.index,
                    poll_event_name(event), op->fd(), ec.message());
    }
  });
  return {};
}

std::error_code Poll::control_in_loop(const std::shared_ptr<FDOperator>& op, PollEvent event) {
  FDOperator& o = *op;
  const bool registered_here = o.poll_ == this;
  switch (event) {
    case PollEvent::kReadable:
      if (registered_here && o.connecting_) {
        o.connecting_ = false;  // the connect is done: read from now on
        o.reading_ = true;
        o.writing_ = false;
        return modify_in_loop(o, /*force=*/true);
      }
      [[fallthrough]];
    case PollEvent::kWritable:
      if (o.poll_ != nullptr) {
        return std::make_error_code(std::errc::invalid_argument);
      }
      o.connecting_ = event == PollEvent::kWritable;
      o.reading_ = event == PollEvent::kReadable;
      o.writing_ = false;
      return add_in_loop(op);
    case PollEvent::kDetach:
      if (!registered_here) {
        return std::make_error_code(std::errc::invalid_argument);
      }
      detach_in_loop(o);
      return {};
    case PollEvent::kR2RW:
    case PollEvent::kRW2R:
    case PollEvent::kPauseRead:
    case PollEvent::kResumeRead:
      break;
  }
  if (!registered_here) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  if (event == PollEvent::kR2RW || event == PollEvent::kRW2R) {
    o.writing_ = event == PollEvent::kR2RW;
    // Edge mode: R2RW re-arms (a MOD with the same mask), so a writer that met EAGAIN while
    // the poller was turned away by it still gets an EPOLLOUT once there is room.
    const bool rearm = event == PollEvent::kR2RW && options_.trigger == TriggerMode::kEdge;
    return modify_in_loop(o, rearm);
  }
  o.reading_ = event == PollEvent::kResumeRead;
  // Edge mode: resuming must re-arm, so input that arrived while paused is reported again.
  return modify_in_loop(o, /*force=*/event == PollEvent::kResumeRead);
}

std::error_code Poll::add_in_loop(const std::shared_ptr<FDOperator>& op) {
  FDOperator& o = *op;
  const int fd = o.fd();
  if (fd < 0 || fd >= kMaxFd) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  if (static_cast<std::size_t>(fd) >= slots_.size()) {
    slots_.resize(std::max<std::size_t>(static_cast<std::size_t>(fd) + 1, slots_.size() * 2));
  }
  Slot& slot = slots_[static_cast<std::size_t>(fd)];
  if (slot.op) {
    return std::make_error_code(std::errc::invalid_argument);  // a number registered twice
  }
  const uint32_t generation = slot.generation + 1;
  epoll_event ev{};
  ev.events = interest(o);
  ev.data.u64 = pack(fd, generation);
  if (sys::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return system_error(errno);
  }
  slot.generation = generation;
  slot.op = op;
  o.poll_ = this;
  o.generation_ = generation;
  o.events_ = ev.events;
  o.hup_queued_ = false;
  ++registered_;
  return {};
}

std::error_code Poll::modify_in_loop(FDOperator& op, bool force) {
  const uint32_t events = interest(op);
  if (events == op.events_ && !force) {
    return {};  // nothing changes: no system call
  }
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = pack(op.fd(), op.generation_);
  if (sys::epoll_ctl(epfd_, EPOLL_CTL_MOD, op.fd(), &ev) != 0) {
    return system_error(errno);
  }
  op.events_ = events;
  return {};
}

void Poll::detach_in_loop(FDOperator& op) {
  const int fd = op.fd();
  // ENOENT/EBADF: the fd left the set already (closed elsewhere); the slot is released anyway.
  sys::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  Slot& slot = slots_[static_cast<std::size_t>(fd)];
  // The generation moves on at once: events of this batch that still name the slot are
  // dropped, even if the number is registered again before the batch ends.
  ++slot.generation;
  op.poll_ = nullptr;
  op.generation_ = 0;
  --registered_;
  released_.push_back(std::move(slot.op));  // freed at the end of the iteration
}

void Poll::run_in_loop(Task task) {
  if (in_loop_thread()) {
    task();
    return;
  }
  queue_in_loop(std::move(task));
}

void Poll::queue_in_loop(Task task) {
  // A task may be what lets the owner destroy this Poll (a connection's finalizer queued by a
  // worker: the owner sees finalized() and destroys the loop) while this thread is still in
  // wake(). The destructor waits until no thread is in here.
  queuing_.fetch_add(1, std::memory_order_acq_rel);
  {
    std::lock_guard lock(tasks_mu_);
    tasks_.push_back(std::move(task));
  }
  wake();
  queuing_.fetch_sub(1, std::memory_order_acq_rel);
}

void Poll::wake() {
  if (wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    return;  // a wake-up is on its way
  }
  const uint64_t one = 1;
  ssize_t n;
  do {
    n = sys::write(wake_fd_, &one, sizeof one);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    // The next wake() must try again, or every later one would be skipped (a lost wake-up).
    // EAGAIN means the counter is full: the loop wakes anyway.
    wake_pending_.store(false, std::memory_order_release);
  }
}

void Poll::drain_wake() {
  // Read first, then clear. Clearing first would lose a wake-up: a wake() between the two
  // sets the flag and writes, our read consumes that write, and the flag stays set with an
  // empty counter, so every later wake() skips its write while the loop sleeps. Read-then-
  // clear at worst costs one spurious wake-up; a wake() that skipped its write because the
  // flag was still set queued its task before, and this iteration's run_tasks() runs it. The
  // exchange (acq_rel) pairs with stop()'s: quit_ is seen, or stop() writes a new wake-up.
  uint64_t value = 0;
  [[maybe_unused]] const ssize_t n = sys::read(wake_fd_, &value, sizeof value);
  wake_pending_.exchange(false, std::memory_order_acq_rel);
}

bool Poll::run_tasks() {
  {
    std::lock_guard lock(tasks_mu_);
    if (tasks_.empty()) {
      return false;
    }
    running_.swap(tasks_);
  }
  for (Task& task : running_) {
    try {
      task();
    } catch (const std::exception& e) {
      exceptions_.fetch_add(1, std::memory_order_relaxed);
      FAULTLOOP_LOG(kError, "fl-poll-{}: a task threw: {}", options_.index, e.what());
    } catch (...) {
      exceptions_.fetch_add(1, std::memory_order_relaxed);
      FAULTLOOP_LOG(kError, "fl-poll-{}: a task threw a non-exception", options_.index);
    }
  }
  running_.clear();
  return true;
}

std::size_t Poll::run_timers() {
  std::size_t ran = 0;
  while (true) {
    try {
      return ran + timers_.advance(clock_->now());
    } catch (...) {
      // The callback that threw has left the wheel; the other expired ones run next round
      // of this loop.
      exceptions_.fetch_add(1, std::memory_order_relaxed);
      FAULTLOOP_LOG(kError, "fl-poll-{}: a timer callback threw", options_.index);
      ++ran;
    }
  }
}

int Poll::wait_timeout_ms() {
  {
    std::lock_guard lock(tasks_mu_);
    if (!tasks_.empty()) {
      return 0;
    }
  }
  return epoll_timeout_ms(timers_.next_timeout(clock_->now()));
}

void Poll::read_into(FDOperator& op, bool drain) {
  iovec iov[kIovecs];
  // Level mode reads once per event (the kernel reports again); edge mode, and any event that
  // carries a hang-up, drain to EAGAIN or end of input: every byte before a FIN or RST reaches
  // the operator before on_hup (netpoll #226/#278, gnet #531, BUGZOO 22).
  do {
    const int n = op.inputs(std::span<iovec>(iov, kIovecs));
    if (n <= 0) {
      // No room: pause reading, or level mode would report the same input forever (a spin).
      // The operator resumes with kResumeRead once it has room.
      if (op.poll_ == this) {  // (it may have detached itself inside inputs())
        op.reading_ = false;
        modify_in_loop(op, /*force=*/false);
      }
      return;
    }
    io_ops::IoResult r;
    {
      const sys::ConnScope scope(op.conn_id());
      r = io_ops::readv(op.fd(), std::span<const iovec>(iov, size_t(n)));
    }
    op.input_ack(r);
    if (op.poll_ != this) {
      return;  // the operator detached itself
    }
    if (r.is_eof()) {
      // End of input is reported forever in level mode: stop asking. HUP/ERR still come.
      op.reading_ = false;
      modify_in_loop(op, /*force=*/false);
      return;
    }
    if (!r.is_done()) {
      return;
    }
  } while (drain);
}

void Poll::write_from(FDOperator& op) {
  iovec iov[kIovecs];
  while (true) {
    const int n = op.outputs(std::span<iovec>(iov, kIovecs));
    if (n <= 0) {
      if (op.poll_ == this) {  // (it may have detached itself inside outputs())
        op.writing_ = false;   // nothing pending: RW2R, or level mode reports OUT forever
        modify_in_loop(op, /*force=*/false);
      }
      return;
    }
    io_ops::IoResult r;
    {
      const sys::ConnScope scope(op.conn_id());
      r = io_ops::sendmsg(op.fd(), std::span<const iovec>(iov, size_t(n)));
    }
    op.output_ack(r);
    if (!r.is_done() || op.poll_ != this) {
      return;
    }
  }
}

void Poll::queue_hup(FDOperator& op) {
  if (!op.hup_queued_) {
    op.hup_queued_ = true;
    hups_.emplace_back(&op, op.generation_);
  }
}

bool Poll::handle(const epoll_event& ev) {
  if (ev.data.u64 == kWakeData) {
    drain_wake();
    return false;
  }
  const auto fd = static_cast<int>(static_cast<uint32_t>(ev.data.u64));
  const auto generation = static_cast<uint32_t>(ev.data.u64 >> 32);
  if (fd < 0 || static_cast<std::size_t>(fd) >= slots_.size()) {
    return false;
  }
  Slot& slot = slots_[static_cast<std::size_t>(fd)];
  if (!slot.op || slot.generation != generation) {
    return false;  // detached earlier in this batch (and maybe registered again): stale
  }
  FDOperator& op = *slot.op;  // the slot's reference keeps it alive through this event
  const uint32_t e = ev.events;
  if (op.connecting_) {
    // Registered kWritable: a connect in progress. Success and failure both end it here.
    op.on_connect_ready();
    return true;
  }
  const bool hangup = (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
  if (((e & EPOLLIN) != 0 || hangup) && op.reading_) {
    // Input first, even with a hang-up in the same event: every byte before a FIN or RST is
    // delivered (netpoll #278, gnet #531).
    if (op.reads_itself()) {
      op.on_read();
    } else {
      read_into(op, options_.trigger == TriggerMode::kEdge || hangup);
    }
  }
  if (op.poll_ == this && (e & EPOLLOUT) != 0 && !op.reads_itself()) {
    write_from(op);
  }
  if (op.poll_ == this && (e & (EPOLLHUP | EPOLLERR)) != 0) {
    queue_hup(op);
  }
  return true;
}

void Poll::loop() {
  while (!quit_.load(std::memory_order_acquire)) {
    iterations_.fetch_add(1, std::memory_order_relaxed);
    const int timeout = wait_timeout_ms();
    const int n = sys::epoll_wait(epfd_, events_.data(), static_cast<int>(events_.size()),
                                  timeout);
    const int err = errno;
    if (n < 0 && err != EINTR) {
      // EBADF, EFAULT, EINVAL: a programming error (the seam's errno contract); going round
      // again would be a busy loop and a log flood (muduo #286).
      FAULTLOOP_LOG(kError, "fl-poll-{}: epoll_wait: {}", options_.index,
                    system_error(err).message());
      std::abort();
    }
    // I/O first, then the timers due: an event and a timeout that meet in one wake-up are
    // decided for the event (a connect that completed is not a dial timeout, input that came
    // is not idleness), as libuv orders its loop. Timers that handlers add meanwhile still
    // count from now: add_timer() adds the time since the wheel last moved (never early).
    bool worked = false;
    for (int i = 0; i < n; ++i) {
      worked |= handle(events_[static_cast<std::size_t>(i)]);
    }
    // Hang-ups of the round are detached together, then reported (netpoll onhups).
    for (auto [op, generation] : hups_) {
      op->hup_queued_ = false;
      if (op->poll_ == this && op->generation_ == generation) {  // not re-registered since
        detach_in_loop(*op);  // its reference waits in released_ until the iteration ends
        op->on_hup();
      }
    }
    worked |= !hups_.empty();
    hups_.clear();
    worked |= run_timers() > 0;
    worked |= run_tasks();
    // Nothing of this iteration names them any more. Swapped out first: a destructor may
    // detach another operator and append to released_.
    std::vector<std::shared_ptr<FDOperator>> done;
    done.swap(released_);
    done.clear();
    if (n == static_cast<int>(events_.size())) {
      events_.resize(events_.size() * 2);  // a full batch: more may be waiting
    }
    if (!worked) {
      idle_iterations_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  run_tasks();  // work handed over before stop() still runs (shutdown closes connections)
  released_.clear();
}

}  // namespace faultloop
