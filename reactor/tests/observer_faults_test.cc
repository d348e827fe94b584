// The observer hooks and race points in the fault build (label faults; issue 4): an installed
// Observer receives exactly what FAULTLOOP_OBSERVE reports, in order, from any thread, and
// nothing once removed; with an events file open each report is one JSON line (DESIGN "Events
// file"); every race point of race::kAll is registered before any of them ran, so plans can
// name them; and a `delay` rule on one race point stretches that point only.
#include "faults/engine.h"
#include "faults/events.h"
#include "faults/plan.h"
#include "faults/registry.h"
#include "harness/testing/fault_test.h"
#include "reactor/observer.h"
#include "reactor/race_points.h"
#include "reactor/tests/test_sockets.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace faultloop {
namespace {

// ---- what is known before any race point ran --------------------------------------------

/// True when every name of race::kAll is a registered race point.
bool all_race_points_known() {
  for (const std::string_view name : race::kAll) {
    const auto id = faults::find_point(name);
    if (!id || faults::point_info(*id).kind != faults::PointKind::kRace) {
      return false;
    }
  }
  return true;
}

// Evaluated during static initialisation, before main() and so before any test (and any
// FAULTLOOP_RACE_POINT) ran. race_points.h's registration variable is defined earlier in this
// translation unit, so it is initialised first (an inline variable appearance-ordered before
// this one); that registration is what is under test.
const bool g_race_points_known_at_start = all_race_points_known();

// ---- a recording observer ---------------------------------------------------------------

/// A LifecycleEvent with its detail copied (the pointer is valid only during on_event).
struct Seen {
  LifecycleKind kind;
  uint64_t conn;
  int fd;
  int64_t value;
  std::optional<std::string> detail;  ///< nullopt for a null detail

  friend bool operator==(const Seen&, const Seen&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Seen& s) {
    return os << "{" << lifecycle_kind_name(s.kind) << " conn=" << s.conn << " fd=" << s.fd
              << " value=" << s.value << " detail=" << (s.detail ? "\"" + *s.detail + "\"" : "null")
              << "}";
  }
};

/// Records every event; thread-safe as Observer requires.
class RecordingObserver : public Observer {
 public:
  void on_event(const LifecycleEvent& e) noexcept override {
    const std::lock_guard lock(mutex_);
    seen_.push_back({e.kind, e.conn, e.fd, e.value,
                     e.detail != nullptr ? std::optional<std::string>(e.detail) : std::nullopt});
  }
  std::vector<Seen> seen() const {
    const std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Seen> seen_;
};

/// One event of every kind, with the value meanings of LifecycleEvent.
const std::vector<Seen> kOneOfEach = {
    {LifecycleKind::kAccepted, 1, 10, 0, std::nullopt},
    {LifecycleKind::kDialed, 2, 11, 0, "unix:/tmp/x"},
    {LifecycleKind::kPrepare, 1, 10, 0, std::nullopt},
    {LifecycleKind::kConnect, 1, 10, 0, std::nullopt},
    {LifecycleKind::kCloseWinner, 1, 10, 2, "poller"},
    {LifecycleKind::kDisconnect, 1, 10, 0, std::nullopt},
    {LifecycleKind::kCloseCallback, 1, 10, 1, std::nullopt},
    {LifecycleKind::kCloseCallback, 1, 10, 0, "finalizer"},
    {LifecycleKind::kFinalizer, 1, 10, 0, std::nullopt},
    {LifecycleKind::kBufferRelease, 1, 10, 65536, std::nullopt},
    {LifecycleKind::kFdClose, 1, 10, 0, std::nullopt},
    {LifecycleKind::kHandlerThrew, 3, 12, 0, "std::runtime_error"},
    {LifecycleKind::kTimeout, 3, 12, 3, "idle"},
    {LifecycleKind::kAccepted, UINT64_MAX, -1, INT64_MIN, ""},  // extremes survive
};

/// Reports `s` through the macro under test.
void observe(const Seen& s) {
  FAULTLOOP_OBSERVE(s.kind, s.conn, s.fd, s.value, s.detail ? s.detail->c_str() : nullptr);
}

class ObserverHookTest : public testing::FaultTest {
 protected:
  void TearDown() override {
    set_observer(nullptr);  // the observer is process-global: never leave one behind
    testing::FaultTest::TearDown();
  }
};

TEST_F(ObserverHookTest, InstalledObserverReceivesExactlyWhatWasReportedInOrder) {
  RecordingObserver recording;
  set_observer(&recording);
  ASSERT_EQ(observer(), &recording);
  for (const Seen& s : kOneOfEach) {
    observe(s);
  }
  EXPECT_EQ(recording.seen(), kOneOfEach);
}

TEST_F(ObserverHookTest, NothingArrivesAfterTheObserverIsRemoved) {
  RecordingObserver recording;
  set_observer(&recording);
  observe(kOneOfEach[0]);
  set_observer(nullptr);
  EXPECT_EQ(observer(), nullptr);
  for (const Seen& s : kOneOfEach) {
    observe(s);
  }
  EXPECT_EQ(recording.seen(), std::vector<Seen>{kOneOfEach[0]});
}

TEST_F(ObserverHookTest, ANewObserverReplacesTheOldOne) {
  RecordingObserver first;
  RecordingObserver second;
  set_observer(&first);
  observe(kOneOfEach[0]);
  set_observer(&second);
  observe(kOneOfEach[1]);
  EXPECT_EQ(first.seen(), std::vector<Seen>{kOneOfEach[0]});
  EXPECT_EQ(second.seen(), std::vector<Seen>{kOneOfEach[1]});
}

TEST_F(ObserverHookTest, EventsFromManyThreadsAllArriveInEachThreadsOrder) {
  // on_event runs on the reporting thread (poll threads, workers, user threads at once).
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  RecordingObserver recording;
  set_observer(&recording);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kPerThread; ++i) {
        FAULTLOOP_OBSERVE(LifecycleKind::kBufferRelease, t, t, i, nullptr);
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  const auto seen = recording.seen();
  ASSERT_EQ(seen.size(), std::size_t{kThreads * kPerThread});
  std::vector<int64_t> next(kThreads, 0);
  for (const Seen& s : seen) {
    ASSERT_LT(s.conn, uint64_t{kThreads});
    EXPECT_EQ(s.value, next[s.conn]++) << "thread " << s.conn << " out of order";
  }
}

// ---- the events file --------------------------------------------------------------------

class ObserverEventsFileTest : public testing::FaultTest {
 protected:
  void TearDown() override {
    faults::close_events();
    set_observer(nullptr);
    if (!path_.empty()) {
      ::unlink(path_.c_str());
    }
    testing::FaultTest::TearDown();
  }

  /// Opens a fresh events file and remembers it for cleanup.
  void open_events_file() {
    path_ = testing::temp_path("observer_events");
    faults::open_events(path_);
  }

  /// Every record written so far, parsed (a malformed line fails the test).
  std::vector<nlohmann::json> records() const {
    std::ifstream in(path_);
    std::vector<nlohmann::json> out;
    for (std::string line; std::getline(in, line);) {
      try {
        out.push_back(nlohmann::json::parse(line));
      } catch (const nlohmann::json::exception& e) {
        ADD_FAILURE() << "not a JSON line: " << line << " (" << e.what() << ")";
      }
    }
    return out;
  }

  std::string path_;
};

TEST_F(ObserverEventsFileTest, EachObserveWritesOneMatchingJsonLine) {
  open_events_file();
  ASSERT_TRUE(sys::events_enabled());
  // No observer installed: the events file does not depend on one.
  for (const Seen& s : kOneOfEach) {
    observe(s);
  }
  // Written as it happens (flushed per record), before close_events.
  const auto lines = records();
  ASSERT_EQ(lines.size(), kOneOfEach.size());
  int64_t last_ns = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const nlohmann::json& j = lines[i];
    const Seen& s = kOneOfEach[i];
    SCOPED_TRACE(j.dump());
    EXPECT_EQ(j.at("type").get<std::string>(), lifecycle_kind_name(s.kind));
    EXPECT_EQ(j.at("conn").get<uint64_t>(), s.conn);
    EXPECT_EQ(j.at("fd").get<int>(), s.fd);
    EXPECT_EQ(j.at("value").get<int64_t>(), s.value);
    EXPECT_EQ(j.at("detail").get<std::string>(), s.detail.value_or(""));  // null detail: ""
    ASSERT_TRUE(j.contains("ns"));
    const auto ns = j.at("ns").get<int64_t>();
    EXPECT_GE(ns, last_ns);  // monotonic ns, in the order of the reports
    last_ns = ns;
  }
}

TEST_F(ObserverEventsFileTest, ObserverAndEventsFileBothSeeEachEvent) {
  open_events_file();
  RecordingObserver recording;
  set_observer(&recording);
  observe(kOneOfEach[4]);
  EXPECT_EQ(recording.seen(), std::vector<Seen>{kOneOfEach[4]});
  const auto lines = records();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].at("type"), "close_winner");
  EXPECT_EQ(lines[0].at("value"), 2);
}

TEST_F(ObserverEventsFileTest, NothingIsWrittenOnceTheFileIsClosed) {
  open_events_file();
  observe(kOneOfEach[0]);
  faults::close_events();
  EXPECT_FALSE(sys::events_enabled());
  observe(kOneOfEach[1]);
  const auto lines = records();
  ASSERT_EQ(lines.size(), 2u);  // the event, then the summary written by close_events
  EXPECT_EQ(lines[0].at("type"), "accepted");
  EXPECT_EQ(lines[1].at("type"), "summary");
}

// ---- race points ------------------------------------------------------------------------

class RacePointRegistrationTest : public testing::FaultTest {};

TEST_F(RacePointRegistrationTest, EveryRacePointIsKnownBeforeAnyRan) {
  EXPECT_TRUE(g_race_points_known_at_start)
      << "race::kAll was not registered at static initialisation";
  for (const std::string_view name : race::kAll) {
    SCOPED_TRACE(std::string(name));
    const auto id = faults::find_point(name);
    ASSERT_TRUE(id.has_value());
    EXPECT_EQ(faults::point_info(*id).kind, faults::PointKind::kRace);
    const std::string rule = std::string(name) + ":delay=1ms";
    EXPECT_NO_THROW(faults::parse_plan(rule)) << rule;
    EXPECT_NO_THROW(faults::parse_plan(std::string(name) + ":yield,conn=3,nth=2"));
    // Only delay and yield apply at race points (DESIGN "Actions").
    EXPECT_THROW(faults::parse_plan(std::string(name) + ":error=EIO"), faults::PlanError);
  }
}

TEST_F(RacePointRegistrationTest, TheExamplePlanParses) {
  const faults::Plan plan = faults::parse_plan("reactor/race/conn/after_close_cas:delay=1ms");
  ASSERT_EQ(plan.rules.size(), 1u);
  EXPECT_EQ(plan.rules[0].point, race::kAfterCloseCas);
  EXPECT_EQ(plan.rules[0].action.delay, std::chrono::milliseconds(1));
  // A wildcard over the connection's race points names every one of them.
  const auto matched = faults::match_points("reactor/race/conn/*");
  for (const std::string_view name : race::kAll) {
    if (name.rfind("reactor/race/conn/", 0) == 0) {
      EXPECT_NE(std::find(matched.begin(), matched.end(), *faults::find_point(name)), matched.end())
          << name;
    }
  }
}

class RacePointDelayTest : public testing::FaultTest {};

/// How long one pass through the race point kAfterCloseCas takes.
std::chrono::nanoseconds time_after_close_cas() {
  const auto start = std::chrono::steady_clock::now();
  FAULTLOOP_RACE_POINT(race::kAfterCloseCas);
  return std::chrono::steady_clock::now() - start;
}

TEST_F(RacePointDelayTest, DelayRuleStretchesItsPointAndNoOther) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  // Unarmed: returns at once (generous bound: timings swing here).
  EXPECT_LT(time_after_close_cas(), seconds(1));

  // Armed, but the rule names another race point: this one is not delayed. (If it were, the
  // 2 s delay would break the 1 s bound.)
  ASSERT_TRUE(arm(std::string(race::kBeforeDetach) + ":delay=2s"));
  EXPECT_LT(time_after_close_cas(), seconds(1));

  ASSERT_TRUE(arm(std::string(race::kAfterCloseCas) + ":delay=20ms"));
  EXPECT_GE(time_after_close_cas(), milliseconds(20));
  const auto stats = faults::rule_stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].injected, 1u);

  faults::disarm();
  EXPECT_LT(time_after_close_cas(), seconds(1));
}

}  // namespace
}  // namespace faultloop
