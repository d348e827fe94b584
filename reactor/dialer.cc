#include "reactor/dialer.h"

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <future>
#include <utility>

#include "reactor/errc.h"
#include "reactor/executor.h"
#include "reactor/io_ops.h"
#include "reactor/log.h"
#include "reactor/observer.h"
#include "reactor/poll.h"
#include "reactor/race_points.h"
#include "reactor/sys/call_context.h"
#include "reactor/sys/sys.h"

namespace faultloop {

namespace {

Executor& default_executor() {
  static InlineExecutor executor;  // stateless apart from counters; lives until exit
  return executor;
}

// One connect in progress: registered kWritable until the first event or the timeout. Loop
// thread only after start_in_loop(); the fd is ours until handed to a Connection.
class DialOperator final : public FDOperator, public std::enable_shared_from_this<DialOperator> {
 public:
  DialOperator(int fd, Poll& poll, Address address, DialOptions options, DialCallback done)
      : FDOperator(fd),
        poll_(poll),
        address_(std::move(address)),
        options_(std::move(options)),
        done_(std::move(done)) {}

  ~DialOperator() override {
    if (!finished_) {
      // The poll stopped with the dial queued or registered: nobody else will answer.
      finished_ = true;
      io_ops::close_fd(fd());
      done_(make_error_code(Errc::kPollerClosed));
    }
  }

  void start_in_loop() noexcept {
    if (const std::error_code ec = poll_.control(shared_from_this(), PollEvent::kWritable)) {
      finish(ec);
      return;
    }
    if (options_.timeout > Duration::zero()) {
      timer_ = poll_.add_timer(options_.timeout, [weak = weak_from_this()] {
        if (auto self = weak.lock()) {
          self->on_timeout();
        }
      });
    }
  }

  // Connected without waiting (unix sockets): straight to the Connection.
  void connected_in_loop() noexcept { succeed(); }

  void on_connect_ready() noexcept override {
    if (finished_) {
      return;
    }
    const std::error_code ec = io_ops::socket_error(fd());
    if (ec) {
      finish(ec);
      return;
    }
    succeed();
  }

  void on_hup() noexcept override { on_connect_ready(); }

 private:
  void on_timeout() noexcept {
    timer_ = TimerId{};
    FAULTLOOP_RACE_POINT(race::kConnectTimeout);
    if (finished_) {
      return;  // EPOLLOUT came first
    }
    FAULTLOOP_OBSERVE(LifecycleKind::kTimeout, 0, fd(), 4, "dial");
    finish(make_error_code(Errc::kDialTimeout));
  }

  void detach() noexcept {
    if (timer_.valid()) {
      poll_.timers().cancel(timer_);
      timer_ = TimerId{};
    }
    if (poll() == &poll_) {
      poll_.control(shared_from_this(), PollEvent::kDetach);
    }
  }

  void finish(const std::error_code& ec) noexcept {
    finished_ = true;
    detach();
    io_ops::close_fd(fd());
    done_(ec);
  }

  void succeed() noexcept {
    finished_ = true;
    detach();
    Executor& executor = options_.executor != nullptr ? *options_.executor : default_executor();
    ConnectionPtr conn;
    try {
      conn = Connection::create(fd(), poll_, executor, options_.handlers, options_.options,
                                address_, /*dialed=*/true);
    } catch (...) {
      done_(make_error_code(std::errc::not_enough_memory));  // create() closed the fd
      return;
    }
    if (const std::error_code ec = conn->start()) {
      done_(ec);
      return;
    }
    done_(std::move(conn));
  }

  Poll& poll_;
  const Address address_;
  const DialOptions options_;
  DialCallback done_;
  TimerId timer_;
  bool finished_ = false;
};

}  // namespace

void dial(Poll& poll, const Address& address, DialOptions options, DialCallback done) {
  const int family = address.family();
  if (family != AF_INET && family != AF_INET6 && family != AF_UNIX) {
    done(std::make_error_code(std::errc::invalid_argument));
    return;
  }
  const int fd = sys::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    done(system_error(errno));
    return;
  }
  sys::tag(fd, "client");
  if (const std::error_code ec = io_ops::set_nonblocking_defaults(fd)) {
    io_ops::close_fd(fd);
    done(ec);
    return;
  }
  // EINTR: the connect goes on in the background, like EINPROGRESS (calling connect again
  // would give EALREADY).
  const int rc = sys::connect(fd, address.data(), address.size());
  const int err = rc == 0 ? 0 : errno;
  if (rc != 0 && err != EINPROGRESS && err != EINTR) {
    io_ops::close_fd(fd);
    done(system_error(err));  // ECONNREFUSED, ENOENT, EAGAIN (unix backlog full), ...
    return;
  }
  std::shared_ptr<DialOperator> op;
  try {
    op = std::make_shared<DialOperator>(fd, poll, address, std::move(options), std::move(done));
  } catch (...) {
    io_ops::close_fd(fd);
    throw;
  }
  poll.run_in_loop([op, connected = rc == 0] {
    if (connected) {
      op->connected_in_loop();
    } else {
      op->start_in_loop();
    }
  });
}

Result<ConnectionPtr> dial_connection(Poll& poll, const Address& address, DialOptions options) {
  if (poll.in_loop_thread()) {
    return std::make_error_code(std::errc::operation_would_block);
  }
  auto promise = std::make_shared<std::promise<Result<ConnectionPtr>>>();
  std::future<Result<ConnectionPtr>> future = promise->get_future();
  dial(poll, address, std::move(options),
       [promise](Result<ConnectionPtr> result) { promise->set_value(std::move(result)); });
  return future.get();
}

}  // namespace faultloop
