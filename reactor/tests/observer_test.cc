// The observer hooks in every build (label unit; injects nothing): lifecycle kind names, and
// what FAULTLOOP_OBSERVE and set_observer do in this build — in release the hooks compile away
// (arguments never evaluated, no observer ever installed), in the fault build they are live.
#include "reactor/observer.h"

#include "harness/testing/fault_test.h"
#include "reactor/race_points.h"

#include <set>
#include <string>

namespace faultloop {
namespace {

class ObserverNamesTest : public testing::FaultTest {};
class ObserverReleaseTest : public testing::FaultTest {};

/// Counts events; used only to see whether set_observer installs anything in this build.
class CountingObserver : public Observer {
 public:
  void on_event(const LifecycleEvent& /*event*/) noexcept override { ++events_; }
  int events() const { return events_; }

 private:
  int events_ = 0;
};

TEST_F(ObserverNamesTest, EveryKindHasItsPinnedDistinctName) {
  const char* const expected[] = {"accepted",       "dialed",     "prepare",        "connect",
                                  "close_winner",   "disconnect", "close_callback", "finalizer",
                                  "buffer_release", "fd_close",   "handler_threw",  "timeout"};
  ASSERT_EQ(std::size(expected), kLifecycleKindCount);
  std::set<std::string> seen;
  for (std::size_t i = 0; i < kLifecycleKindCount; ++i) {
    const char* name = lifecycle_kind_name(static_cast<LifecycleKind>(i));
    ASSERT_NE(name, nullptr) << "kind " << i;
    EXPECT_STREQ(name, expected[i]) << "kind " << i;
    EXPECT_TRUE(seen.insert(name).second) << "duplicate name \"" << name << "\"";
  }
  EXPECT_EQ(seen.size(), kLifecycleKindCount);
  EXPECT_STREQ(lifecycle_kind_name(LifecycleKind::kTimeout), "timeout");
}

TEST_F(ObserverNamesTest, ValueOutsideTheEnumIsUnknown) {
  EXPECT_STREQ(lifecycle_kind_name(static_cast<LifecycleKind>(kLifecycleKindCount)), "unknown");
  EXPECT_STREQ(lifecycle_kind_name(static_cast<LifecycleKind>(255)), "unknown");
}

TEST_F(ObserverNamesTest, RacePointNamesAreDistinctAndFollowTheNamingRule) {
  std::set<std::string_view> seen;
  for (const std::string_view name : race::kAll) {
    EXPECT_EQ(name.rfind("reactor/race/", 0), 0u) << name;
    EXPECT_EQ(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_/"),
              std::string_view::npos)
        << name;
    EXPECT_TRUE(seen.insert(name).second) << "duplicate race point " << name;
  }
  EXPECT_EQ(seen.size(), 6u);
}

TEST_F(ObserverReleaseTest, ObserveEvaluatesItsArgumentsOnlyInTheFaultBuild) {
  int conn_evals = 0;
  int fd_evals = 0;
  int value_evals = 0;
  auto conn_id = [&conn_evals] {
    ++conn_evals;
    return uint64_t{7};
  };
  FAULTLOOP_OBSERVE(LifecycleKind::kAccepted, conn_id(), ++fd_evals, value_evals++, nullptr);
#if FAULTLOOP_FAULTS
  // Live hooks: every argument evaluated exactly once.
  EXPECT_EQ(conn_evals, 1);
  EXPECT_EQ(fd_evals, 1);
  EXPECT_EQ(value_evals, 1);
#else
  // Release: the hook compiled away; no argument was evaluated.
  EXPECT_EQ(conn_evals, 0);
  EXPECT_EQ(fd_evals, 0);
  EXPECT_EQ(value_evals, 0);
#endif
}

TEST_F(ObserverReleaseTest, SetObserverInstallsOnlyInTheFaultBuild) {
  CountingObserver counting;
  set_observer(&counting);
  FAULTLOOP_OBSERVE(LifecycleKind::kFdClose, 1, 5, 0, "test");
#if FAULTLOOP_FAULTS
  EXPECT_EQ(observer(), &counting);
  EXPECT_EQ(counting.events(), 1);
#else
  EXPECT_EQ(observer(), nullptr);  // release: set_observer does nothing
  EXPECT_EQ(counting.events(), 0);
#endif
  set_observer(nullptr);
  EXPECT_EQ(observer(), nullptr);
}

TEST_F(ObserverReleaseTest, RacePointsCompileInEveryBuild) {
  // Release: nothing to run; fault build: unarmed, the point returns at once.
  FAULTLOOP_RACE_POINT(race::kAfterCloseCas);
  race::register_race_points();
  SUCCEED();
}

}  // namespace
}  // namespace faultloop
