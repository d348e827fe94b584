// The Listener under injected accept4 failures (label faults): EMFILE pauses it without a busy
// loop and loses no pending client (netpoll #230, BUGZOO 11/17/27/35); ENFILE, ENOBUFS and
// ENOMEM pause and resume; ECONNABORTED is retried at once; EPROTO and EPERM cost one
// connection and accepting goes on; a failed registration retries with the backoff.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness/testing/fault_test.h"
#include "reactor/address.h"
#include "reactor/io_ops.h"
#include "reactor/listener.h"
#include "reactor/poll.h"
#include "reactor/sys/sys.h"
#include "reactor/tests/loop_helpers.h"

namespace faultloop {
namespace {

using namespace std::chrono_literals;

using testing::eventually;
using testing::on_loop;

/// Raw blocking clients, closed at the end.
struct Clients {
  std::vector<int> fds;
  ~Clients() {
    for (int fd : fds) {
      ::close(fd);
    }
  }
  void add(const Address& to) {
    const int fd = ::socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
    ASSERT_EQ(::connect(fd, to.data(), to.size()), 0) << std::strerror(errno);
  }
};

/// A level-triggered Poll on its own thread and one Listener on 127.0.0.1:0 that collects the
/// accepted fds (closed through the seam before the leak check).
class ListenerFaultsTest : public testing::FaultTest {
 protected:
  void SetUp() override {
    FaultTest::SetUp();
    auto poll = Poll::create();
    ASSERT_TRUE(poll) << poll.error().message();
    poll_ = std::move(*poll);
    poll_->start();
    auto address = Address::parse("127.0.0.1:0");
    ASSERT_TRUE(address);
    auto l = Listener::listen(*address);
    ASSERT_TRUE(l) << l.error().message();
    listener_ = *l;
  }
  void TearDown() override {
    if (listener_) {
      on_loop(*poll_, [&] { listener_->close(); });
    }
    poll_.reset();
    listener_.reset();
    std::lock_guard lock(mu_);
    for (int fd : fds_) {
      io_ops::close_fd(fd);
    }
    fds_.clear();
    FaultTest::TearDown();
  }
  void start() {
    listener_->start(*poll_, [this](int fd, const Address&) {
      std::lock_guard lock(mu_);
      fds_.push_back(fd);
    });
    on_loop(*poll_, [] {});  // the registration ran
  }
  std::size_t count() {
    std::lock_guard lock(mu_);
    return fds_.size();
  }
  /// Ends a sticky injected EMFILE the way the kernel's would end: some fd is closed through
  /// the seam.
  static void close_some_fd() {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ::close(sv[1]);
    sys::adopt(sv[0], "conn");
    sys::close(sv[0]);
  }

  std::unique_ptr<Poll> poll_;
  std::shared_ptr<Listener> listener_;
  std::mutex mu_;
  std::vector<int> fds_;
};

TEST_F(ListenerFaultsTest, InjectedEmfilePausesWithoutBusyLoopAndLosesNoClient) {
  ASSERT_TRUE(arm("reactor/sys/accept4:error=EMFILE,nth=1"));  // sticky until a close
  start();
  Clients clients;
  clients.add(listener_->local_address());
  ASSERT_TRUE(eventually([&] { return listener_->paused(); }));
  EXPECT_EQ(listener_->pauses(), 1u);
  EXPECT_EQ(on_loop(*poll_, [&] { return poll_->registered(); }), 0u);  // detached

  const uint64_t before = poll_->iterations();
  std::this_thread::sleep_for(300ms);
  const uint64_t spent = poll_->iterations() - before;
  // Backoff 10, 20, 40, 80, 160 ms: about five timer wake-ups in 300 ms, not thousands.
  EXPECT_LE(spent, 40u) << "the loop spun while accepting was paused";
  EXPECT_GE(listener_->failed_retries(), 2u);
  EXPECT_LE(listener_->failed_retries(), 8u);
  EXPECT_TRUE(listener_->paused());
  EXPECT_EQ(count(), 0u);

  close_some_fd();  // fds come back; the pending client waited in the backlog
  // on_accept runs inside the retry, before the Listener registers again: wait for both.
  ASSERT_TRUE(eventually([&] { return count() == 1 && !listener_->paused(); }, 5000ms));
  EXPECT_EQ(listener_->resumes(), 1u);
  EXPECT_EQ(listener_->accepted(), 1u);
  EXPECT_EQ(on_loop(*poll_, [&] { return poll_->registered(); }), 1u);  // registered again

  // Accepting is live again: a new client is taken at once, not at the next retry.
  clients.add(listener_->local_address());
  EXPECT_TRUE(eventually([&] { return count() == 2; }, 2000ms));
  EXPECT_EQ(listener_->pauses(), 1u);
}

class ListenerResourceFaultsTest : public ListenerFaultsTest,
                                   public ::testing::WithParamInterface<const char*> {};

TEST_P(ListenerResourceFaultsTest, OutOfResourcesPausesThenResumesOnRetry) {
  ASSERT_TRUE(arm(std::string("reactor/sys/accept4:error=") + GetParam() + ",nth=1"));
  start();
  Clients clients;
  clients.add(listener_->local_address());
  ASSERT_TRUE(eventually([&] { return count() == 1 && !listener_->paused(); }));
  EXPECT_EQ(listener_->pauses(), 1u);
  EXPECT_EQ(listener_->resumes(), 1u);
  EXPECT_EQ(listener_->accept_errors(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Errno, ListenerResourceFaultsTest,
                         ::testing::Values("ENFILE", "ENOBUFS", "ENOMEM"),
                         [](const auto& param_info) { return std::string(param_info.param); });

TEST_F(ListenerFaultsTest, InjectedEconnabortedIsRetriedAtOnce) {
  ASSERT_TRUE(arm("reactor/sys/accept4:error=ECONNABORTED,nth=1"));
  start();
  Clients clients;
  clients.add(listener_->local_address());
  ASSERT_TRUE(eventually([&] { return count() == 1; }));
  EXPECT_EQ(listener_->accept_errors(), 0u);
  EXPECT_EQ(listener_->pauses(), 0u);
}

class ListenerSingleFailureTest : public ListenerFaultsTest,
                                  public ::testing::WithParamInterface<const char*> {};

TEST_P(ListenerSingleFailureTest, FailedAcceptIsCountedAndAcceptingGoesOn) {
  // Every accept4 fails three times in a row, then succeeds: the listener neither stops nor
  // pauses, and every client is taken.
  ASSERT_TRUE(arm(std::string("reactor/sys/accept4:error=") + GetParam() + ",count=3"));
  start();
  Clients clients;
  clients.add(listener_->local_address());
  ASSERT_TRUE(eventually([&] { return count() == 1; }));
  EXPECT_EQ(listener_->accept_errors(), 3u);
  EXPECT_EQ(listener_->pauses(), 0u);
  clients.add(listener_->local_address());
  EXPECT_TRUE(eventually([&] { return count() == 2; }));
}

INSTANTIATE_TEST_SUITE_P(Errno, ListenerSingleFailureTest, ::testing::Values("EPROTO", "EPERM"),
                         [](const auto& param_info) { return std::string(param_info.param); });

TEST_F(ListenerFaultsTest, FailedRegistrationRetriesWithTheBackoff) {
  // The Poll registered its eventfd before the plan was armed: the next epoll_ctl is ours.
  ASSERT_TRUE(arm("reactor/sys/epoll_ctl:error=ENOMEM,nth=1"));
  start();
  ASSERT_TRUE(eventually([&] { return listener_->resumes() == 1; }));
  EXPECT_EQ(listener_->pauses(), 1u);
  EXPECT_FALSE(listener_->paused());
  Clients clients;
  clients.add(listener_->local_address());
  EXPECT_TRUE(eventually([&] { return count() == 1; }));
}

TEST_F(ListenerFaultsTest, CloseWhilePausedCancelsTheRetry) {
  ASSERT_TRUE(arm("reactor/sys/accept4:error=EMFILE,nth=1"));
  start();
  Clients clients;
  clients.add(listener_->local_address());
  ASSERT_TRUE(eventually([&] { return listener_->paused(); }));
  on_loop(*poll_, [&] {
    listener_->close();
    EXPECT_EQ(poll_->timers().pending(), 0u);
  });
  EXPECT_FALSE(listener_->paused());
  EXPECT_TRUE(listener_->closed());
  const uint64_t retries = listener_->failed_retries();
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(listener_->failed_retries(), retries);
}

}  // namespace
}  // namespace faultloop
