// Unit tests of the TOML plan form (faults/plan_toml.h) and parse_plan_file.
#include "faults/plan_toml.h"

#include "faults/tests/test_points.h"

#include <gtest/gtest.h>
#include <toml++/toml.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <sys/epoll.h>

namespace faultloop::faults {
namespace {

using namespace std::string_view_literals;

/// Parses `text` as the TOML file "name.toml" with toml++, then as a plan.
Plan parse_toml(std::string_view text) {
  const toml::table table = toml::parse(text, "name.toml"sv);
  return parse_plan_toml(table, "name.toml");
}

/// The PlanError message of parse_plan_toml_text(text, "name.toml"), or "" when it parses.
std::string toml_error(std::string_view text) {
  try {
    parse_plan_toml_text(text, "name.toml");
  } catch (const PlanError& error) {
    return error.what();
  }
  return "";
}

/// The message of the compact parse of `text`, without its `rule N "..."` prefix.
std::string compact_problem(std::string_view text) {
  try {
    parse_plan(text);
  } catch (const PlanError& error) {
    const std::string message = error.what();
    const std::size_t start = message.find("\": ");
    return start == std::string::npos ? message : message.substr(start + 3);
  }
  return "";
}

class PlanTomlTest : public ::testing::Test {
 protected:
  void SetUp() override { register_test_points(); }
};

constexpr std::string_view kGoodPlan = R"(# a plan
seed = 42

[[faults]]
point = "reactor/sys/readv"
error = "ECONNRESET"
role = "conn|listener"
thread = "poller"
fd = 7
conn = 42
nth = 3
after = 10
every = 2
count = 5
seed = 99
probability = 0.25

[[faults]]
point = "reactor/sys/epoll_wait"
events = ["+HUP", "+RDHUP"]
role = ["conn"]
probability = 1

[[faults]]
point = "reactor/sys/writev"
short = "50%"

[[faults]]
point = "reactor/sys/*"
reset = true

[[faults]]
point = "reactor/race/*"
delay = "5ms"

[[faults]]
point = "reactor/sys/write"
short = 1
probability = 0

[[faults]]
point = "reactor/sys/close"
yield = true
)";

TEST_F(PlanTomlTest, GoodFileMatchesCompactPlan) {
  const Plan plan = parse_toml(kGoodPlan);
  EXPECT_EQ(plan.seed, 42u);
  const Plan compact = parse_plan(
      "reactor/sys/readv:error=ECONNRESET,role=conn|listener,thread=poller,fd=7,conn=42,nth=3,"
      "after=10,every=2,count=5,seed=99,probability=0.25;"
      "reactor/sys/epoll_wait:events=+HUP|+RDHUP,role=conn;"
      "reactor/sys/writev:short=50%;"
      "reactor/sys/*:reset;"
      "reactor/race/*:delay=5ms;"
      "reactor/sys/write:short=1,probability=0;"
      "reactor/sys/close:yield");
  ASSERT_EQ(plan.rules.size(), compact.rules.size());
  for (std::size_t i = 0; i < plan.rules.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(rule_fields(plan.rules[i]), rule_fields(compact.rules[i]));
    EXPECT_EQ(plan.rules[i].to_string(), compact.rules[i].to_string());
  }
  EXPECT_EQ(plan.to_string(), compact.to_string());
}

TEST_F(PlanTomlTest, WhereNamesTheFaultsTable) {
  const Plan plan = parse_toml(kGoodPlan);
  ASSERT_EQ(plan.rules.size(), 7u);
  EXPECT_EQ(plan.rules[0].where, "name.toml:4:1");
  EXPECT_EQ(plan.rules[1].where, "name.toml:18:1");
  EXPECT_EQ(plan.rules[6].where, "name.toml:41:1");
}

TEST_F(PlanTomlTest, FieldsHaveTheirValues) {
  const Plan plan = parse_toml(kGoodPlan);
  ASSERT_EQ(plan.rules.size(), 7u);
  EXPECT_EQ(plan.rules[0].action.error, ECONNRESET);
  EXPECT_EQ(plan.rules[0].fd, 7);
  EXPECT_DOUBLE_EQ(plan.rules[0].probability, 0.25);
  EXPECT_EQ(plan.rules[1].action.events_add, static_cast<uint32_t>(EPOLLHUP | EPOLLRDHUP));
  EXPECT_EQ(plan.rules[2].action.short_percent, 50u);
  EXPECT_EQ(plan.rules[3].points.size(), 6u);  // reset: socket I/O points only
  EXPECT_EQ(plan.rules[4].action.delay, std::chrono::milliseconds(5));
  EXPECT_EQ(plan.rules[5].action.short_bytes, 1u);
  EXPECT_EQ(plan.rules[5].probability, 0.0);
  EXPECT_EQ(plan.rules[6].action.kind, ActionKind::kYield);
}

TEST_F(PlanTomlTest, EmptyTablesGiveEmptyPlan) {
  EXPECT_TRUE(parse_toml("").rules.empty());
  EXPECT_FALSE(parse_toml("").seed.has_value());
  EXPECT_TRUE(parse_toml("faults = []").rules.empty());
  EXPECT_EQ(parse_toml("seed = 0").seed, 0u);
}

TEST_F(PlanTomlTest, InlineTablesAreRules) {
  const Plan plan = parse_toml(
      "faults = [ { point = \"reactor/sys/readv\", yield = true },\n"
      "           { point = \"reactor/sys/writev\", delay = \"1us\", nth = 1 } ]\n");
  ASSERT_EQ(plan.rules.size(), 2u);
  EXPECT_EQ(plan.to_string(), "reactor/sys/readv:yield;reactor/sys/writev:delay=1us,nth=1");
}

TEST_F(PlanTomlTest, RulesOfAnEmbeddedArrayParse) {
  const toml::table table = toml::parse(
      "name = \"scenario\"\n[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\n"sv,
      "scenario.toml"sv);
  const std::vector<Rule> rules = parse_rules_toml(*table["faults"].as_array(), "scenario.toml");
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0].where, "scenario.toml:2:1");
}

// ---- bad TOML: every message names name.toml:LINE:COLUMN of the offending key or value -------

struct BadTomlCase {
  const char* name;      ///< test name suffix (alphanumeric)
  const char* toml;      ///< the file
  const char* expected;  ///< a substring of the message, starting with the location
};

// NOLINTNEXTLINE(readability-identifier-naming): gtest looks for PrintTo.
void PrintTo(const BadTomlCase& param, std::ostream* os) {
  *os << param.toml;
}

class PlanTomlErrorTest : public ::testing::TestWithParam<BadTomlCase> {
 protected:
  void SetUp() override { register_test_points(); }
};

TEST_P(PlanTomlErrorTest, ErrorNamesFileLineAndColumn) {
  const BadTomlCase& param = GetParam();
  const std::string message = toml_error(param.toml);
  ASSERT_FALSE(message.empty()) << "parsed without error:\n" << param.toml;
  EXPECT_NE(message.find(param.expected), std::string::npos)
      << "message: " << message << "\nexpected: " << param.expected;
  EXPECT_EQ(message.rfind("name.toml:", 0), 0u) << message;
}

constexpr BadTomlCase kBadToml[] = {
    {"SyntaxError", "seed = 1\n[[faults]]\npoint = \n",
     "name.toml:3:9: Error while parsing key-value pair"},
    {"UnknownTopLevelKey", "seed = 1\nrules = 2\n", "name.toml:2:1: unknown key \"rules\""},
    {"SeedNotInteger", "seed = \"42\"\n",
     "name.toml:1:8: wrong type for \"seed\": expected an integer, got a string"},
    {"SeedNegative", "seed = -1\n", "name.toml:1:8: negative value in \"seed=-1\""},
    {"FaultsNotArray", "faults = 3\n", "name.toml:1:10: wrong type for \"faults\""},
    {"FaultsElementNotTable", "faults = [1]\n",
     "name.toml:1:11: wrong type for an element of \"faults\": expected a table, got an integer"},
    {"UnknownFaultKey", "[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\noften = 3\n",
     "name.toml:4:1: unknown key \"often\" in [[faults]]"},
    {"MissingPoint", "\n[[faults]]\nyield = true\n", "name.toml:2:1: missing key \"point\""},
    {"PointNotString", "[[faults]]\npoint = 1\nyield = true\n",
     "name.toml:2:9: wrong type for \"point\": expected a string, got an integer"},
    {"UnknownPoint", "[[faults]]\npoint = \"reactor/sys/redv\"\nreset = true\n",
     "name.toml:2:9: unknown point \"reactor/sys/redv\""},
    {"BadPointName", "[[faults]]\npoint = \"reactor/*/readv\"\nyield = true\n",
     "name.toml:2:9: bad point name \"reactor/*/readv\""},
    {"MissingAction", "[[faults]]\npoint = \"reactor/sys/readv\"\nnth = 1\n",
     "name.toml:1:1: missing action"},
    {"TwoActions", "[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\nerror = \"EIO\"\n",
     "name.toml:4:1: two actions \"yield\" and \"error\""},
    {"UnknownErrno", "[[faults]]\npoint = \"reactor/sys/readv\"\nerror = \"EFOO\"\n",
     "name.toml:3:9: unknown errno \"EFOO\" in \"error=EFOO\""},
    {"ErrorNotString", "[[faults]]\npoint = \"reactor/sys/readv\"\nerror = 11\n",
     "name.toml:3:9: wrong type for \"error\""},
    {"ShortZero", "[[faults]]\npoint = \"reactor/sys/readv\"\nshort = 0\n",
     "name.toml:3:9: out of range in \"short=0\""},
    {"ShortHundredPercent", "[[faults]]\npoint = \"reactor/sys/readv\"\nshort = \"100%\"\n",
     "name.toml:3:9: out of range in \"short=100%\""},
    {"ShortFloat", "[[faults]]\npoint = \"reactor/sys/readv\"\nshort = 0.5\n",
     "name.toml:3:9: wrong type for \"short\""},
    {"EventsEmptyArray", "[[faults]]\npoint = \"reactor/sys/epoll_wait\"\nevents = []\n",
     "name.toml:3:10: missing value in \"events=\""},
    {"EventsElementNotString",
     "[[faults]]\npoint = \"reactor/sys/epoll_wait\"\nevents = [\"+IN\", 1]\n",
     "name.toml:3:18: wrong type for \"events\": expected a string, got an integer"},
    {"EventsAddedAndRemoved",
     "[[faults]]\npoint = \"reactor/sys/epoll_wait\"\nevents = [\"+IN\", \"-IN\"]\n",
     "name.toml:3:10: event \"IN\" both added and removed in \"events=+IN|-IN\""},
    {"ResetFalse", "[[faults]]\npoint = \"reactor/sys/readv\"\nreset = false\n",
     "name.toml:3:9: \"reset = false\" is not allowed"},
    {"YieldNotBoolean", "[[faults]]\npoint = \"reactor/sys/readv\"\nyield = \"yes\"\n",
     "name.toml:3:9: wrong type for \"yield\""},
    {"ResetIllegal", "[[faults]]\npoint = \"reactor/sys/accept4\"\nreset = true\n",
     "name.toml:3:1: action \"reset\" is not legal on point \"reactor/sys/accept4\""},
    {"DelayWithoutUnit", "[[faults]]\npoint = \"reactor/sys/readv\"\ndelay = \"5\"\n",
     "name.toml:3:9: bad duration in \"delay=5\""},
    {"DelayInteger", "[[faults]]\npoint = \"reactor/sys/readv\"\ndelay = 5\n",
     "name.toml:3:9: wrong type for \"delay\""},
    {"UnknownRole",
     "[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\nrole = [\"conn\", \"x\"]\n",
     "name.toml:4:8: unknown role \"x\" in \"role=conn|x\""},
    {"UnknownThread", "[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\nthread = \"gc\"\n",
     "name.toml:4:10: unknown thread kind \"gc\""},
    {"NthString", "[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\nnth = \"3\"\n",
     "name.toml:4:7: wrong type for \"nth\": expected an integer, got a string"},
    {"NthZero", "[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\n\nnth = 0\n",
     "name.toml:5:7: out of range in \"nth=0\""},
    {"CountZero", "[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\ncount = 0\n",
     "name.toml:4:9: out of range in \"count=0\""},
    {"FdNegative", "[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\nfd = -1\n",
     "name.toml:4:6: negative value in \"fd=-1\""},
    {"FdAboveIntMax", "[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\nfd = 3000000000\n",
     "name.toml:4:6: out of range in \"fd=3000000000\""},
    {"ProbabilityAboveOne",
     "[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\nprobability = 1.5\n",
     "name.toml:4:15: out of range in \"probability=1.5\""},
    {"ProbabilityIntegerTwo",
     "[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\nprobability = 2\n",
     "name.toml:4:15: out of range in \"probability=2\""},
    {"ProbabilityNan",
     "[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\nprobability = nan\n",
     "name.toml:4:15: out of range in \"probability="},
    {"ProbabilityString",
     "[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\nprobability = \"0.5\"\n",
     "name.toml:4:15: wrong type for \"probability\""},
    {"SecondRuleBad",
     "[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\n\n[[faults]]\n"
     "point = \"reactor/sys/readv\"\nyield = true\nevery = 0\n",
     "name.toml:8:9: out of range in \"every=0\""},
};

INSTANTIATE_TEST_SUITE_P(Toml,
                         PlanTomlErrorTest,
                         ::testing::ValuesIn(kBadToml),
                         [](const ::testing::TestParamInfo<BadTomlCase>& case_info) {
                           return std::string(case_info.param.name);
                         });

TEST_F(PlanTomlTest, ProblemsMatchCompactForm) {
  const std::pair<const char*, const char*> cases[] = {
      {"[[faults]]\npoint = \"reactor/sys/redv\"\nreset = true\n", "reactor/sys/redv:reset"},
      {"[[faults]]\npoint = \"reactor/sys/accept4\"\nreset = true\n", "reactor/sys/accept4:reset"},
      {"[[faults]]\npoint = \"reactor/race/*\"\nerror = \"EIO\"\n", "reactor/race/*:error=EIO"},
      {"[[faults]]\npoint = \"reactor/sys/readv\"\nshort = \"0%\"\n", "reactor/sys/readv:short=0%"},
      {"[[faults]]\npoint = \"reactor/sys/epoll_wait\"\nevents = \"+IN|-IN\"\n",
       "reactor/sys/epoll_wait:events=+IN|-IN"},
      {"[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\nrole = \"conn|bogus\"\n",
       "reactor/sys/readv:yield,role=conn|bogus"},
      {"[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\nfd = -1\n",
       "reactor/sys/readv:yield,fd=-1"},
      {"[[faults]]\npoint = \"reactor/sys/readv\"\nyield = true\nprobability = 1.5\n",
       "reactor/sys/readv:yield,probability=1.5"},
      {"[[faults]]\npoint = \"reactor/sys/readv\"\ndelay = \"5\"\n", "reactor/sys/readv:delay=5"},
  };
  for (const auto& [toml_text, compact] : cases) {
    SCOPED_TRACE(compact);
    const std::string from_toml = toml_error(toml_text);
    const std::string problem = compact_problem(compact);
    ASSERT_FALSE(problem.empty());
    // "name.toml:L:C: <problem>"
    ASSERT_GT(from_toml.size(), problem.size());
    EXPECT_EQ(from_toml.substr(from_toml.size() - problem.size()), problem) << from_toml;
    EXPECT_EQ(from_toml.rfind("name.toml:", 0), 0u) << from_toml;
  }
}

// ---- files ----------------------------------------------------------------------------------

TEST_F(PlanTomlTest, ParseFileReadsPlan) {
  const std::string path = ::testing::TempDir() + "faults_plan_test_good.toml";
  {
    std::ofstream out(path);
    out << kGoodPlan;
  }
  const Plan plan = parse_plan_file(path);
  EXPECT_EQ(plan.seed, 42u);
  ASSERT_EQ(plan.rules.size(), 7u);
  EXPECT_EQ(plan.rules[0].where, path + ":4:1");
  std::remove(path.c_str());
}

TEST_F(PlanTomlTest, ParseFileNamesPathInErrors) {
  const std::string path = ::testing::TempDir() + "faults_plan_test_bad.toml";
  {
    std::ofstream out(path);
    out << "[[faults]]\npoint = \"reactor/sys/readv\"\nnth = 0\nyield = true\n";
  }
  try {
    parse_plan_file(path);
    ADD_FAILURE() << "no PlanError";
  } catch (const PlanError& error) {
    EXPECT_EQ(std::string(error.what()),
              path + ":3:7: out of range in \"nth=0\" (nth counts calls from 1)");
  }
  std::remove(path.c_str());
}

TEST_F(PlanTomlTest, ParseMissingFileThrowsNamingPath) {
  const std::string path = ::testing::TempDir() + "faults_plan_test_missing/none.toml";
  try {
    parse_plan_file(path);
    FAIL() << "no PlanError";
  } catch (const PlanError& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.rfind(path + ": cannot read plan file", 0), 0u) << message;
    EXPECT_NE(message.find("No such file or directory"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace faultloop::faults
