#include "harness/testing/fault_test.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <string>

#include "reactor/node_pool.h"
#include "reactor/sys/sys.h"

#if FAULTLOOP_FAULTS
#include "faults/engine.h"
#include "faults/fd_ledger.h"
#endif

namespace faultloop::testing {

namespace {

uint64_t fnv1a(std::string_view text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h = (h ^ c) * 1099511628211ULL;
  }
  return h;
}

uint64_t pick_seed() {
  if (const char* env = std::getenv("FAULTLOOP_SEED"); env != nullptr && *env != '\0') {
    const std::string_view text(env);
    uint64_t seed = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seed);
    if (ec == std::errc() && end == text.data() + text.size()) {
      return seed;
    }
    ADD_FAILURE() << "FAULTLOOP_SEED=\"" << text << "\": not an unsigned 64-bit integer";
  }
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return fnv1a(std::string(info->test_suite_name()) + "." + info->name());
}

}  // namespace

void FaultTest::SetUp() {
  seed_ = pick_seed();
  RecordProperty("faultloop_seed", std::to_string(seed_));
  seed_trace_.emplace(__FILE__, __LINE__, "faultloop_seed=" + std::to_string(seed_));
#if FAULTLOOP_FAULTS
  faults::reset();
  open_baseline_.clear();
  for (const auto& o : faults::open_fds()) {
    open_baseline_.emplace_back(o.fd, o.generation);
  }
#endif
  fds_open_baseline_ = sys::fds_open();
  pool_nodes_baseline_ = NodePool::instance().nodes_live();
  pool_bytes_baseline_ = NodePool::instance().bytes_live();
}

void FaultTest::TearDown() {
#if FAULTLOOP_FAULTS
  faults::disarm();
  for (const auto& v : faults::take_violations()) {
    ADD_FAILURE() << "fd ledger violation not claimed by the test: " << v.to_string();
  }
  for (const auto& o : faults::open_fds()) {
    const std::pair<int, uint32_t> key{o.fd, o.generation};
    if (std::find(open_baseline_.begin(), open_baseline_.end(), key) == open_baseline_.end()) {
      ADD_FAILURE() << "fd leak: fd " << o.fd << " (role " << o.role << ", conn " << o.conn
                    << ", " << o.target << ") opened through the seam is still open";
    }
  }
  faults::reset();
#endif
  EXPECT_EQ(sys::fds_open(), fds_open_baseline_)
      << "fds opened minus closed through the seam changed during the test";
  EXPECT_EQ(NodePool::instance().nodes_live(), pool_nodes_baseline_)
      << "buffer nodes handed out during the test were not released";
  EXPECT_EQ(NodePool::instance().bytes_live(), pool_bytes_baseline_)
      << "buffer bytes handed out during the test were not released";
  seed_trace_.reset();
}

bool FaultTest::arm(std::string_view rules, uint64_t iteration) {
#if FAULTLOOP_FAULTS
  try {
    faults::arm(faults::parse_plan(rules), seed_, iteration);
    return true;
  } catch (const faults::PlanError& e) {
    ADD_FAILURE() << "bad plan: " << e.what();
    return false;
  }
#else
  (void)rules;
  (void)iteration;
  return false;
#endif
}

}  // namespace faultloop::testing
