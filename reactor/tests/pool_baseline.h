// Internal: PoolBaselineTest — FaultTest plus the buffer-release invariant for the LinkBuffer
// and NodePool unit tests: NodePool's live nodes and bytes are back at their SetUp values in
// TearDown (DESIGN "LinkBuffer": the pool counts what is handed out to buffers).
#pragma once

#include <cstdint>

#include "harness/testing/fault_test.h"
#include "reactor/node_pool.h"

namespace faultloop::testing {

/// FaultTest that also fails a test which leaves NodePool blocks handed out.
class PoolBaselineTest : public FaultTest {
 protected:
  /// FaultTest::SetUp, then records nodes_live() and bytes_live().
  void SetUp() override {
    FaultTest::SetUp();
    nodes_baseline_ = NodePool::instance().nodes_live();
    bytes_baseline_ = NodePool::instance().bytes_live();
  }
  /// Checks both counters are back at their baselines, then FaultTest::TearDown.
  void TearDown() override {
    EXPECT_EQ(NodePool::instance().nodes_live(), nodes_baseline_) << "NodePool nodes leaked";
    EXPECT_EQ(NodePool::instance().bytes_live(), bytes_baseline_) << "NodePool bytes leaked";
    FaultTest::TearDown();
  }

 private:
  int64_t nodes_baseline_ = 0;
  int64_t bytes_baseline_ = 0;
};

}  // namespace faultloop::testing
