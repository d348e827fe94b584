// Address parsing and the Listener on real sockets (label unit: nothing is injected). The
// Listener's fds go through the seam, so FaultTest's leak check covers them and every accepted
// fd (closed here with io_ops::close_fd); clients are raw sockets.
//
// ListenerRealEmfileTest lowers RLIMIT_NOFILE for its process: ctest runs each gtest test in a
// process of its own (gtest_discover_tests), and the test restores the limit when it ends.
#include "reactor/listener.h"

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness/testing/fault_test.h"
#include "reactor/address.h"
#include "reactor/io_ops.h"
#include "reactor/poll.h"
#include "reactor/sys/sys.h"
#include "reactor/tests/loop_helpers.h"

namespace faultloop {
namespace {

using namespace std::chrono_literals;

// ---- Address::parse ---------------------------------------------------------------------

struct GoodCase {
  const char* text;
  int family;
  uint16_t port;
  const char* spelled;  // to_string()
};

TEST(AddressParseTest, GoodSpellingsParseAndPrintBack) {
  const GoodCase cases[] = {
      {"127.0.0.1:8080", AF_INET, 8080, "127.0.0.1:8080"},
      {"0.0.0.0:0", AF_INET, 0, "0.0.0.0:0"},
      {"10.1.2.3:65535", AF_INET, 65535, "10.1.2.3:65535"},
      {"127.0.0.1:080", AF_INET, 80, "127.0.0.1:80"},
      {"[::1]:9000", AF_INET6, 9000, "[::1]:9000"},
      {"[::]:0", AF_INET6, 0, "[::]:0"},
      {"[2001:db8:0:0:0:0:0:1]:443", AF_INET6, 443, "[2001:db8::1]:443"},
      {"[::ffff:127.0.0.1]:7", AF_INET6, 7, "[::ffff:127.0.0.1]:7"},
      {"unix:/tmp/x.sock", AF_UNIX, 0, "unix:/tmp/x.sock"},
      {"unix:relative.sock", AF_UNIX, 0, "unix:relative.sock"},
  };
  for (const GoodCase& c : cases) {
    SCOPED_TRACE(c.text);
    std::string why;
    auto a = Address::parse(c.text, &why);
    ASSERT_TRUE(a) << why;
    EXPECT_EQ(a->family(), c.family);
    EXPECT_EQ(a->port(), c.port);
    EXPECT_EQ(a->to_string(), c.spelled);
    EXPECT_TRUE(why.empty());
    auto again = Address::parse(a->to_string());
    ASSERT_TRUE(again);
    EXPECT_TRUE(*again == *a);
  }
  auto u = Address::parse("unix:/tmp/x.sock");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->path(), "/tmp/x.sock");
  EXPECT_FALSE(u->is_ip());
}

struct BadCase {
  std::string text;
  std::string message;  // exact text of `why`
};

TEST(AddressParseTest, BadSpellingsNameTheProblem) {
  const std::string long_path(108, 'p');
  const BadCase cases[] = {
      {"", "empty address (expected HOST:PORT, [V6]:PORT or unix:/path)"},
      {"127.0.0.1:70000", "port 70000 out of range (0-65535) in \"127.0.0.1:70000\""},
      {"127.0.0.1:99999999999999999999999",
       "port 99999999999999999999999 out of range (0-65535) in "
       "\"127.0.0.1:99999999999999999999999\""},
      {"127.0.0.1:", "missing port after ':' in \"127.0.0.1:\" (use 0 to pick one)"},
      {"127.0.0.1",
       "missing ':PORT' in \"127.0.0.1\" (expected HOST:PORT, [V6]:PORT or unix:/path)"},
      {"127.0.0.1:http", "port \"http\" is not a decimal number in \"127.0.0.1:http\""},
      {"127.0.0.1:-1", "port \"-1\" is not a decimal number in \"127.0.0.1:-1\""},
      {"127.0.0.1:+80", "port \"+80\" is not a decimal number in \"127.0.0.1:+80\""},
      {":80", "missing host before ':' in \":80\""},
      {"localhost:80",
       "\"localhost\" is not a numeric IPv4 address in \"localhost:80\" (names are not "
       "resolved)"},
      {"256.0.0.1:80",
       "\"256.0.0.1\" is not a numeric IPv4 address in \"256.0.0.1:80\" (names are not "
       "resolved)"},
      {"::1:80", "IPv6 address without brackets in \"::1:80\" (write [V6]:PORT)"},
      {"[::1:80", "missing ']' after the IPv6 address in \"[::1:80\""},
      {"[::1]", "missing ':PORT' after \"[::1]\" in \"[::1]\""},
      {"[::1]80", "missing ':PORT' after \"[::1]\" in \"[::1]80\""},
      {"[::1]:", "missing port after ':' in \"[::1]:\" (use 0 to pick one)"},
      {"[127.0.0.1]:80", "\"127.0.0.1\" is not a numeric IPv6 address in \"[127.0.0.1]:80\""},
      {"[]:80", "\"\" is not a numeric IPv6 address in \"[]:80\""},
      {"[fe80::1%eth0]:80",
       "\"fe80::1%eth0\" is not a numeric IPv6 address in \"[fe80::1%eth0]:80\""},
      {"unix:", "empty unix path in \"unix:\""},
      {"unix:/" + long_path,
       "unix path of 109 bytes is longer than 107 in \"unix:/" + long_path + "\""},
      {std::string("unix:/a\0b", 9), "unix path contains a NUL byte at offset 2"},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.text);
    std::string why;
    auto a = Address::parse(c.text, &why);
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error(), std::errc::invalid_argument);
    EXPECT_EQ(why, c.message);
  }
  EXPECT_FALSE(Address::parse("127.0.0.1:70000"));  // `why` is optional
}

TEST(AddressParseTest, UnnamedUnixPeerPrintsAsUnixColon) {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  const Address a = Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&un),
                                           sizeof(sa_family_t));
  EXPECT_EQ(a.family(), AF_UNIX);
  EXPECT_EQ(a.path(), "");
  EXPECT_EQ(a.to_string(), "unix:");
  EXPECT_EQ(Address().to_string(), "");
  EXPECT_EQ(Address().family(), AF_UNSPEC);
}

// ---- Listener ---------------------------------------------------------------------------

using testing::eventually;
using testing::on_loop;

/// What on_accept received; closes the accepted fds through the seam.
class Accepted {
 public:
  Listener::AcceptCallback callback() {
    return [this](int fd, const Address& peer) {
      std::lock_guard lock(mu_);
      got_.emplace_back(fd, peer);
    };
  }
  std::size_t count() {
    std::lock_guard lock(mu_);
    return got_.size();
  }
  std::vector<std::pair<int, Address>> snapshot() {
    std::lock_guard lock(mu_);
    return got_;
  }
  void close_all() {
    std::lock_guard lock(mu_);
    for (const auto& [fd, peer] : got_) {
      io_ops::close_fd(fd);
    }
    got_.clear();
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<int, Address>> got_;
};

/// A raw blocking client connected to `to`; -1 on failure (errno kept).
int connect_client(const Address& to) {
  const int fd = ::socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  if (::connect(fd, to.data(), to.size()) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

/// Raw client fds, closed at the end.
struct Clients {
  std::vector<int> fds;
  ~Clients() { close_all(); }
  int add(const Address& to) {
    const int fd = connect_client(to);
    EXPECT_GE(fd, 0) << "connect to " << to.to_string() << ": " << std::strerror(errno);
    if (fd >= 0) {
      fds.push_back(fd);
    }
    return fd;
  }
  void close_all() {
    for (int fd : fds) {
      ::close(fd);
    }
    fds.clear();
  }
};

std::string temp_socket_path() {
  static std::atomic<int> n{0};
  return "/tmp/fl-listener-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + ".sock";
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

Address must_parse(const std::string& text) {
  std::string why;
  auto a = Address::parse(text, &why);
  if (!a) {
    throw std::invalid_argument(why);
  }
  return *a;
}

/// A Poll on its own thread; listeners made through listen_started() are closed, the loop
/// stopped and the accepted fds closed before FaultTest's leak check.
class ListenerFixture : public testing::FaultTest {
 protected:
  void start_poll(TriggerMode trigger) {
    PollOptions options;
    options.trigger = trigger;
    auto poll = Poll::create(options);
    ASSERT_TRUE(poll) << poll.error().message();
    poll_ = std::move(*poll);
    poll_->start();
  }
  void TearDown() override {
    for (auto& l : listeners_) {
      if (poll_) {
        on_loop(*poll_, [&] { l->close(); });
      } else {
        l->close();
      }
    }
    poll_.reset();
    listeners_.clear();
    accepted_.close_all();
    FaultTest::TearDown();
  }

  /// Listens on `address` and starts accepting into accepted_.
  std::shared_ptr<Listener> listen_started(const Address& address, ListenerOptions options = {},
                                           Listener::AcceptCallback cb = nullptr) {
    auto l = Listener::listen(address, options);
    EXPECT_TRUE(l) << address.to_string() << ": " << l.error().message();
    if (!l) {
      return nullptr;
    }
    listeners_.push_back(*l);
    (*l)->start(*poll_, cb ? std::move(cb) : accepted_.callback());
    return *l;
  }

  void close_on_loop(const std::shared_ptr<Listener>& l) {
    on_loop(*poll_, [&] { l->close(); });
  }

  std::unique_ptr<Poll> poll_;
  std::vector<std::shared_ptr<Listener>> listeners_;
  Accepted accepted_;
};

class ListenerTest : public ListenerFixture, public ::testing::WithParamInterface<TriggerMode> {
 protected:
  void SetUp() override {
    FaultTest::SetUp();
    start_poll(GetParam());
  }
};

TEST_P(ListenerTest, TcpV4PortZeroGetsARealPortAndAcceptsClients) {
  auto l = listen_started(must_parse("127.0.0.1:0"));
  ASSERT_TRUE(l);
  EXPECT_EQ(l->local_address().family(), AF_INET);
  EXPECT_NE(l->local_address().port(), 0);
  EXPECT_EQ(l->local_address().to_string(),
            "127.0.0.1:" + std::to_string(l->local_address().port()));
  Clients clients;
  for (int i = 0; i < 3; ++i) {
    clients.add(l->local_address());
  }
  ASSERT_TRUE(eventually([&] { return accepted_.count() == 3; })) << accepted_.count();
  std::vector<uint16_t> client_ports;
  for (int fd : clients.fds) {
    sockaddr_in me{};
    socklen_t len = sizeof me;
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&me), &len), 0);
    client_ports.push_back(ntohs(me.sin_port));
  }
  for (const auto& [fd, peer] : accepted_.snapshot()) {
    EXPECT_EQ(peer.family(), AF_INET);
    EXPECT_EQ(peer.to_string().rfind("127.0.0.1:", 0), 0u) << peer.to_string();
    EXPECT_NE(std::find(client_ports.begin(), client_ports.end(), peer.port()),
              client_ports.end());
  }
  EXPECT_EQ(l->accepted(), 3u);
  EXPECT_EQ(l->accept_errors(), 0u);
  EXPECT_EQ(l->pauses(), 0u);
  EXPECT_FALSE(l->paused());
}

TEST_P(ListenerTest, TcpV6LoopbackAcceptsWithAnInet6Peer) {
  auto l = Listener::listen(must_parse("[::1]:0"));
  if (!l && (l.error() == std::errc::address_family_not_supported ||
             l.error() == std::errc::address_not_available)) {
    GTEST_SKIP() << "no IPv6 loopback here: " << l.error().message();
  }
  ASSERT_TRUE(l) << l.error().message();
  listeners_.push_back(*l);
  (*l)->start(*poll_, accepted_.callback());
  const Address& local = (*l)->local_address();
  EXPECT_EQ(local.family(), AF_INET6);
  EXPECT_NE(local.port(), 0);
  EXPECT_EQ(local.to_string(), "[::1]:" + std::to_string(local.port()));
  Clients clients;
  clients.add(local);
  ASSERT_TRUE(eventually([&] { return accepted_.count() == 1; }));
  const auto got = accepted_.snapshot();
  EXPECT_EQ(got[0].second.family(), AF_INET6);
  EXPECT_EQ(got[0].second.to_string().rfind("[::1]:", 0), 0u) << got[0].second.to_string();
}

TEST_P(ListenerTest, UnixSocketAcceptsAndCloseRemovesThePath) {
  const std::string path = temp_socket_path();
  auto l = listen_started(must_parse("unix:" + path));
  ASSERT_TRUE(l);
  EXPECT_EQ(l->local_address().to_string(), "unix:" + path);
  EXPECT_TRUE(path_exists(path));
  Clients clients;
  clients.add(l->local_address());
  clients.add(l->local_address());
  ASSERT_TRUE(eventually([&] { return accepted_.count() == 2; }));
  for (const auto& [fd, peer] : accepted_.snapshot()) {
    EXPECT_EQ(peer.family(), AF_UNIX);
    EXPECT_EQ(peer.to_string(), "unix:");  // unnamed client sockets
  }
  close_on_loop(l);
  EXPECT_TRUE(l->closed());
  EXPECT_FALSE(path_exists(path));
}

TEST_P(ListenerTest, CloseIsIdempotentFromAnyThread) {
  const std::string path = temp_socket_path();
  auto l = listen_started(must_parse("unix:" + path));
  ASSERT_TRUE(l);
  const int64_t open_before = sys::fds_open();
  l->close();  // from the test thread: handed to the loop
  EXPECT_TRUE(eventually([&] { return l->closed(); }));
  close_on_loop(l);  // again, on the loop: nothing happens
  l->close();
  on_loop(*poll_, [] {});  // let the last hand-off run
  EXPECT_EQ(sys::fds_open(), open_before - 1);  // exactly one close
  EXPECT_FALSE(path_exists(path));
  EXPECT_EQ(on_loop(*poll_, [&] { return poll_->registered(); }), 0u);
  // A client now finds nobody.
  EXPECT_EQ(connect_client(l->local_address()), -1);
}

TEST_P(ListenerTest, DestructorWithoutCloseClosesTheFdOnce) {
  const std::string path = temp_socket_path();
  const int64_t open_before = sys::fds_open();
  {
    auto l = Listener::listen(must_parse("unix:" + path));
    ASSERT_TRUE(l);
    EXPECT_EQ(sys::fds_open(), open_before + 1);
  }
  EXPECT_EQ(sys::fds_open(), open_before);
  EXPECT_FALSE(path_exists(path));
}

TEST_P(ListenerTest, ThrowingOnAcceptClosesThatFdAndKeepsAccepting) {
  std::atomic<int> calls{0};
  auto l = listen_started(must_parse("127.0.0.1:0"), {}, [&](int fd, const Address& peer) {
    if (calls.fetch_add(1) == 0) {
      throw std::runtime_error("handler failed");
    }
    accepted_.callback()(fd, peer);
  });
  ASSERT_TRUE(l);
  Clients clients;
  const int first = clients.add(l->local_address());
  ASSERT_TRUE(eventually([&] { return l->callback_errors() == 1; }));
  // The listener closed the first connection: its client reads end of input.
  char byte = 0;
  EXPECT_EQ(::recv(first, &byte, 1, 0), 0);
  clients.add(l->local_address());
  ASSERT_TRUE(eventually([&] { return accepted_.count() == 1; }));
  EXPECT_EQ(l->accepted(), 2u);
  EXPECT_EQ(l->callback_errors(), 1u);
  EXPECT_FALSE(l->paused());
  // FaultTest's leak check proves the thrown-on fd was closed through the seam.
}

TEST_P(ListenerTest, SmallBatchStillAcceptsEveryClient) {
  ListenerOptions options;
  options.accept_batch = 2;
  auto l = listen_started(must_parse("127.0.0.1:0"), options);
  ASSERT_TRUE(l);
  Clients clients;
  for (int i = 0; i < 20; ++i) {
    clients.add(l->local_address());
  }
  ASSERT_TRUE(eventually([&] { return accepted_.count() == 20; })) << accepted_.count();
  EXPECT_EQ(l->accepted(), 20u);
}

TEST_P(ListenerTest, StartTwiceIsMisuse) {
  auto l = listen_started(must_parse("127.0.0.1:0"));
  ASSERT_TRUE(l);
  EXPECT_THROW(l->start(*poll_, accepted_.callback()), std::logic_error);
}

TEST_P(ListenerTest, PortInUseIsEaddrinuse) {
  auto l = listen_started(must_parse("127.0.0.1:0"));
  ASSERT_TRUE(l);
  const int64_t open_before = sys::fds_open();
  auto again = Listener::listen(l->local_address());
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), std::errc::address_in_use);
  EXPECT_EQ(sys::fds_open(), open_before);  // nothing left open
  auto empty = Listener::listen(Address());
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error(), std::errc::invalid_argument);
}

TEST_P(ListenerTest, StaleUnixPathIsRemovedOnlyWhenAskedAndOnlyIfNobodyListens) {
  const std::string path = temp_socket_path();
  const Address address = must_parse("unix:" + path);
  {  // a stale socket file: bound, listened, closed without unlink
    const int raw = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(::bind(raw, address.data(), address.size()), 0) << std::strerror(errno);
    ASSERT_EQ(::listen(raw, 1), 0);
    ::close(raw);
  }
  auto refused = Listener::listen(address);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), std::errc::address_in_use);
  EXPECT_TRUE(path_exists(path));  // not ours: left alone

  ListenerOptions unlink_stale;
  unlink_stale.unlink_stale_unix_path = true;
  auto l = listen_started(address, unlink_stale);
  ASSERT_TRUE(l);

  // A live server is not unlinked from under it.
  auto second = Listener::listen(address, unlink_stale);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), std::errc::address_in_use);
  // Its probe was a connection that the live server accepted (and saw closed at once).
  Clients clients;
  clients.add(address);
  EXPECT_TRUE(eventually([&] { return accepted_.count() == 2; })) << accepted_.count();
  close_on_loop(l);
  EXPECT_FALSE(path_exists(path));

  // A file that is not a socket is never removed.
  { std::ofstream(path) << "not a socket"; }
  auto file = Listener::listen(address, unlink_stale);
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error(), std::errc::address_in_use);
  EXPECT_TRUE(path_exists(path));
  ::unlink(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(Level, ListenerTest, ::testing::Values(TriggerMode::kLevel));
INSTANTIATE_TEST_SUITE_P(Edge, ListenerTest, ::testing::Values(TriggerMode::kEdge));

// ---- a real EMFILE (libuv test-emfile) ------------------------------------------------

class ListenerRealEmfileTest : public ListenerFixture {
 protected:
  void SetUp() override {
    FaultTest::SetUp();
    start_poll(TriggerMode::kLevel);
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved_), 0);
  }
  void TearDown() override {
    close_fillers();
    ::setrlimit(RLIMIT_NOFILE, &saved_);
    ListenerFixture::TearDown();
  }
  /// Lowers the soft limit a little above the fds in use and fills every free number below
  /// it with raw dups, so that the next fd the process asks for fails with EMFILE.
  void exhaust_fds() {
    const int probe = ::dup(0);
    ASSERT_GE(probe, 0);
    ::close(probe);
    rlimit low = saved_;
    low.rlim_cur = static_cast<rlim_t>(probe) + 16;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0) << std::strerror(errno);
    for (int i = 0; i < 4096; ++i) {
      const int fd = ::dup(0);
      if (fd < 0) {
        ASSERT_EQ(errno, EMFILE) << std::strerror(errno);
        return;
      }
      fillers_.push_back(fd);
    }
    FAIL() << "dup never ran out of fds";
  }
  void close_fillers() {
    for (int fd : fillers_) {
      ::close(fd);
    }
    fillers_.clear();
  }

  rlimit saved_{};
  std::vector<int> fillers_;
};

TEST_F(ListenerRealEmfileTest, ExhaustedFdsPauseWithoutSpinningAndAcceptingResumes) {
  auto l = listen_started(must_parse("127.0.0.1:0"));
  ASSERT_TRUE(l);
  on_loop(*poll_, [] {});  // registered
  // Client sockets first: connecting needs no new fd once the socket exists.
  std::vector<int> clients;
  for (int i = 0; i < 3; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    clients.push_back(fd);
  }
  exhaust_fds();
  for (int fd : clients) {
    ASSERT_EQ(::connect(fd, l->local_address().data(), l->local_address().size()), 0)
        << std::strerror(errno);
  }
  ASSERT_TRUE(eventually([&] { return l->paused(); }));
  EXPECT_EQ(l->pauses(), 1u);
  const uint64_t before = poll_->iterations();
  std::this_thread::sleep_for(300ms);
  const uint64_t spent = poll_->iterations() - before;
  EXPECT_LE(spent, 40u) << "the loop spun while accepting was paused";
  EXPECT_TRUE(l->paused());
  EXPECT_EQ(l->accepted(), 0u);
  EXPECT_GE(l->failed_retries(), 2u);

  close_fillers();  // fds come back: the next retry accepts the waiting clients
  // on_accept runs inside the retry, before the Listener registers again: wait for both.
  EXPECT_TRUE(eventually([&] { return accepted_.count() == 3 && !l->paused(); }, 5000ms))
      << accepted_.count();
  EXPECT_EQ(l->resumes(), 1u);
  ::setrlimit(RLIMIT_NOFILE, &saved_);
  for (int fd : clients) {
    ::close(fd);
  }
}

}  // namespace
}  // namespace faultloop
