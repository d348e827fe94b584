// Unit tests of the fault point, role and thread-kind registry (faults/registry.h).
#include "faults/registry.h"

#include "faults/tests/test_points.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace faultloop::faults {
namespace {

PointInfo race_point(std::string name) {
  return PointInfo{std::move(name), PointKind::kRace, 0, kRaceActions, kTraitNone};
}

class RegistryPointTest : public ::testing::Test {
 protected:
  void SetUp() override { register_test_points(); }
};

TEST_F(RegistryPointTest, RegisterSameFieldsTwiceReturnsFirstId) {
  const PointInfo info{"test/registry/same", PointKind::kSyscall, EIO,
                       action_bit(ActionKind::kError), kTraitNone};
  const PointId id = register_point(info);
  const std::size_t count = point_count();
  EXPECT_EQ(register_point(info), id);
  EXPECT_EQ(point_count(), count);
  EXPECT_EQ(find_point("test/registry/same"), id);
}

TEST_F(RegistryPointTest, RegisterConflictingFieldsThrows) {
  const PointInfo info{"test/registry/conflict", PointKind::kSyscall, EIO,
                       action_bit(ActionKind::kError), kTraitNone};
  register_point(info);
  PointInfo other_errno = info;
  other_errno.default_errno = EAGAIN;
  PointInfo other_actions = info;
  other_actions.actions |= action_bit(ActionKind::kDelay);
  PointInfo other_traits = info;
  other_traits.traits = kTraitSocketIo;
  PointInfo other_kind = info;
  other_kind.kind = PointKind::kRace;
  other_kind.actions = kRaceActions;
  for (const PointInfo& changed : {other_errno, other_actions, other_traits, other_kind}) {
    EXPECT_THROW(register_point(changed), std::invalid_argument);
  }
}

TEST_F(RegistryPointTest, RegisterBadNameThrows) {
  for (const char* name :
       {"", "/", "a/", "/a", "a//b", "A/b", "a/b c", "a/*", "a-b", "a.b", "*", "a/b/"}) {
    EXPECT_THROW(register_point(race_point(name)), std::invalid_argument) << '"' << name << '"';
  }
  EXPECT_FALSE(find_point("a/*").has_value());
}

TEST_F(RegistryPointTest, RegisterRacePointWithSyscallActionThrows) {
  PointInfo info = race_point("test/registry/race_error");
  info.actions |= action_bit(ActionKind::kError);
  EXPECT_THROW(register_point(info), std::invalid_argument);
  info.actions = 1u << 6;  // not an action
  info.kind = PointKind::kSyscall;
  EXPECT_THROW(register_point(info), std::invalid_argument);
}

TEST_F(RegistryPointTest, PointInfoReturnsRegisteredFields) {
  const std::optional<PointId> id = find_point("reactor/sys/readv");
  ASSERT_TRUE(id.has_value());
  const PointInfo& info = point_info(*id);
  EXPECT_EQ(info.name, "reactor/sys/readv");
  EXPECT_EQ(info.kind, PointKind::kSyscall);
  EXPECT_EQ(info.default_errno, EAGAIN);
  EXPECT_EQ(info.actions, kTestIoActions);
  EXPECT_EQ(info.traits, kTraitReads | kTraitSocketIo);
  EXPECT_LT(*id, point_count());
  EXPECT_THROW(point_info(static_cast<PointId>(point_count())), std::out_of_range);
}

TEST_F(RegistryPointTest, FindUnknownReturnsNothing) {
  EXPECT_FALSE(find_point("reactor/sys/redv").has_value());
  EXPECT_FALSE(find_point("reactor/sys").has_value());
  EXPECT_FALSE(find_point("").has_value());
}

TEST_F(RegistryPointTest, MatchWildcardKeepsSlashBoundary) {
  const PointId ab = register_point(race_point("test/match/ab/c"));
  const PointId ab_deep = register_point(race_point("test/match/ab/c/d"));
  register_point(race_point("test/match/abc/d"));
  EXPECT_EQ(match_points("test/match/ab/*"), (std::vector<PointId>{ab, ab_deep}));
  EXPECT_EQ(match_points("test/match/ab/c"), std::vector<PointId>{ab});
  EXPECT_EQ(match_points("test/match/*").size(), 3u);
  EXPECT_TRUE(match_points("test/match/a/*").empty());
  EXPECT_TRUE(match_points("test/match/ab").empty());
  EXPECT_TRUE(match_points("test/match/ab/c/d/*").empty());
}

TEST_F(RegistryPointTest, MatchWildcardReturnsRegistrationOrder) {
  const std::vector<PointId> sys = match_points("reactor/sys/*");
  EXPECT_EQ(sys.size(), 11u);
  EXPECT_TRUE(std::is_sorted(sys.begin(), sys.end()));
  for (const PointId id : sys) {
    EXPECT_EQ(point_info(id).name.rfind("reactor/sys/", 0), 0u);
  }
}

TEST_F(RegistryPointTest, ActionNamesAreGrammarSpellings) {
  EXPECT_EQ(action_name(ActionKind::kError), "error");
  EXPECT_EQ(action_name(ActionKind::kShort), "short");
  EXPECT_EQ(action_name(ActionKind::kEvents), "events");
  EXPECT_EQ(action_name(ActionKind::kReset), "reset");
  EXPECT_EQ(action_name(ActionKind::kDelay), "delay");
  EXPECT_EQ(action_name(ActionKind::kYield), "yield");
}

TEST_F(RegistryPointTest, ConcurrentRegistrationAgreesOnIds) {
  constexpr int kThreads = 4;
  constexpr int kPoints = 16;
  std::vector<std::vector<PointId>> ids(kThreads);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) {
        std::this_thread::yield();
      }
      for (int i = 0; i < kPoints; ++i) {
        const PointId id = register_point(race_point("test/concurrent/p" + std::to_string(i)));
        ids[t].push_back(id);
        // Lock-free readers see a fully written entry.
        EXPECT_EQ(point_info(id).name, "test/concurrent/p" + std::to_string(i));
        EXPECT_LT(id, point_count());
      }
    });
  }
  go.store(true);
  for (std::thread& thread : threads) {
    thread.join();
  }
  for (int t = 1; t < kThreads; ++t) {
    EXPECT_EQ(ids[t], ids[0]);
  }
  EXPECT_EQ(match_points("test/concurrent/*").size(), static_cast<std::size_t>(kPoints));
}

// ---- roles and thread kinds -----------------------------------------------------------------

class RegistryNameTest : public ::testing::Test {
 protected:
  void SetUp() override { register_test_points(); }
};

TEST_F(RegistryNameTest, OtherIsPreregisteredAsIdZero) {
  EXPECT_EQ(find_role("other"), kRoleOther);
  EXPECT_EQ(role_name(kRoleOther), "other");
  EXPECT_EQ(register_role("other"), kRoleOther);
  EXPECT_EQ(find_thread_kind("other"), kThreadOther);
  EXPECT_EQ(thread_kind_name(kThreadOther), "other");
  EXPECT_EQ(register_thread_kind("other"), kThreadOther);
}

TEST_F(RegistryNameTest, RegisterIsIdempotent) {
  const RoleId conn = register_role("conn");
  EXPECT_NE(conn, kRoleOther);
  EXPECT_EQ(register_role("conn"), conn);
  EXPECT_EQ(find_role("conn"), conn);
  EXPECT_EQ(role_name(conn), "conn");
  const ThreadKindId poller = register_thread_kind("poller");
  EXPECT_NE(poller, kThreadOther);
  EXPECT_EQ(register_thread_kind("poller"), poller);
  EXPECT_EQ(thread_kind_name(poller), "poller");
}

TEST_F(RegistryNameTest, RolesAndThreadKindsAreSeparateTables) {
  EXPECT_FALSE(find_role("poller").has_value());
  EXPECT_FALSE(find_thread_kind("conn").has_value());
}

TEST_F(RegistryNameTest, BadNameThrows) {
  for (const char* name : {"", "Conn", "a/b", "a b", "a-b", "*"}) {
    EXPECT_THROW(register_role(name), std::invalid_argument) << '"' << name << '"';
    EXPECT_THROW(register_thread_kind(name), std::invalid_argument) << '"' << name << '"';
  }
}

TEST_F(RegistryNameTest, UnknownIdThrows) {
  EXPECT_THROW(role_name(static_cast<RoleId>(kMaxNames)), std::out_of_range);
  EXPECT_THROW(thread_kind_name(static_cast<ThreadKindId>(kMaxNames)), std::out_of_range);
}

TEST(RegistrySegmentTest, ValidSegmentIsLowercaseDigitsUnderscore) {
  EXPECT_TRUE(is_valid_segment("a"));
  EXPECT_TRUE(is_valid_segment("epoll_wait"));
  EXPECT_TRUE(is_valid_segment("accept4"));
  EXPECT_TRUE(is_valid_segment("_0"));
  EXPECT_FALSE(is_valid_segment(""));
  EXPECT_FALSE(is_valid_segment("A"));
  EXPECT_FALSE(is_valid_segment("a/b"));
  EXPECT_FALSE(is_valid_segment("a-b"));
  EXPECT_FALSE(is_valid_segment("a b"));
}

// ---- capacity: in a child process, so the full tables do not leak into other tests -----------

using RegistryCapacityDeathTest = RegistryNameTest;

TEST_F(RegistryCapacityDeathTest, FullTablesThrowLengthError) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const auto fill = [] {
    bool ok = true;
    std::size_t names = 0;
    try {
      for (int i = 0;; ++i) {
        register_role("cap" + std::to_string(i));
      }
    } catch (const std::length_error&) {
      names = 0;
      while (names < kMaxNames + 1 && find_role("cap" + std::to_string(names))) {
        ++names;
      }
    }
    // "other", "conn", "listener" and the new ones fill exactly kMaxNames ids.
    ok = ok && names == kMaxNames - 3;
    ok = ok && register_role("conn") != kRoleOther;  // lookups still work when full
    std::size_t points = point_count();
    try {
      for (int i = 0;; ++i) {
        register_point(race_point("test/cap/p" + std::to_string(i)));
        ++points;
      }
    } catch (const std::length_error&) {
    }
    ok = ok && points == kMaxPoints && point_count() == kMaxPoints;
    ok = ok && find_point("reactor/sys/readv").has_value();
    std::exit(ok ? 0 : 1);  // NOLINT(concurrency-mt-unsafe): the death-test child
  };
  EXPECT_EXIT(fill(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace faultloop::faults
