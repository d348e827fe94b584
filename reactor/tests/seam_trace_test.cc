// The fault trace and replay through the seam (label faults; DESIGN "Trace"): a deterministic
// workload under a probability plan writes a trace; replaying it with no rules armed fires the
// same injections at the same (point, role, connection ordinal, per-fd call index). Malformed
// traces are refused with path:line.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include "faults/engine.h"
#include "faults/plan.h"
#include "faults/trace.h"
#include "harness/testing/fault_test.h"
#include "reactor/sys/sys.h"
#include "reactor/tests/test_sockets.h"

namespace faultloop {
namespace {

/// What replay must reproduce of one record.
struct Key {
  std::string point;
  std::string role;
  uint32_t conn_ordinal;
  uint64_t fd_call;
  std::string action;
  int64_t result;
  std::string error;

  friend bool operator==(const Key&, const Key&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Key& k) {
    return os << k.point << " role=" << k.role << " ordinal=" << k.conn_ordinal
              << " fd_call=" << k.fd_call << " " << k.action << " -> " << k.result << " "
              << k.error;
  }
};

std::vector<Key> keys_of(const faults::Trace& trace) {
  std::vector<Key> keys;
  for (const auto& r : trace.records) {
    keys.push_back({r.point, r.role, r.conn_ordinal, r.fd_call, r.action, r.result, r.error});
  }
  return keys;
}

const std::string kPlan =
    "reactor/sys/read:error=EAGAIN,probability=0.3;"
    "reactor/sys/write:error=EINTR,probability=0.2;"
    "reactor/sys/readv:short=50%,probability=0.5";

/// One thread, one socketpair tagged conn `conn`: reads, writes and readvs in a fixed order.
/// Returns every call's outcome (result, or -errno) so runs can be compared whole.
std::vector<long> workload(uint64_t conn) {
  testing::SeamSocketPair pair(conn);
  testing::write_all_raw(pair.peer(), std::string(400, 'r'));
  std::vector<long> outcomes;
  auto note = [&](ssize_t n) { outcomes.push_back(n < 0 ? -errno : static_cast<long>(n)); };
  for (int i = 0; i < 40; ++i) {
    char buf[8];
    note(sys::read(pair.sut(), buf, 1));
    note(sys::write(pair.sut(), "w", 1));
    iovec iov[2] = {{buf, 2}, {buf + 2, 2}};
    note(sys::readv(pair.sut(), iov, 2));
  }
  testing::drain_raw(pair.peer());
  return outcomes;
}

class SeamTraceTest : public testing::FaultTest {
 protected:
  void TearDown() override {
    faults::close_trace();
    for (const auto& p : paths_) {
      ::unlink(p.c_str());
    }
    testing::FaultTest::TearDown();
  }
  std::string path(const char* stem) {
    paths_.push_back(testing::temp_path(stem));
    return paths_.back();
  }
  std::vector<std::string> paths_;
};

TEST_F(SeamTraceTest, ReplayWithNoRulesReproducesEveryInjection) {
  const std::string recorded_path = path("trace");
  faults::TraceHeader header;
  header.scenario = "seam.replay";
  header.command = {"seam_faults_test"};
  header.seed = seed();
  header.plan = kPlan;
  faults::open_trace(recorded_path, header);
  ASSERT_TRUE(arm(kPlan));
  const auto first = workload(42);
  faults::close_trace();

  const faults::Trace recorded = faults::read_trace(recorded_path);
  EXPECT_EQ(recorded.header.scenario, "seam.replay");
  EXPECT_EQ(recorded.header.seed, seed());
  EXPECT_EQ(recorded.header.plan, kPlan);
  ASSERT_GT(recorded.records.size(), 10u) << "the plan should have fired often";
  for (const auto& r : recorded.records) {
    EXPECT_EQ(r.role, "conn");
    EXPECT_GE(r.rule, 0);
    EXPECT_GT(r.conn_ordinal, 0u);
  }

  faults::reset();
  ASSERT_TRUE(faults::rule_stats().empty());
  faults::load_replay(recorded);
  faults::TraceHeader replay_header = header;
  replay_header.scenario = "seam.replay.again";
  const std::string replayed_path = path("replayed");
  faults::open_trace(replayed_path, replay_header);
  const auto second = workload(42);
  faults::close_trace();
  const faults::Trace replayed = faults::read_trace(replayed_path);

  EXPECT_EQ(keys_of(replayed), keys_of(recorded));
  for (const auto& r : replayed.records) {
    EXPECT_EQ(r.rule, -1);  // fired by replay, not by a rule
  }
  EXPECT_EQ(second, first);  // the workload saw exactly the same calls
}

TEST_F(SeamTraceTest, ReplayKeysOnTheConnectionOrdinalNotItsId) {
  // Connection ids come from the reactor's own counter and differ from run to run; the
  // ordinal (order of first appearance) does not. Each run starts from reset().
  const std::string recorded_path = path("trace-ids");
  faults::open_trace(recorded_path, faults::TraceHeader{});
  ASSERT_TRUE(arm(kPlan));
  const auto first = workload(1001);
  faults::close_trace();
  const faults::Trace recorded = faults::read_trace(recorded_path);

  faults::reset();
  faults::load_replay(recorded);
  const std::string replayed_path = path("replayed-ids");
  faults::open_trace(replayed_path, faults::TraceHeader{});
  const auto second = workload(2002);
  faults::close_trace();
  EXPECT_EQ(keys_of(faults::read_trace(replayed_path)), keys_of(recorded));
  EXPECT_EQ(second, first);
}

/// One thread: an epoll set holding one socketpair end tagged `conn` (nothing ever readable),
/// polled 40 times with timeout 0. Returns each call's count and mask.
std::vector<long> events_workload(uint64_t conn) {
  testing::SeamSocketPair pair(conn);
  const int epfd = sys::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.u64 = 7;
  EXPECT_EQ(sys::epoll_ctl(epfd, EPOLL_CTL_ADD, pair.sut(), &ev), 0);
  std::vector<long> outcomes;
  for (int i = 0; i < 40; ++i) {
    epoll_event evs[4];
    const int n = sys::epoll_wait(epfd, evs, 4, 0);
    outcomes.push_back(n);
    outcomes.push_back(n > 0 ? static_cast<long>(evs[0].events) : 0);
  }
  sys::close(epfd);
  return outcomes;
}

TEST_F(SeamTraceTest, ReplayReproducesEventsInjections) {
  const std::string plan = "reactor/sys/epoll_wait:events=+IN,probability=0.4";
  const std::string recorded_path = path("trace-events");
  faults::open_trace(recorded_path, faults::TraceHeader{});
  ASSERT_TRUE(arm(plan));
  const auto first = events_workload(3);
  faults::close_trace();
  const faults::Trace recorded = faults::read_trace(recorded_path);
  ASSERT_GT(recorded.records.size(), 5u);
  for (const auto& r : recorded.records) {
    EXPECT_EQ(r.role, "conn");  // the unit is the registered fd, not the epoll fd
    EXPECT_EQ(r.action, "events=+IN");
  }

  faults::reset();
  faults::load_replay(recorded);
  const std::string replayed_path = path("replayed-events");
  faults::open_trace(replayed_path, faults::TraceHeader{});
  const auto second = events_workload(4);
  faults::close_trace();
  EXPECT_EQ(keys_of(faults::read_trace(replayed_path)), keys_of(recorded));
  EXPECT_EQ(second, first);
}

class SeamTraceFileTest : public SeamTraceTest {
 protected:
  std::string write(const char* stem, const std::string& text) {
    const std::string p = path(stem);
    std::ofstream(p) << text;
    return p;
  }
  /// The message read_trace throws for `text`, or "" when it does not throw.
  std::string error_of(const std::string& text) {
    const std::string p = write("bad", text);
    try {
      faults::read_trace(p);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  }
};

const std::string kHeader =
    R"({"type":"header","version":1,"scenario":"s","command":["x"],"seed":1,"iteration":0,"plan":""})";
const std::string kRecord =
    R"({"type":"injection","seq":1,"ns":5,"thread":"other","point":"reactor/sys/read","fd":3,)"
    R"("role":"conn","conn":1,"conn_ordinal":1,"fd_call":2,"rule":0,"action":"error=EAGAIN",)"
    R"("result":-1,"error":"EAGAIN"})";

TEST_F(SeamTraceFileTest, WellFormedTraceReadsBack) {
  const std::string p = write("good", kHeader + "\n" + kRecord + "\n");
  const faults::Trace t = faults::read_trace(p);
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].fd_call, 2u);
  EXPECT_EQ(t.records[0].error, "EAGAIN");
}

TEST_F(SeamTraceFileTest, MalformedTracesNamePathAndLine) {
  struct Bad {
    std::string text;
    std::string where;  // ":<line>:" expected after the path
  };
  const std::vector<Bad> cases = {
      {kRecord + "\n", ":1:"},                                  // no header first
      {kHeader + "\nnot json\n", ":2:"},                        // not JSON
      {kHeader + "\n\n" + R"({"type":"injection","seq":1})" + "\n", ":3:"},  // missing fields
      {kHeader + "\n" + kRecord + "\n" + R"({"type":"bogus"})" + "\n", ":3:"},
      {kHeader + "\n" + R"({"type":"injection","seq":"one"})" + "\n", ":2:"},  // wrong type
  };
  for (const auto& c : cases) {
    const std::string p = write("bad", c.text);
    std::string message;
    try {
      faults::read_trace(p);
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
    EXPECT_EQ(message.rfind(p + c.where, 0), 0u) << "message: \"" << message << "\"";
  }
  EXPECT_NE(error_of("").find("empty trace"), std::string::npos);
  std::string missing;
  try {
    faults::read_trace("/nonexistent/faultloop.trace");
  } catch (const std::runtime_error& e) {
    missing = e.what();
  }
  EXPECT_EQ(missing.rfind("/nonexistent/faultloop.trace:", 0), 0u) << missing;
}

TEST_F(SeamTraceFileTest, ReplayOfAnUnknownPointIsRefused) {
  std::string record = kRecord;
  record.replace(record.find("reactor/sys/read"), 16, "reactor/sys/nope");
  const faults::Trace t = faults::read_trace(write("unknown", kHeader + "\n" + record + "\n"));
  EXPECT_THROW(faults::load_replay(t), faults::PlanError);
}

}  // namespace
}  // namespace faultloop
