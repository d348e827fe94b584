#include "reactor/poll.h"

#include <pthread.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>

#include "reactor/log.h"
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
    return std::error_code(errno, std::system_category());
  }
  sys::tag(epfd, "epoll");
  const int wake_fd = sys::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    const int err = errno;
    sys::close(epfd);
    return std::error_code(err, std::system_category());
  }
  sys::tag(wake_fd, "eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeData;
  if (sys::epoll_ctl(epfd, EPOLL_CTL_ADD, wake_fd, &ev) != 0) {
    const int err = errno;
    sys::close(wake_fd);
    sys::close(epfd);
    return std::error_code(err, std::system_category());
  }
  return std::unique_ptr<Poll>(new Poll(std::move(options), std::move(clock), epfd, wake_fd));
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
    ::pthread_setname_np(::pthread_self(), name.c_str());
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

uint32_t Poll::interest(PollEvent event) const {
  if (options_.trigger == TriggerMode::kEdge) {
    return EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  }
  switch (event) {
    case PollEvent::kReadable:
    case PollEvent::kRW2R:
      return EPOLLIN | EPOLLRDHUP;
    case PollEvent::kWritable:
      return EPOLLOUT | EPOLLRDHUP;
    case PollEvent::kR2RW:
      return EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    case PollEvent::kDetach:
      break;
  }
  return 0;
}

std::error_code Poll::control(const std::shared_ptr<FDOperator>& op, PollEvent event) {
  FDOperator& o = *op;
  const int fd = o.fd();
  if (event == PollEvent::kR2RW || event == PollEvent::kRW2R) {
    // Any thread: one MOD of a registration the loop owns. Edge mode registered OUT at once.
    if (options_.trigger == TriggerMode::kEdge) {
      return {};
    }
    epoll_event ev{};
    ev.events = interest(event);
    ev.data.u64 = pack(fd, o.generation_);
    if (sys::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) != 0) {
      return std::error_code(errno, std::system_category());
    }
    return {};
  }
  assert_in_loop_thread();
  if (event == PollEvent::kDetach) {
    if (o.poll_ != this) {
      return std::make_error_code(std::errc::invalid_argument);
    }
    detach_in_loop(o);
    return {};
  }
  if (fd < 0 || fd >= kMaxFd || o.poll_ != nullptr) {
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
  ev.events = interest(event);
  ev.data.u64 = pack(fd, generation);
  if (sys::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return std::error_code(errno, std::system_category());
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
  {
    std::lock_guard lock(tasks_mu_);
    tasks_.push_back(std::move(task));
  }
  wake();
}

void Poll::wake() {
  if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    const uint64_t one = 1;
    // EAGAIN: the counter is full, so the loop will wake anyway.
    [[maybe_unused]] const ssize_t n = sys::write(wake_fd_, &one, sizeof one);
  }
}

void Poll::drain_wake() {
  uint64_t value = 0;
  [[maybe_unused]] const ssize_t n = sys::read(wake_fd_, &value, sizeof value);
  wake_pending_.store(false, std::memory_order_release);
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
    task();
  }
  running_.clear();
  return true;
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
      return;  // no room (reads paused): level mode reports again once there is
    }
    const io_ops::IoResult r = io_ops::readv(op.fd(), std::span<const iovec>(iov, size_t(n)));
    op.input_ack(r);
    if (!r.is_done() || op.poll_ != this) {
      return;
    }
  } while (drain);
}

void Poll::write_from(FDOperator& op) {
  iovec iov[kIovecs];
  while (true) {
    const int n = op.outputs(std::span<iovec>(iov, kIovecs));
    if (n <= 0) {
      return;  // nothing pending; the operator switched back to RW2R itself
    }
    const io_ops::IoResult r = io_ops::sendmsg(op.fd(), std::span<const iovec>(iov, size_t(n)));
    op.output_ack(r);
    if (!r.is_done() || op.poll_ != this) {
      return;
    }
  }
}

void Poll::queue_hup(FDOperator& op) {
  if (!op.hup_queued_) {
    op.hup_queued_ = true;
    hups_.push_back(&op);
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
  if ((e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0 &&
      (op.events_ & EPOLLOUT) != 0 && (op.events_ & EPOLLIN) == 0) {
    // Registered Writable: a connect in progress. Success and failure both end it here.
    op.on_connect_ready();
    return true;
  }
  if ((e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
    // Input first, even with a hang-up in the same event: every byte before a FIN or RST is
    // delivered (netpoll #278, gnet #531).
    if (op.reads_itself()) {
      op.on_read();
    } else {
      read_into(op, options_.trigger == TriggerMode::kEdge ||
                        (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
    }
  }
  if (op.poll_ == this && (e & EPOLLOUT) != 0) {
    if (op.reads_itself()) {
      op.on_connect_ready();
    } else {
      write_from(op);
    }
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
      FAULTLOOP_LOG(kError, "fl-poll-{}: epoll_wait: {}", options_.index,
                    std::error_code(err, std::system_category()).message());
    }
    // The wheel's "now" moves first: timers due run, and timers that handlers and tasks add
    // below count from the time the loop woke up, not from before it slept (never early).
    bool worked = timers_.advance(clock_->now()) > 0;
    for (int i = 0; i < n; ++i) {
      worked |= handle(events_[static_cast<std::size_t>(i)]);
    }
    // Hang-ups of the round are detached together, then reported (netpoll onhups).
    for (FDOperator* op : hups_) {
      op->hup_queued_ = false;
      if (op->poll_ == this) {
        detach_in_loop(*op);  // its reference waits in released_ until the iteration ends
        op->on_hup();
      }
    }
    worked |= !hups_.empty();
    hups_.clear();
    worked |= run_tasks();
    released_.clear();  // nothing of this iteration names them any more
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
