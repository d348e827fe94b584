// Connection and dial_connection on real sockets (label unit: nothing is injected). Ports what
// netpoll's own suite checks (BUGZOO.md): data then ErrEOF after a peer close, close callbacks
// added in on_request, on_connect-only servers releasing on peer close, 5000 bytes then close,
// close while output is stuck on a full send buffer, calls after close (#416), a throwing
// handler (#238), on_disconnect never before on_connect returned (#307), a close during a
// request completed by the request path (#304), every byte before a FIN (#278).
//
// The server side of each pair is adopted by the seam (sys::adopt) and owned by the
// Connection; the peer side is a raw blocking socket with a receive timeout, so a bug shows as
// a failed assertion, not a hang. FaultTest's TearDown checks that every fd and pool node
// came back.
#include "reactor/connection.h"

#include <fcntl.h>
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "harness/testing/fault_test.h"
#include "reactor/dialer.h"
#include "reactor/errc.h"
#include "reactor/executor.h"
#include "reactor/listener.h"
#include "reactor/node_pool.h"
#include "reactor/poll.h"
#include "reactor/sys/sys.h"
#include "reactor/tests/conn_helpers.h"
#include "reactor/tests/loop_helpers.h"

namespace faultloop {
namespace {

using namespace std::chrono_literals;
using testing::echo;
using testing::eventually;
using testing::pattern;
using testing::recv_eof;
using testing::recv_n;
using testing::send_all;
using testing::tcp_pair;
using testing::unix_pair;
using Pair = testing::Pair;
using testing::on_loop;

class ConnectionTest : public testing::ConnectionFixture,
                       public ::testing::WithParamInterface<TriggerMode> {
 protected:
  void SetUp() override {
    FaultTest::SetUp();
    start_poll(trigger());
  }

  virtual TriggerMode trigger() const { return GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(Trigger, ConnectionTest,
                         ::testing::Values(TriggerMode::kLevel, TriggerMode::kEdge),
                         [](const auto& param_info) {
                           return param_info.param == TriggerMode::kLevel ? "Level" : "Edge";
                         });

TEST_P(ConnectionTest, InlineEchoIsByteExactAcrossManyWrites) {
  auto p = unix_pair();
  start(p, {.on_request = echo});
  const std::string data = pattern(1 << 20);
  std::thread writer([&] { send_all(p.peer, data); });
  const std::string back = recv_n(p.peer, data.size());
  writer.join();
  EXPECT_EQ(back.size(), data.size());
  EXPECT_TRUE(back == data);
}

TEST_P(ConnectionTest, PoolEchoIsByteExact) {
  auto p = tcp_pair();
  start(p, {.on_request = echo}, &pool());
  const std::string data = pattern(512 * 1024);
  std::thread writer([&] { send_all(p.peer, data); });
  const std::string back = recv_n(p.peer, data.size());
  writer.join();
  EXPECT_TRUE(back == data);
}

TEST_P(ConnectionTest, ReadAfterPeerCloseReturnsTheDataThenEof) {
  // netpoll TestReadAfterClose-style: a connection without handlers, read by a user thread.
  auto p = unix_pair();
  auto conn = start(p, {});
  send_all(p.peer, "hello world");
  close_peer(p.peer);
  ASSERT_TRUE(eventually([&] { return conn->peer_closed(); }));
  auto first = conn->read_string(5);
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(*first, "hello");
  auto rest = conn->read_string(6);
  ASSERT_TRUE(rest) << rest.error().message();
  EXPECT_EQ(*rest, " world");
  auto more = conn->next(1);
  ASSERT_FALSE(more);
  EXPECT_EQ(more.error(), make_error_code(Errc::kEof));
  // Drained and at end of input: the peer's close closes it (the poller won).
  EXPECT_TRUE(eventually([&] { return conn->finalized(); }));
  EXPECT_EQ(conn->closed_by(), CloseWho::kPoller);
}

TEST_P(ConnectionTest, ACloseCallbackAddedInOnRequestFiresOnPeerClose) {
  auto p = unix_pair();
  std::atomic<int> fired{0};
  start(p, {.on_request = [&](Connection& c) {
              c.skip(c.len());
              EXPECT_FALSE(c.add_close_callback([&](Connection&) { fired.fetch_add(1); }));
            }});
  send_all(p.peer, "x");
  ASSERT_TRUE(eventually([&] { return conns_[0]->len() == 0 && conns_[0]->processing() == false; }));
  close_peer(p.peer);
  EXPECT_TRUE(eventually([&] { return conns_[0]->finalized(); }));
  EXPECT_EQ(fired.load(), 1);
}

TEST_P(ConnectionTest, WithOnlyOnConnectAPeerCloseStillReleasesTheConnection) {
  auto p = unix_pair();
  std::atomic<int> connected{0};
  auto conn = start(p, {.on_connect = [&](Connection&) { connected.fetch_add(1); }});
  ASSERT_TRUE(eventually([&] { return connected.load() == 1; }));
  send_all(p.peer, "unread bytes");
  close_peer(p.peer);
  EXPECT_TRUE(eventually([&] { return conn->finalized(); }));
  EXPECT_EQ(conn->closed_by(), CloseWho::kPoller);
}

TEST_P(ConnectionTest, ServerCloseInsideOnConnectGivesTheClientEof) {
  auto p = tcp_pair();
  start(p, {.on_connect = [](Connection& c) { c.close(); }});
  EXPECT_TRUE(recv_eof(p.peer));
  EXPECT_TRUE(eventually([&] { return conns_[0]->finalized(); }));
  EXPECT_EQ(conns_[0]->closed_by(), CloseWho::kUser);
}

TEST_P(ConnectionTest, FiveThousandBytesWrittenThenClosedAtOnceAreAllDelivered) {
  for (int round = 0; round < 20; ++round) {
    auto p = tcp_pair();
    std::atomic<std::size_t> got{0};
    std::atomic<int> disconnects{0};
    auto conn = start(p, {.on_request = [&](Connection& c) { got += c.len(); c.skip(c.len()); },
                          .on_disconnect = [&](Connection&) { disconnects.fetch_add(1); }});
    send_all(p.peer, pattern(5000));
    close_peer(p.peer);
    ASSERT_TRUE(eventually([&] { return conn->finalized(); })) << "round " << round;
    EXPECT_EQ(got.load(), 5000u) << "round " << round;  // netpoll #278
    EXPECT_EQ(disconnects.load(), 1) << "round " << round;
  }
}

TEST_P(ConnectionTest, CloseWhileOutputIsStuckOnAFullSendBufferDoesNotHangOrLeak) {
  auto p = tcp_pair();
  const int small = 4096;
  ::setsockopt(p.peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  auto conn = start(p, {});
  const std::string big = pattern(8 << 20);
  ASSERT_FALSE(conn->write_binary(big));
  ASSERT_FALSE(conn->flush());  // never blocks: what the kernel did not take stays buffered
  EXPECT_GT(conn->pending_output(), 0u);
  ASSERT_FALSE(conn->close());
  EXPECT_TRUE(eventually([&] { return conn->finalized(); }));
  EXPECT_EQ(conn->pending_output(), 0u);  // released by the finalizer
  EXPECT_EQ(conn->flush(), make_error_code(Errc::kConnClosed));
}

TEST_P(ConnectionTest, CallsAfterCloseReturnErrorsAndNeverCrash) {
  // netpoll #416: every reader, writer and control call after close.
  auto p = unix_pair();
  auto conn = start(p, {});
  ASSERT_FALSE(conn->close());
  ASSERT_TRUE(eventually([&] { return conn->finalized(); }));
  const auto closed = make_error_code(Errc::kConnClosed);
  EXPECT_EQ(conn->close(), closed);
  EXPECT_EQ(conn->next(1).error(), closed);
  EXPECT_EQ(conn->peek(1).error(), closed);
  EXPECT_EQ(conn->skip(1), closed);
  EXPECT_EQ(conn->until('\n').error(), closed);
  EXPECT_EQ(conn->read_string(1).error(), closed);
  EXPECT_EQ(conn->slice(1).error(), closed);
  EXPECT_EQ(conn->release(), closed);
  EXPECT_EQ(conn->malloc(8).error(), closed);
  EXPECT_EQ(conn->malloc_ack(0), closed);
  EXPECT_EQ(conn->write_binary(std::string_view("abc")), closed);
  int released = 0;
  const std::string big(8192, 'x');
  EXPECT_EQ(conn->write_binary(big, [&] { ++released; }), closed);
  EXPECT_EQ(released, 1);
  EXPECT_EQ(conn->flush(), closed);
  EXPECT_EQ(conn->shutdown_write(), closed);
  EXPECT_EQ(conn->pause_read(), closed);
  EXPECT_EQ(conn->resume_read(), closed);
  EXPECT_EQ(conn->add_close_callback([](Connection&) {}), closed);
  EXPECT_EQ(conn->len(), 0u);
}

TEST_P(ConnectionTest, AThrowingHandlerClosesItsConnection) {
  for (Executor* executor : {static_cast<Executor*>(&inline_), static_cast<Executor*>(&pool())}) {
    auto p = unix_pair();
    std::atomic<int> callbacks{0};
    auto conn = start(p,
                      {.on_connect = [&](Connection& c) {
                         c.add_close_callback([&](Connection&) { callbacks.fetch_add(1); });
                       },
                       .on_request = [](Connection&) { throw std::runtime_error("boom"); }},
                      executor);
    send_all(p.peer, "trigger");
    EXPECT_TRUE(eventually([&] { return conn->finalized(); }));
    EXPECT_EQ(conn->closed_by(), CloseWho::kUser);
    EXPECT_EQ(conn->handler_exceptions(), 1u);
    EXPECT_EQ(callbacks.load(), 1);
    EXPECT_TRUE(recv_eof(p.peer));
  }
}

TEST_P(ConnectionTest, CloseCallbacksRunOnceEachLastInFirstOut) {
  auto p = unix_pair();
  std::mutex mu;
  std::vector<int> order;
  auto conn = start(p, {});
  for (int i = 0; i < 4; ++i) {
    ASSERT_FALSE(conn->add_close_callback([&, i](Connection& c) {
      EXPECT_FALSE(c.finalized());  // the finalizer runs after every user callback
      std::lock_guard lock(mu);
      order.push_back(i);
    }));
  }
  conn->close();
  conn->close();
  ASSERT_TRUE(eventually([&] { return conn->finalized(); }));
  std::lock_guard lock(mu);
  EXPECT_EQ(order, (std::vector<int>{3, 2, 1, 0}));
}

TEST_P(ConnectionTest, OnDisconnectRunsOnlyWhenThePollerWins) {
  auto p1 = unix_pair();
  auto p2 = unix_pair();
  std::atomic<int> d1{0};
  std::atomic<int> d2{0};
  auto peer_closed = start(p1, {.on_disconnect = [&](Connection&) { d1.fetch_add(1); }});
  auto user_closed = start(p2, {.on_disconnect = [&](Connection&) { d2.fetch_add(1); }});
  close_peer(p1.peer);
  user_closed->close();
  ASSERT_TRUE(eventually([&] { return peer_closed->finalized() && user_closed->finalized(); }));
  EXPECT_EQ(peer_closed->closed_by(), CloseWho::kPoller);
  EXPECT_EQ(d1.load(), 1);
  EXPECT_EQ(user_closed->closed_by(), CloseWho::kUser);
  EXPECT_EQ(d2.load(), 0);
}

TEST_P(ConnectionTest, OnDisconnectNeverRunsBeforeOnConnectReturned) {
  // netpoll #307: the peer hangs up while on_connect is still running.
  auto p = unix_pair();
  std::atomic<bool> connect_returned{false};
  std::atomic<bool> disconnect_saw_connect{false};
  std::atomic<int> disconnects{0};
  auto conn = start(p,
                    {.on_connect =
                         [&](Connection&) {
                           std::this_thread::sleep_for(200ms);
                           connect_returned = true;
                         },
                     .on_disconnect =
                         [&](Connection&) {
                           disconnect_saw_connect = connect_returned.load();
                           disconnects.fetch_add(1);
                         }},
                    &pool());
  std::this_thread::sleep_for(20ms);
  close_peer(p.peer);
  ASSERT_TRUE(eventually([&] { return conn->finalized(); }));
  EXPECT_EQ(disconnects.load(), 1);
  EXPECT_TRUE(disconnect_saw_connect.load());
}

TEST_P(ConnectionTest, ACloseDuringARequestIsCompletedWhenTheRequestLetsGo) {
  // netpoll #304: close() from another thread while on_request holds the processing lock.
  auto p = unix_pair();
  std::atomic<bool> in_request{false};
  std::atomic<bool> request_returned{false};
  std::atomic<bool> callback_after_return{false};
  std::atomic<int> callbacks{0};
  auto conn = start(p,
                    {.on_request =
                         [&](Connection& c) {
                           c.skip(c.len());
                           in_request = true;
                           std::this_thread::sleep_for(200ms);
                           request_returned = true;
                         }},
                    &pool());
  conn->add_close_callback([&](Connection&) {
    callback_after_return = request_returned.load();
    callbacks.fetch_add(1);
  });
  send_all(p.peer, "x");
  ASSERT_TRUE(eventually([&] { return in_request.load(); }));
  EXPECT_FALSE(conn->close());
  EXPECT_FALSE(conn->is_active());
  EXPECT_FALSE(conn->finalized());  // the handler still holds the buffers
  ASSERT_TRUE(eventually([&] { return conn->finalized(); }));
  EXPECT_EQ(callbacks.load(), 1);
  EXPECT_TRUE(callback_after_return.load());
}

TEST_P(ConnectionTest, ConcurrentUserAndPollerCloseResolveExactlyOnce) {
  for (int round = 0; round < 50; ++round) {
    auto p = unix_pair();
    std::atomic<int> disconnects{0};
    std::atomic<int> callbacks{0};
    auto conn = start(p, {.on_disconnect = [&](Connection&) { disconnects.fetch_add(1); }});
    conn->add_close_callback([&](Connection&) { callbacks.fetch_add(1); });
    std::thread user([&] { conn->close(); });
    close_peer(p.peer);
    user.join();
    ASSERT_TRUE(eventually([&] { return conn->finalized(); })) << "round " << round;
    EXPECT_EQ(callbacks.load(), 1) << "round " << round;
    EXPECT_EQ(disconnects.load(), conn->closed_by() == CloseWho::kPoller ? 1 : 0);
  }
}

TEST_P(ConnectionTest, PeerHalfCloseDeliversEverythingThenClosesByDefault) {
  auto p = tcp_pair();
  auto conn = start(p, {.on_request = echo});
  const std::string data = pattern(100000);
  send_all(p.peer, data);
  ::shutdown(p.peer, SHUT_WR);
  EXPECT_TRUE(recv_n(p.peer, data.size()) == data);
  EXPECT_TRUE(recv_eof(p.peer));
  EXPECT_TRUE(eventually([&] { return conn->finalized(); }));
  EXPECT_EQ(conn->closed_by(), CloseWho::kPoller);
}

TEST_P(ConnectionTest, WithHalfCloseTheConnectionStaysWritableAfterThePeersFin) {
  auto p = tcp_pair();
  std::atomic<int> requests{0};
  auto conn = start(p, {.on_request = [&](Connection& c) {
                          c.skip(c.len());
                          requests.fetch_add(1);
                        }},
                    nullptr, {.half_close = true});
  send_all(p.peer, "question");
  ::shutdown(p.peer, SHUT_WR);
  ASSERT_TRUE(eventually([&] { return conn->peer_closed(); }));
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(conn->is_active());
  ASSERT_FALSE(conn->write_binary(std::string_view("answer")));
  ASSERT_FALSE(conn->flush());
  EXPECT_EQ(recv_n(p.peer, 6), "answer");
  EXPECT_EQ(conn->next(1).error(), make_error_code(Errc::kEof));
  ASSERT_FALSE(conn->close());
  EXPECT_TRUE(recv_eof(p.peer));
}

TEST_P(ConnectionTest, ShutdownWriteSendsTheFinAfterThePendingOutput) {
  auto p = tcp_pair();
  auto conn = start(p, {});
  const std::string data = pattern(3 << 20);  // more than the socket buffers hold
  ASSERT_FALSE(conn->write_binary(data));
  ASSERT_FALSE(conn->shutdown_write());
  EXPECT_EQ(conn->write_binary(std::string_view("late")), make_error_code(Errc::kConnClosed));
  EXPECT_TRUE(recv_n(p.peer, data.size()) == data);
  EXPECT_TRUE(recv_eof(p.peer));
  // Still readable: the peer may answer after our FIN.
  send_all(p.peer, "reply");
  auto reply = conn->read_string(5);
  ASSERT_TRUE(reply) << reply.error().message();
  EXPECT_EQ(*reply, "reply");
}

TEST_P(ConnectionTest, InlineNextWithTooFewBytesIsErrWouldBlock) {
  auto p = unix_pair();
  std::mutex mu;
  std::vector<std::error_code> seen;
  std::string got;
  start(p, {.on_request = [&](Connection& c) {
              auto r = c.next(10);
              std::lock_guard lock(mu);
              if (r) {
                got.assign(r->data(), r->size());
              } else {
                seen.push_back(r.error());
              }
            }});
  send_all(p.peer, "12345");
  ASSERT_TRUE(eventually([&] { std::lock_guard l(mu); return !seen.empty(); }));
  send_all(p.peer, "67890");
  ASSERT_TRUE(eventually([&] { std::lock_guard l(mu); return !got.empty(); }));
  std::lock_guard lock(mu);
  EXPECT_EQ(seen.front(), make_error_code(Errc::kWouldBlock));
  EXPECT_EQ(got, "1234567890");
}

TEST_P(ConnectionTest, PoolNextWaitsForTheBytesOrTheReadTimeout) {
  auto p = unix_pair();
  std::mutex mu;
  std::vector<std::string> frames;
  std::error_code last;
  start(p,
        {.on_request =
             [&](Connection& c) {
               while (true) {
                 auto r = c.read_string(4);  // blocks in the worker
                 std::lock_guard lock(mu);
                 if (!r) {
                   last = r.error();
                   return;
                 }
                 frames.push_back(*r);
               }
             }},
        &pool(), {.read_timeout = 150ms});
  send_all(p.peer, "ab");
  std::this_thread::sleep_for(30ms);
  send_all(p.peer, "cdef");
  std::this_thread::sleep_for(30ms);
  send_all(p.peer, "gh");
  ASSERT_TRUE(eventually([&] { std::lock_guard l(mu); return static_cast<bool>(last); }));
  std::lock_guard lock(mu);
  EXPECT_EQ(frames, (std::vector<std::string>{"abcd", "efgh"}));
  EXPECT_EQ(last, make_error_code(Errc::kReadTimeout));
}

TEST_P(ConnectionTest, ABlockedReaderWakesWithErrConnClosedOnUserClose) {
  auto p = unix_pair();
  auto conn = start(p, {});
  std::error_code got;
  std::thread reader([&] { got = conn->next(100).error(); });
  std::this_thread::sleep_for(50ms);
  conn->close();
  reader.join();
  EXPECT_EQ(got, make_error_code(Errc::kConnClosed));
}

TEST_P(ConnectionTest, OutputLimitGivesErrBufferFull) {
  auto p = unix_pair();
  auto conn = start(p, {}, nullptr, {.max_output_bytes = 1000});
  ASSERT_FALSE(conn->write_binary(std::string(600, 'x')));
  EXPECT_EQ(conn->write_binary(std::string(600, 'y')), make_error_code(Errc::kBufferFull));
  EXPECT_EQ(conn->malloc(401).error(), make_error_code(Errc::kBufferFull));
  ASSERT_FALSE(conn->flush());
  EXPECT_EQ(recv_n(p.peer, 600), std::string(600, 'x'));
  EXPECT_TRUE(eventually([&] { return conn->pending_output() == 0; }));
  EXPECT_FALSE(conn->write_binary(std::string(600, 'z')));  // room again once sent
}

TEST_P(ConnectionTest, InputLimitPausesReadingAndConsumptionResumesIt) {
  auto p = unix_pair();
  auto conn = start(p, {}, nullptr, {.max_input_bytes = 64 * 1024});
  const std::string data = pattern(1 << 20);
  std::thread writer([&] { send_all(p.peer, data); });
  std::string got;
  std::size_t max_seen = 0;
  while (got.size() < data.size()) {
    std::this_thread::sleep_for(1ms);
    max_seen = std::max(max_seen, conn->len());
    const std::size_t n = std::min<std::size_t>(std::max<std::size_t>(conn->len(), 1), 32768);
    auto r = conn->read_string(n);
    ASSERT_TRUE(r) << r.error().message();
    got += *r;
  }
  writer.join();
  EXPECT_TRUE(got == data);
  // One booking may land on top of the limit: never more than limit + one node.
  EXPECT_LE(max_seen, 64u * 1024 + 16 * 1024);
}

TEST_P(ConnectionTest, PauseReadStopsDeliveryAndResumeReadRestartsIt) {
  auto p = unix_pair();
  auto conn = start(p, {});
  ASSERT_FALSE(conn->pause_read());
  std::this_thread::sleep_for(20ms);
  send_all(p.peer, "held");
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(conn->len(), 0u);
  ASSERT_FALSE(conn->resume_read());
  auto r = conn->read_string(4);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, "held");
}

TEST_P(ConnectionTest, IdleTimeoutReallyCloses) {
  auto p = unix_pair();
  auto conn = start(p, {.on_request = echo}, nullptr, {.idle_timeout = 200ms});
  auto last_input = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) {  // activity keeps it open past the timeout
    last_input = std::chrono::steady_clock::now();
    send_all(p.peer, "ping");
    EXPECT_EQ(recv_n(p.peer, 4), "ping");
    std::this_thread::sleep_for(60ms);
  }
  EXPECT_TRUE(conn->is_active());
  EXPECT_TRUE(recv_eof(p.peer));
  EXPECT_GE(std::chrono::steady_clock::now() - last_input, 200ms);
  EXPECT_EQ(conn->closed_by(), CloseWho::kUser);
}

TEST_P(ConnectionTest, WriteTimeoutClosesWhenThePeerStopsReading) {
  auto p = tcp_pair();
  auto conn = start(p, {}, nullptr, {.write_timeout = 200ms});
  ASSERT_FALSE(conn->write_binary(pattern(16 << 20)));
  ASSERT_FALSE(conn->flush());
  EXPECT_TRUE(conn->is_active());
  ASSERT_TRUE(eventually([&] { return conn->finalized(); }));
  EXPECT_EQ(conn->closed_by(), CloseWho::kUser);
}

TEST_P(ConnectionTest, WritingToAResetPeerIsAnErrorNotSigpipe) {
  auto p = tcp_pair();
  auto conn = start(p, {});
  const linger lg{1, 0};
  ::setsockopt(p.peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close_peer(p.peer);  // RST
  std::error_code ec;
  for (int i = 0; i < 20 && !ec; ++i) {
    ec = conn->write_binary(std::string_view("x"));
    if (!ec) {
      ec = conn->flush();
    }
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(ec);  // EPIPE/ECONNRESET or ErrEOF once the poller saw the reset; alive anyway
  EXPECT_TRUE(eventually([&] { return conn->finalized(); }));
  EXPECT_EQ(conn->closed_by(), CloseWho::kPoller);
}

// ---- dial_connection

class DialTest : public ConnectionTest {
 protected:
  TriggerMode trigger() const override { return TriggerMode::kLevel; }

  void TearDown() override {
    if (listener_) {
      on_loop(*poll_, [&] { listener_->close(); });
    }
    {
      std::lock_guard lock(accepted_mu_);
      conns_.insert(conns_.end(), accepted_.begin(), accepted_.end());
    }
    ConnectionTest::TearDown();
  }

  // Listens on 127.0.0.1:0 and starts an inline connection with `handlers` per accepted fd.
  Address listen(ConnectionHandlers handlers) {
    auto l = Listener::listen(*Address::parse("127.0.0.1:0"));
    EXPECT_TRUE(l) << l.error().message();
    listener_ = *l;
    auto shared = std::make_shared<const ConnectionHandlers>(std::move(handlers));
    listener_->start(*poll_, [this, shared](int fd, const Address& peer) {
      auto c = Connection::create(fd, *poll_, inline_, shared, {}, peer);
      c->start();
      std::lock_guard lock(accepted_mu_);
      accepted_.push_back(c);
    });
    return listener_->local_address();
  }

  std::shared_ptr<Listener> listener_;
  std::mutex accepted_mu_;
  std::vector<ConnectionPtr> accepted_;
};

TEST_F(DialTest, DialsAListenerAndTalks) {
  const Address server = listen({.on_request = echo});
  auto conn = dial_connection(*poll_, server, {.timeout = 2s});
  ASSERT_TRUE(conn) << conn.error().message();
  conns_.push_back(*conn);
  ASSERT_FALSE((*conn)->write_binary(std::string_view("over the dialer")));
  ASSERT_FALSE((*conn)->flush());
  auto back = (*conn)->read_string(15);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, "over the dialer");
}

TEST_F(DialTest, ServerCloseInOnConnectGivesTheDialedClientEof) {
  const Address server =
      listen({.on_connect = [](Connection& server_conn) { server_conn.close(); }});
  auto conn = dial_connection(*poll_, server, {.timeout = 2s});
  ASSERT_TRUE(conn) << conn.error().message();
  conns_.push_back(*conn);
  EXPECT_EQ((*conn)->next(1).error(), make_error_code(Errc::kEof));
}

TEST_F(DialTest, ARefusedDialIsTheKernelsError) {
  // A port nobody listens on: bind one, note it, close it.
  sockaddr_in a{};
  ::close(testing::loopback_socket(-1, &a));
  auto conn = dial_connection(*poll_, *Address::parse("127.0.0.1:" + std::to_string(ntohs(a.sin_port))),
                              {.timeout = 2s});
  ASSERT_FALSE(conn);
  EXPECT_EQ(conn.error(), std::error_code(ECONNREFUSED, std::system_category()));
}

TEST_F(DialTest, ADialThatGetsNoAnswerTimesOut) {
  // A listener that never accepts, its backlog filled: further SYNs are dropped.
  sockaddr_in a{};
  const int lfd = testing::loopback_socket(0, &a);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
    fillers.push_back(c);
  }
  std::this_thread::sleep_for(50ms);
  const auto t0 = std::chrono::steady_clock::now();
  auto conn = dial_connection(
      *poll_, *Address::parse("127.0.0.1:" + std::to_string(ntohs(a.sin_port))), {.timeout = 200ms});
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  for (int c : fillers) {
    ::close(c);
  }
  ::close(lfd);
  if (conn) {
    conns_.push_back(*conn);
    GTEST_SKIP() << "the kernel accepted the SYN despite the full backlog";
  }
  EXPECT_EQ(conn.error(), make_error_code(Errc::kDialTimeout));
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, 5s);
}

TEST_F(DialTest, DialingOnThePollThreadIsRefused) {
  auto r = on_loop(*poll_, [&] {
    return dial_connection(*poll_, *Address::parse("127.0.0.1:1")).error();
  });
  EXPECT_EQ(r, std::make_error_code(std::errc::operation_would_block));
}

}  // namespace
}  // namespace faultloop

// ---- regressions found in review

namespace faultloop {
namespace {

std::string thread_name() {
  char name[16] = {};
  ::pthread_getname_np(::pthread_self(), name, sizeof name);
  return name;
}

TEST_P(ConnectionTest, AHandlerWritingToAnotherConnectionKeepsItsOwn) {
  // The holder of A's processing lock called B's writer: leaving B's call must give A back
  // (it set "no holder", and A's next own call waited for itself forever).
  auto pa = unix_pair();
  auto pb = unix_pair();
  auto b = start(pb, {});
  std::atomic<bool> done{false};
  start(pa, {.on_request = [&](Connection& a) {
              auto data = a.next(a.len());
              ASSERT_TRUE(data);
              const std::string copy(data->data(), data->size());
              EXPECT_FALSE(b->write_binary(copy));
              EXPECT_FALSE(b->flush());
              EXPECT_FALSE(a.write_binary(copy));  // hung here
              EXPECT_FALSE(a.flush());
              done = true;
            }});
  send_all(pa.peer, "relay");
  EXPECT_EQ(recv_n(pb.peer, 5), "relay");
  EXPECT_EQ(recv_n(pa.peer, 5), "relay");
  EXPECT_TRUE(eventually([&] { return done.load(); }));
}

TEST_P(ConnectionTest, ConnectionsStillCloseAfterTheirPoolWasShutDown) {
  // A dispatch or close task the pool refuses must not leave the processing lock taken.
  auto p = unix_pair();
  std::atomic<int> callbacks{0};
  auto conn = start(p, {.on_request = echo}, &pool());
  conn->add_close_callback([&](Connection&) { callbacks.fetch_add(1); });
  ASSERT_TRUE(pool_->shutdown(std::chrono::steady_clock::now() + 5s));
  send_all(p.peer, "late");  // refused dispatch
  std::this_thread::sleep_for(20ms);
  close_peer(p.peer);        // the close must still complete
  EXPECT_TRUE(eventually([&] { return conn->finalized(); }));
  EXPECT_EQ(callbacks.load(), 1);
}

TEST_P(ConnectionTest, AnOldWriteTimerDoesNotCloseALaterStallEarly) {
  // Stall, drain, stall again: the first stall's timer must not judge the second.
  auto p = tcp_pair();
  auto conn = start(p, {}, nullptr, {.write_timeout = 400ms});
  const std::string chunk = pattern(16 << 20);  // more than loopback's buffers take
  ASSERT_FALSE(conn->write_binary(chunk));
  ASSERT_FALSE(conn->flush());
  ASSERT_GT(conn->pending_output(), 0u);  // stall 1 (t0): a timer for t0 + 400 ms
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(recv_n(p.peer, chunk.size()) == chunk);  // drained
  ASSERT_TRUE(eventually([&] { return conn->pending_output() == 0; }));
  std::this_thread::sleep_for(100ms);
  const auto stall2 = std::chrono::steady_clock::now();
  ASSERT_FALSE(conn->write_binary(chunk));
  ASSERT_FALSE(conn->flush());  // stall 2, nobody reads
  while (std::chrono::steady_clock::now() - stall2 < 350ms) {
    ASSERT_TRUE(conn->is_active()) << "closed "
                                   << std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now() - stall2)
                                          .count()
                                   << " ms into a 400 ms write timeout";
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(eventually([&] { return conn->finalized(); }));
  EXPECT_EQ(conn->flush(), make_error_code(Errc::kWriteTimeout));
}

TEST_P(ConnectionTest, PeerFinWithPendingOutputDrainsThenClosesOnTheExecutor) {
  // The poller drains the output after the peer's FIN and the end-of-input close follows.
  // on_disconnect is user code: on a worker, never on fl-poll-N; and no epoll_ctl may touch
  // the closed number (the fault build's ledger reports a call after close).
  auto p = tcp_pair();
  std::mutex mu;
  std::string disconnect_thread;
  const std::string big = pattern(16 << 20);  // more than loopback's buffers take
  auto conn = start(p,
                    {.on_request =
                         [&](Connection& c) {
                           c.skip(c.len());
                           ASSERT_FALSE(c.write_binary(big));
                           ASSERT_FALSE(c.flush());
                         },
                     .on_disconnect =
                         [&](Connection&) {
                           std::lock_guard lock(mu);
                           disconnect_thread = thread_name();
                         }},
                    &pool());
  send_all(p.peer, "go");
  ASSERT_TRUE(eventually([&] { return conn->pending_output() > 0; }));
  ::shutdown(p.peer, SHUT_WR);
  std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(recv_n(p.peer, big.size()) == big);
  EXPECT_TRUE(eventually([&] { return conn->finalized(); }));
  EXPECT_EQ(conn->closed_by(), CloseWho::kPoller);
  std::lock_guard lock(mu);
  EXPECT_EQ(disconnect_thread.rfind("fl-worker-", 0), 0u) << disconnect_thread;
}

TEST_P(ConnectionTest, APeerThatWritesAndLeavesWhileReadsArePausedLosesNothing) {
  // A unix peer's close is EPOLLHUP: the poller detaches at once. With reads paused (the input
  // limit reached) its last bytes and its FIN were still in the kernel and were dropped.
  auto p = unix_pair();
  auto conn = start(p, {}, nullptr, {.max_input_bytes = 4096});
  const std::string data = pattern(48 * 1024);
  send_all(p.peer, data);
  ASSERT_TRUE(eventually([&] { return conn->len() >= 4096; }));
  std::this_thread::sleep_for(20ms);
  close_peer(p.peer);
  std::this_thread::sleep_for(50ms);  // the hang-up is handled while reads are paused
  std::string got;
  while (got.size() < data.size()) {
    auto r = conn->read_string(std::min<std::size_t>(conn->len(), 8192));
    ASSERT_TRUE(r) << r.error().message() << " after " << got.size() << " bytes";
    if (r->empty()) {
      ASSERT_TRUE(conn->is_active() || conn->len() > 0) << "nothing more after " << got.size();
      std::this_thread::sleep_for(1ms);
    }
    got += *r;
  }
  EXPECT_TRUE(got == data);
  EXPECT_EQ(conn->next(1).error(), make_error_code(Errc::kEof));
  EXPECT_TRUE(eventually([&] { return conn->finalized(); }));
}

}  // namespace
}  // namespace faultloop
