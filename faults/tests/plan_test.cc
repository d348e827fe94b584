// Unit tests of the compact plan grammar (faults/plan.h): parsing, validation errors,
// canonical spelling and round trips, wildcards, parse_action, the errno table, durations.
#include "faults/plan.h"

#include "faults/tests/test_points.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/epoll.h>

namespace faultloop::faults {
namespace {

using std::chrono::nanoseconds;

PointId id_of(std::string_view name) {
  const std::optional<PointId> id = find_point(name);
  EXPECT_TRUE(id.has_value()) << name;
  return id.value_or(0);
}

/// The message of the PlanError that parse_plan(text) throws, or "" when it parses.
std::string plan_error(std::string_view text) {
  try {
    parse_plan(text);
  } catch (const PlanError& error) {
    return error.what();
  }
  return "";
}

class PlanParseTest : public ::testing::Test {
 protected:
  void SetUp() override { register_test_points(); }
};

TEST_F(PlanParseTest, FullRuleSetsEveryField) {
  const Plan plan = parse_plan(
      "reactor/sys/readv:error=ECONNRESET,role=conn|listener,thread=poller,fd=7,conn=42,nth=3,"
      "after=10,every=2,count=5,seed=99,probability=0.25");
  ASSERT_EQ(plan.rules.size(), 1u);
  const Rule& rule = plan.rules[0];
  EXPECT_EQ(rule.point, "reactor/sys/readv");
  EXPECT_EQ(rule.points, std::vector<PointId>{id_of("reactor/sys/readv")});
  EXPECT_EQ(rule.action.kind, ActionKind::kError);
  EXPECT_EQ(rule.action.error, ECONNRESET);
  EXPECT_EQ(rule.roles, (std::vector<RoleId>{*find_role("conn"), *find_role("listener")}));
  EXPECT_EQ(rule.thread, find_thread_kind("poller"));
  EXPECT_EQ(rule.fd, 7);
  EXPECT_EQ(rule.conn, 42u);
  EXPECT_EQ(rule.nth, 3u);
  EXPECT_EQ(rule.after, 10u);
  EXPECT_EQ(rule.every, 2u);
  EXPECT_EQ(rule.count, 5u);
  EXPECT_EQ(rule.seed, 99u);
  EXPECT_DOUBLE_EQ(rule.probability, 0.25);
  EXPECT_EQ(rule.where,
            "rule 1 \"reactor/sys/readv:error=ECONNRESET,role=conn|listener,thread=poller,fd=7,"
            "conn=42,nth=3,after=10,every=2,count=5,seed=99,probability=0.25\"");
}

TEST_F(PlanParseTest, UnsetSelectorsKeepDefaults) {
  const Rule rule = parse_plan("reactor/sys/read:yield").rules.at(0);
  EXPECT_TRUE(rule.roles.empty());
  EXPECT_FALSE(rule.fd || rule.conn || rule.thread || rule.count || rule.seed);
  EXPECT_EQ(rule.nth + rule.after + rule.every, 0u);
  EXPECT_EQ(rule.probability, 1.0);
  EXPECT_EQ(rule.action.kind, ActionKind::kYield);
}

TEST_F(PlanParseTest, WhitespaceAroundTokensIsIgnored) {
  const Plan spaced = parse_plan(
      "  reactor/sys/readv : short = 50% , nth = 2 , role = conn | listener ;\n"
      "\treactor/sys/epoll_wait:events = +HUP | +RDHUP  \n");
  const Plan tight = parse_plan(
      "reactor/sys/readv:short=50%,nth=2,role=conn|listener;"
      "reactor/sys/epoll_wait:events=+HUP|+RDHUP");
  ASSERT_EQ(spaced.rules.size(), 2u);
  ASSERT_EQ(tight.rules.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(rule_fields(spaced.rules[i]), rule_fields(tight.rules[i])) << i;
  }
}

TEST_F(PlanParseTest, BlankPlanIsEmpty) {
  for (const char* text : {"", " ", "\n\t  \r\n"}) {
    SCOPED_TRACE(text);
    EXPECT_TRUE(parse_plan(text).rules.empty());
    EXPECT_EQ(parse_plan(text).to_string(), "");
  }
}

TEST_F(PlanParseTest, RulesKeepPlanOrderAndWhere) {
  const Plan plan = parse_plan("reactor/sys/readv:yield ;  reactor/sys/writev:delay=1ms  ");
  ASSERT_EQ(plan.rules.size(), 2u);
  EXPECT_EQ(plan.rules[0].where, "rule 1 \"reactor/sys/readv:yield\"");
  EXPECT_EQ(plan.rules[1].where, "rule 2 \"reactor/sys/writev:delay=1ms\"");
  EXPECT_EQ(plan.rules[1].action.delay, std::chrono::milliseconds(1));
  EXPECT_FALSE(plan.seed.has_value());
}

TEST_F(PlanParseTest, UnknownPointErrorMatchesDesignExample) {
  EXPECT_EQ(plan_error("reactor/sys/readv:yield;reactor/sys/redv:reset"),
            "rule 2 \"reactor/sys/redv:reset\": unknown point \"reactor/sys/redv\"");
}

TEST_F(PlanParseTest, ShortFormsSetBytesOrPercent) {
  const Action bytes = parse_plan("reactor/sys/writev:short=1").rules.at(0).action;
  EXPECT_EQ(bytes.kind, ActionKind::kShort);
  EXPECT_EQ(bytes.short_bytes, 1u);
  EXPECT_EQ(bytes.short_percent, 0u);
  const Action percent = parse_plan("reactor/sys/writev:short=99%").rules.at(0).action;
  EXPECT_EQ(percent.short_bytes, 0u);
  EXPECT_EQ(percent.short_percent, 99u);
  const Action max = parse_plan("reactor/sys/writev:short=4294967295").rules.at(0).action;
  EXPECT_EQ(max.short_bytes, 4294967295u);
}

TEST_F(PlanParseTest, EventsUseEpollBits) {
  const Action action =
      parse_plan("reactor/sys/epoll_wait:events=+IN|+OUT|+HUP|+RDHUP|+ERR|-PRI").rules.at(0).action;
  EXPECT_EQ(action.kind, ActionKind::kEvents);
  EXPECT_EQ(action.events_add,
            static_cast<uint32_t>(EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLRDHUP | EPOLLERR));
  EXPECT_EQ(action.events_remove, static_cast<uint32_t>(EPOLLPRI));
  EXPECT_EQ((action.events_add | action.events_remove) & ~kEventBitsAllowed, 0u);
}

TEST_F(PlanParseTest, ErrnoAliasParsesToCanonicalValue) {
  const Action action = parse_plan("reactor/sys/readv:error=EWOULDBLOCK").rules.at(0).action;
  EXPECT_EQ(action.error, EAGAIN);
  EXPECT_EQ(action.to_string(), "error=EAGAIN");
}

TEST_F(PlanParseTest, LimitsAreAccepted) {
  const Rule rule = parse_plan(
                        "reactor/sys/readv:yield,fd=2147483647,conn=18446744073709551615,"
                        "after=0,probability=0")
                        .rules.at(0);
  EXPECT_EQ(rule.fd, std::numeric_limits<int>::max());
  EXPECT_EQ(rule.conn, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(rule.probability, 0.0);
  EXPECT_EQ(parse_plan("reactor/sys/readv:yield,probability=1.000").rules.at(0).probability, 1.0);
}

// ---- bad plans: one case per error class, each with a substring of its own message ---------

struct BadPlanCase {
  const char* name;      ///< test name suffix (alphanumeric)
  const char* plan;      ///< the plan text
  const char* expected;  ///< a substring of the PlanError message
};

// NOLINTNEXTLINE(readability-identifier-naming): gtest looks for PrintTo.
void PrintTo(const BadPlanCase& param, std::ostream* os) {
  *os << param.plan;
}

class PlanErrorTest : public ::testing::TestWithParam<BadPlanCase> {
 protected:
  void SetUp() override { register_test_points(); }
};

TEST_P(PlanErrorTest, BadFragmentIsQuotedInError) {
  const BadPlanCase& param = GetParam();
  const std::string message = plan_error(param.plan);
  ASSERT_FALSE(message.empty()) << "parsed without error: " << param.plan;
  EXPECT_NE(message.find(param.expected), std::string::npos)
      << "message: " << message << "\nexpected: " << param.expected;
  EXPECT_EQ(message.rfind("rule ", 0), 0u) << message;
}

constexpr BadPlanCase kBadPlans[] = {
    // points
    {"UnknownPoint", "reactor/sys/redv:reset",
     "rule 1 \"reactor/sys/redv:reset\": unknown point \"reactor/sys/redv\""},
    {"UnknownPointSecondRule", "reactor/sys/readv:yield; reactor/sys/redv:reset",
     "rule 2 \"reactor/sys/redv:reset\": unknown point \"reactor/sys/redv\""},
    {"PrefixIsNotAPoint", "reactor/sys:yield", "unknown point \"reactor/sys\""},
    {"UnknownWildcard", "reactor/nothere/*:yield", "unknown point \"reactor/nothere/*\""},
    {"UppercasePoint", "Reactor/sys/readv:yield", "bad point name \"Reactor/sys/readv\""},
    {"WildcardInMiddle", "reactor/*/readv:yield", "bad point name \"reactor/*/readv\""},
    {"BareWildcard", "*:yield", "bad point name \"*\""},
    {"EmptySegment", "reactor//readv:yield", "bad point name \"reactor//readv\""},
    {"MissingColon", "reactor/sys/readv", "missing ':' in \"reactor/sys/readv\""},
    // actions
    {"MissingAction", "reactor/sys/readv:", "missing action"},
    {"MissingActionBeforeSelector", "reactor/sys/readv:,nth=1", "missing action"},
    {"UnknownAction", "reactor/sys/readv:fail", "unknown action \"fail\""},
    {"UnknownErrno", "reactor/sys/readv:error=EFOO", "unknown errno \"EFOO\" in \"error=EFOO\""},
    {"LowercaseErrno", "reactor/sys/readv:error=eagain", "unknown errno \"eagain\""},
    {"NumericErrno", "reactor/sys/readv:error=11", "unknown errno \"11\""},
    {"ErrorWithoutValue", "reactor/sys/readv:error", "missing value in \"error\""},
    {"ResetWithValue", "reactor/sys/readv:reset=1", "unexpected value in \"reset=1\""},
    {"YieldWithValue", "reactor/sys/readv:yield=true", "unexpected value in \"yield=true\""},
    // actions illegal on the point
    {"ResetOnAccept", "reactor/sys/accept4:reset",
     "action \"reset\" is not legal on point \"reactor/sys/accept4\""},
    {"EventsOnReadv", "reactor/sys/readv:events=+HUP",
     "action \"events\" is not legal on point \"reactor/sys/readv\""},
    {"ShortOnEpollWait", "reactor/sys/epoll_wait:short=1",
     "action \"short\" is not legal on point \"reactor/sys/epoll_wait\""},
    {"ErrorOnRacePoint", "reactor/race/connection/after_close_cas:error=EIO",
     "action \"error\" is not legal on point \"reactor/race/connection/after_close_cas\""},
    {"ErrorOnRaceWildcard", "reactor/race/*:error=EIO",
     "action \"error\" is not legal on any point matching \"reactor/race/*\""},
    // short
    {"ShortZero", "reactor/sys/readv:short=0", "out of range in \"short=0\""},
    {"ShortZeroPercent", "reactor/sys/readv:short=0%", "out of range in \"short=0%\""},
    {"ShortHundredPercent", "reactor/sys/readv:short=100%", "out of range in \"short=100%\""},
    {"ShortHugePercent", "reactor/sys/readv:short=99999999999999999999%",
     "out of range in \"short=99999999999999999999%\""},
    {"ShortTooManyBytes", "reactor/sys/readv:short=4294967296",
     "out of range in \"short=4294967296\""},
    {"ShortNegative", "reactor/sys/readv:short=-1", "bad value in \"short=-1\""},
    {"ShortWithoutValue", "reactor/sys/readv:short=", "missing value in \"short=\""},
    // events
    {"EventsEmpty", "reactor/sys/epoll_wait:events=", "missing value in \"events=\""},
    {"EventsWithoutValue", "reactor/sys/epoll_wait:events", "missing value in \"events\""},
    {"EventsNoSign", "reactor/sys/epoll_wait:events=HUP",
     "missing '+' or '-' before \"HUP\" in \"events=HUP\""},
    {"EventsUnknown", "reactor/sys/epoll_wait:events=+FOO",
     "unknown event \"FOO\" in \"events=+FOO\""},
    {"EventsLowercase", "reactor/sys/epoll_wait:events=+hup", "unknown event \"hup\""},
    {"EventsEdgeTriggered", "reactor/sys/epoll_wait:events=+ET", "unknown event \"ET\""},
    {"EventsAddedAndRemoved", "reactor/sys/epoll_wait:events=+IN|+HUP|-IN",
     "event \"IN\" both added and removed in \"events=+IN|+HUP|-IN\""},
    {"EventsEmptyEntry", "reactor/sys/epoll_wait:events=+IN||+HUP",
     "empty event in \"events=+IN||+HUP\""},
    // delay
    {"DelayWithoutUnit", "reactor/sys/readv:delay=5", "bad duration in \"delay=5\""},
    {"DelayMinutes", "reactor/sys/readv:delay=5m", "bad duration in \"delay=5m\""},
    {"DelayFraction", "reactor/sys/readv:delay=1.5ms", "bad duration in \"delay=1.5ms\""},
    {"DelaySpaceInside", "reactor/sys/readv:delay=5 ms", "bad duration in \"delay=5 ms\""},
    {"DelayOverflow", "reactor/sys/readv:delay=9223372037s",
     "out of range in \"delay=9223372037s\""},
    // selectors
    {"UnknownSelector", "reactor/sys/readv:yield,often=3",
     "unknown selector \"often\" in \"often=3\""},
    {"DuplicateSelector", "reactor/sys/readv:yield,nth=2,count=1,nth=3",
     "duplicate selector \"nth\" in \"nth=3\""},
    {"SelectorWithoutValue", "reactor/sys/readv:yield,nth", "missing value in \"nth\""},
    {"EmptySelector", "reactor/sys/readv:yield,", "empty selector"},
    {"UnknownRole", "reactor/sys/readv:yield,role=conn|bogus",
     "unknown role \"bogus\" in \"role=conn|bogus\""},
    {"EmptyRoleName", "reactor/sys/readv:yield,role=conn|", "bad role name \"\" in \"role=conn|\""},
    {"UnknownThread", "reactor/sys/readv:yield,thread=gc",
     "unknown thread kind \"gc\" in \"thread=gc\""},
    {"TwoThreads", "reactor/sys/readv:yield,thread=poller|worker",
     "bad thread kind name \"poller|worker\""},
    {"NthZero", "reactor/sys/readv:yield,nth=0", "out of range in \"nth=0\""},
    {"EveryZero", "reactor/sys/readv:yield,every=0", "out of range in \"every=0\""},
    {"CountZero", "reactor/sys/readv:yield,count=0", "out of range in \"count=0\""},
    {"NthNegative", "reactor/sys/readv:yield,nth=-2", "negative value in \"nth=-2\""},
    {"AfterOverflow", "reactor/sys/readv:yield,after=18446744073709551616",
     "out of range in \"after=18446744073709551616\""},
    {"SeedNotNumber", "reactor/sys/readv:yield,seed=abc", "bad number in \"seed=abc\""},
    {"FdNegative", "reactor/sys/readv:yield,fd=-1", "negative value in \"fd=-1\""},
    {"FdAboveIntMax", "reactor/sys/readv:yield,fd=2147483648", "out of range in \"fd=2147483648\""},
    {"ProbabilityAboveOne", "reactor/sys/readv:yield,probability=1.5",
     "out of range in \"probability=1.5\""},
    {"ProbabilityAboveOneByLittle", "reactor/sys/readv:yield,probability=1.0000001",
     "out of range in \"probability=1.0000001\""},
    {"ProbabilityNegative", "reactor/sys/readv:yield,probability=-0.5",
     "bad number in \"probability=-0.5\""},
    {"ProbabilityExponent", "reactor/sys/readv:yield,probability=1e-3",
     "bad number in \"probability=1e-3\""},
    {"ProbabilityNoLeadingDigit", "reactor/sys/readv:yield,probability=.5",
     "bad number in \"probability=.5\""},
    // rules
    {"EmptyRuleBetween", "reactor/sys/readv:yield;;reactor/sys/writev:yield",
     "rule 2 \"\": empty rule"},
    {"TrailingSemicolon", "reactor/sys/readv:yield;", "rule 2 \"\": empty rule"},
    {"LeadingSemicolon", " ; reactor/sys/readv:yield", "rule 1 \"\": empty rule"},
};

INSTANTIATE_TEST_SUITE_P(Compact,
                         PlanErrorTest,
                         ::testing::ValuesIn(kBadPlans),
                         [](const ::testing::TestParamInfo<BadPlanCase>& case_info) {
                           return std::string(case_info.param.name);
                         });

// ---- canonical spelling and round trips -----------------------------------------------------

struct CanonicalCase {
  const char* name;
  const char* plan;       ///< any valid spelling
  const char* canonical;  ///< what Plan::to_string() prints
};

// NOLINTNEXTLINE(readability-identifier-naming): gtest looks for PrintTo.
void PrintTo(const CanonicalCase& param, std::ostream* os) {
  *os << param.plan;
}

class PlanRoundTripTest : public ::testing::TestWithParam<CanonicalCase> {
 protected:
  void SetUp() override { register_test_points(); }
};

TEST_P(PlanRoundTripTest, ToStringIsCanonicalAndParsesBackEqual) {
  const CanonicalCase& param = GetParam();
  const Plan first = parse_plan(param.plan);
  const std::string text = first.to_string();
  EXPECT_EQ(text, param.canonical);
  const Plan second = parse_plan(text);
  ASSERT_EQ(second.rules.size(), first.rules.size());
  for (std::size_t i = 0; i < first.rules.size(); ++i) {
    EXPECT_EQ(rule_fields(second.rules[i]), rule_fields(first.rules[i])) << "rule " << i;
    EXPECT_EQ(second.rules[i].to_string(), first.rules[i].to_string());
  }
  EXPECT_EQ(second.to_string(), text);
}

constexpr CanonicalCase kCanonicalPlans[] = {
    {"Yield", "reactor/sys/readv:yield", "reactor/sys/readv:yield"},
    {"Reset", " reactor/sys/recvmsg : reset ", "reactor/sys/recvmsg:reset"},
    {"ErrorAlias", "reactor/sys/readv:error=EWOULDBLOCK", "reactor/sys/readv:error=EAGAIN"},
    {"ErrorNotsupAlias", "reactor/sys/accept4:error=ENOTSUP",
     "reactor/sys/accept4:error=EOPNOTSUPP"},
    {"ShortBytes", "reactor/sys/writev:short=1", "reactor/sys/writev:short=1"},
    {"ShortPercent", "reactor/sys/writev : short = 50%", "reactor/sys/writev:short=50%"},
    {"EventsOrdered", "reactor/sys/epoll_wait:events=-IN|+RDHUP|+HUP",
     "reactor/sys/epoll_wait:events=+HUP|+RDHUP|-IN"},
    {"EventsAll", "reactor/sys/epoll_wait:events=+PRI|+ERR|+RDHUP|+HUP|+OUT|+IN",
     "reactor/sys/epoll_wait:events=+IN|+OUT|+HUP|+RDHUP|+ERR|+PRI"},
    {"DelayMicrosToMillis", "reactor/sys/readv:delay=1000us", "reactor/sys/readv:delay=1ms"},
    {"DelayKeepsMicros", "reactor/sys/readv:delay=1500us", "reactor/sys/readv:delay=1500us"},
    {"DelaySeconds", "reactor/sys/readv:delay=2000000000ns", "reactor/sys/readv:delay=2s"},
    {"DelayZero", "reactor/sys/readv:delay=0ms", "reactor/sys/readv:delay=0ns"},
    {"SelectorsOrdered",
     "reactor/sys/readv:yield,probability=0.250,seed=3,count=2,every=4,after=1,nth=9,conn=8,"
     "fd=5,thread=worker,role=listener|conn",
     "reactor/sys/readv:yield,role=listener|conn,thread=worker,fd=5,conn=8,nth=9,after=1,every=4,"
     "count=2,seed=3,probability=0.25"},
    {"ProbabilityOneOmitted", "reactor/sys/readv:yield,probability=1", "reactor/sys/readv:yield"},
    {"ProbabilityZeroKept", "reactor/sys/readv:yield,probability=0.0",
     "reactor/sys/readv:yield,probability=0"},
    {"ProbabilityTenth", "reactor/sys/readv:yield,probability=0.1",
     "reactor/sys/readv:yield,probability=0.1"},
    {"ProbabilityTiny", "reactor/sys/readv:yield,probability=0.0000001",
     "reactor/sys/readv:yield,probability=0.0000001"},
    {"Wildcard", "reactor/sys/* : reset", "reactor/sys/*:reset"},
    {"TwoRules", "reactor/sys/readv:yield ; reactor/race/*:delay=5ms,thread=poller",
     "reactor/sys/readv:yield;reactor/race/*:delay=5ms,thread=poller"},
};

INSTANTIATE_TEST_SUITE_P(Compact,
                         PlanRoundTripTest,
                         ::testing::ValuesIn(kCanonicalPlans),
                         [](const ::testing::TestParamInfo<CanonicalCase>& case_info) {
                           return std::string(case_info.param.name);
                         });

TEST_F(PlanParseTest, ArbitraryProbabilityRoundTrips) {
  for (const double probability :
       {1.0 / 3.0, 2.0 / 3.0, 1e-7, 1e-300, 0.123456789012345678, 0.999999999999999, 0.5}) {
    SCOPED_TRACE(probability);
    Rule rule = parse_plan("reactor/sys/readv:yield").rules.at(0);
    rule.probability = probability;
    const Rule back = parse_plan(rule.to_string()).rules.at(0);
    EXPECT_EQ(back.probability, probability) << rule.to_string();
  }
}

// ---- wildcards ------------------------------------------------------------------------------

class PlanWildcardTest : public ::testing::Test {
 protected:
  void SetUp() override { register_test_points(); }

  static std::vector<PointId> points_of(std::string_view plan) {
    return parse_plan(plan).rules.at(0).points;
  }
};

TEST_F(PlanWildcardTest, ResetOnSysKeepsSocketIoPointsOnly) {
  const std::vector<PointId> expected = {id_of("reactor/sys/read"),    id_of("reactor/sys/readv"),
                                         id_of("reactor/sys/recvmsg"), id_of("reactor/sys/sendmsg"),
                                         id_of("reactor/sys/write"),   id_of("reactor/sys/writev")};
  std::vector<PointId> points = points_of("reactor/sys/*:reset");
  std::sort(points.begin(), points.end());
  std::vector<PointId> sorted = expected;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(points, sorted);
  for (const PointId id : points) {
    EXPECT_NE(point_info(id).traits & kTraitSocketIo, 0u) << point_info(id).name;
  }
}

TEST_F(PlanWildcardTest, EventsOnReactorKeepsEpollWaitOnly) {
  EXPECT_EQ(points_of("reactor/*:events=+HUP"),
            std::vector<PointId>{id_of("reactor/sys/epoll_wait")});
}

TEST_F(PlanWildcardTest, ErrorOnSysKeepsEverySyscallPoint) {
  const std::vector<PointId> points = points_of("reactor/sys/*:error=EINTR");
  EXPECT_EQ(points, match_points("reactor/sys/*"));
  EXPECT_GE(points.size(), 11u);
}

TEST_F(PlanWildcardTest, DelayOnRaceKeepsEveryRacePoint) {
  const std::vector<PointId> points = points_of("reactor/race/*:delay=1ms");
  EXPECT_EQ(points.size(), 3u);
  for (const PointId id : points) {
    EXPECT_EQ(point_info(id).kind, PointKind::kRace);
  }
  EXPECT_EQ(points_of("reactor/race/connection/*:yield").size(), 2u);
}

TEST_F(PlanWildcardTest, DelayOnReactorKeepsSyscallAndRacePoints) {
  EXPECT_EQ(points_of("reactor/*:delay=1ms"), match_points("reactor/*"));
}

TEST_F(PlanWildcardTest, ExactNameDoesNotMatchLongerName) {
  EXPECT_EQ(points_of("reactor/sys/read:yield"), std::vector<PointId>{id_of("reactor/sys/read")});
}

TEST_F(PlanWildcardTest, PatternIsKeptAsWritten) {
  const Rule rule = parse_plan(" reactor/sys/* :reset").rules.at(0);
  EXPECT_EQ(rule.point, "reactor/sys/*");
  EXPECT_EQ(rule.to_string(), "reactor/sys/*:reset");
}

// ---- parse_action (replay records) ----------------------------------------------------------

class ActionParseTest : public ::testing::Test {
 protected:
  void SetUp() override { register_test_points(); }
};

TEST_F(ActionParseTest, EveryFormParsesAndRoundTrips) {
  const std::vector<PointId> readv = {id_of("reactor/sys/readv")};
  const std::vector<PointId> epoll = {id_of("reactor/sys/epoll_wait")};
  struct Case {
    const char* text;
    const std::vector<PointId>* points;
    ActionKind kind;
  };
  const Case cases[] = {
      {"error=EAGAIN", &readv, ActionKind::kError},
      {"short=50%", &readv, ActionKind::kShort},
      {"short=7", &readv, ActionKind::kShort},
      {"events=+HUP|-IN", &epoll, ActionKind::kEvents},
      {"reset", &readv, ActionKind::kReset},
      {"delay=5ms", &readv, ActionKind::kDelay},
      {"yield", &epoll, ActionKind::kYield},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const Action action = parse_action(c.text, *c.points);
    EXPECT_EQ(action.kind, c.kind);
    EXPECT_EQ(action.to_string(), c.text);
    EXPECT_EQ(parse_action(action.to_string(), *c.points), action);
  }
  const Action events = parse_action(" events = +HUP | -IN ", epoll);
  EXPECT_EQ(events.events_add, static_cast<uint32_t>(EPOLLHUP));
  EXPECT_EQ(events.events_remove, static_cast<uint32_t>(EPOLLIN));
  EXPECT_EQ(parse_action("delay=5ms", readv).delay, std::chrono::milliseconds(5));
  EXPECT_EQ(parse_action("short=50%", readv).short_percent, 50u);
}

TEST_F(ActionParseTest, IllegalOnAnyGivenPointThrows) {
  const std::vector<PointId> points = {id_of("reactor/sys/readv"), id_of("reactor/sys/accept4")};
  try {
    parse_action("reset", points);
    FAIL() << "no PlanError";
  } catch (const PlanError& error) {
    EXPECT_STREQ(error.what(),
                 "action \"reset\": action \"reset\" is not legal on point "
                 "\"reactor/sys/accept4\" (legal there: error, delay, yield)");
  }
}

TEST_F(ActionParseTest, BadTextIsQuoted) {
  const std::vector<PointId> readv = {id_of("reactor/sys/readv")};
  for (const auto& [text, expected] : std::vector<std::pair<const char*, const char*>>{
           {"error=EFOO", "action \"error=EFOO\": unknown errno \"EFOO\""},
           {"short=0", "action \"short=0\": out of range in \"short=0\""},
           {"", "action \"\": missing action"},
           {"error=EAGAIN,nth=1", "unknown errno \"EAGAIN,nth=1\""},
       }) {
    SCOPED_TRACE(text);
    try {
      parse_action(text, readv);
      ADD_FAILURE() << "no PlanError";
    } catch (const PlanError& error) {
      EXPECT_NE(std::string(error.what()).find(expected), std::string::npos) << error.what();
    }
  }
}

TEST_F(ActionParseTest, NoPointsSkipsLegalityCheck) {
  EXPECT_EQ(parse_action("events=+ERR", {}).events_add, static_cast<uint32_t>(EPOLLERR));
}

// ---- errno table ----------------------------------------------------------------------------

TEST(ErrnoTableTest, KnownNamesMapToValues) {
  EXPECT_EQ(errno_from_name("EAGAIN"), EAGAIN);
  EXPECT_EQ(errno_from_name("ECONNRESET"), ECONNRESET);
  EXPECT_EQ(errno_from_name("EPIPE"), EPIPE);
  EXPECT_EQ(errno_from_name("EMFILE"), EMFILE);
  EXPECT_EQ(errno_from_name("EINTR"), EINTR);
  EXPECT_EQ(errno_from_name("E2BIG"), E2BIG);
  EXPECT_EQ(errno_from_name("EXFULL"), EXFULL);
  EXPECT_EQ(errno_from_name("EHWPOISON"), EHWPOISON);
}

TEST(ErrnoTableTest, AliasesMapToCanonicalValue) {
  EXPECT_EQ(errno_from_name("EWOULDBLOCK"), EAGAIN);
  EXPECT_EQ(errno_from_name("EDEADLOCK"), EDEADLK);
  EXPECT_EQ(errno_from_name("ENOTSUP"), EOPNOTSUPP);
}

TEST(ErrnoTableTest, NameOfValueIsCanonical) {
  EXPECT_EQ(errno_name(EAGAIN), "EAGAIN");
  EXPECT_EQ(errno_name(EWOULDBLOCK), "EAGAIN");
  EXPECT_EQ(errno_name(EOPNOTSUPP), "EOPNOTSUPP");
  EXPECT_EQ(errno_name(EDEADLK), "EDEADLK");
  EXPECT_EQ(errno_name(ECONNRESET), "ECONNRESET");
}

TEST(ErrnoTableTest, EveryLinuxErrnoHasAName) {
  // Linux x86_64 errnos are 1..133 with no 41 and 58.
  for (int value = 1; value <= 133; ++value) {
    SCOPED_TRACE(value);
    const std::string_view name = errno_name(value);
    if (value == 41 || value == 58) {
      EXPECT_EQ(name, "");
      continue;
    }
    ASSERT_FALSE(name.empty());
    EXPECT_EQ(name[0], 'E');
    EXPECT_EQ(errno_from_name(name), value);
  }
}

TEST(ErrnoTableTest, UnknownNamesAndValuesAreRejected) {
  for (const char* name : {"", "E", "EFOO", "eagain", "EAGAIN ", " EAGAIN", "11", "EAGAIN2"}) {
    EXPECT_FALSE(errno_from_name(name).has_value()) << '"' << name << '"';
  }
  for (const int value : {0, -1, 41, 58, 134, 4096}) {
    EXPECT_EQ(errno_name(value), "") << value;
  }
}

// ---- durations ------------------------------------------------------------------------------

TEST(DurationParseTest, UnitsScaleToNanoseconds) {
  const std::pair<const char*, nanoseconds> cases[] = {
      {"250ns", nanoseconds(250)},
      {"10us", std::chrono::microseconds(10)},
      {"5ms", std::chrono::milliseconds(5)},
      {"1s", std::chrono::seconds(1)},
      {"0ms", nanoseconds(0)},
      {"007ms", std::chrono::milliseconds(7)},
      {" 5ms ", std::chrono::milliseconds(5)},
      {"9223372036854775807ns", nanoseconds(std::numeric_limits<int64_t>::max())},
      {"9223372036s", std::chrono::seconds(9223372036)},
  };
  for (const auto& [text, expected] : cases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(parse_duration(text), expected);
  }
}

TEST(DurationParseTest, MalformedOrOverflowingIsRejected) {
  for (const char* text :
       {"", "5", "ms", "s", "5 ms", "-5ms", "+5ms", "5m", "5h", "5.5ms", "5MS", "5mss", "5sms",
        "ms5", "9223372036854775808ns", "9223372037s", "18446744073709551616ns",
        "99999999999999999999999ns", "9223372036854776us"}) {
    EXPECT_FALSE(parse_duration(text).has_value()) << '"' << text << '"';
  }
}

}  // namespace
}  // namespace faultloop::faults
