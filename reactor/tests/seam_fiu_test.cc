// libfiu as the in-process control plane (label faults; DESIGN "Rules are ours; libfiu is the
// control plane"). Its own binary: enable_libfiu() keeps the armed flag on for the rest of the
// process, which would change the unarmed paths of every later test in a shared binary.
#include <fiu-control.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "faults/engine.h"
#include "faults/trace.h"
#include "harness/testing/fault_test.h"
#include "reactor/sys/sys.h"
#include "reactor/tests/test_sockets.h"

namespace faultloop {
namespace {

class SeamLibfiuTest : public testing::FaultTest {
 protected:
  void SetUp() override {
    testing::FaultTest::SetUp();
    faults::enable_libfiu();
  }
  void TearDown() override {
    // libfiu's table is process-global: nothing may stay enabled for the next test.
    for (const char* point : {"reactor/sys/read", "reactor/sys/getsockname"}) {
      fiu_disable(point);
    }
    testing::FaultTest::TearDown();
  }
};

void* failinfo(int error) { return reinterpret_cast<void*>(static_cast<intptr_t>(error)); }

TEST_F(SeamLibfiuTest, OnetimeEnableFailsOneCallWithTheFailinfoErrno) {
  EXPECT_TRUE(faults::libfiu_enabled());
  EXPECT_NE(faults::armed_reasons() & faults::kArmLibfiu, 0u);
  testing::SeamSocketPair pair(1);
  testing::write_all_raw(pair.peer(), "ab");
  ASSERT_EQ(fiu_enable("reactor/sys/read", 1, failinfo(ECONNABORTED), FIU_ONETIME), 0);
  char c;
  EXPECT_EQ(sys::read(pair.sut(), &c, 1), -1);
  EXPECT_EQ(errno, ECONNABORTED);
  EXPECT_EQ(sys::read(pair.sut(), &c, 1), 1);
  EXPECT_EQ(c, 'a');
  EXPECT_EQ(faults::injection_count(), 1u);
}

TEST_F(SeamLibfiuTest, EagainFailinfoFailsOneRead) {
  testing::SeamSocketPair pair(1);
  testing::write_all_raw(pair.peer(), "a");
  ASSERT_EQ(fiu_enable("reactor/sys/read", 1, failinfo(EAGAIN), FIU_ONETIME), 0);
  char c;
  EXPECT_EQ(sys::read(pair.sut(), &c, 1), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(sys::read(pair.sut(), &c, 1), 1);
}

TEST_F(SeamLibfiuTest, EnableWithoutFailinfoUsesThePointsDefaultErrno) {
  testing::SeamSocketPair pair(1);
  ASSERT_EQ(fiu_enable("reactor/sys/getsockname", 1, nullptr, 0), 0);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  for (int i = 0; i < 2; ++i) {  // no FIU_ONETIME: every call until disabled
    EXPECT_EQ(sys::getsockname(pair.sut(), reinterpret_cast<sockaddr*>(&ss), &len), -1);
    EXPECT_EQ(errno, ENOBUFS);  // sys.h: getsockname's default errno
  }
  ASSERT_EQ(fiu_disable("reactor/sys/getsockname"), 0);
  EXPECT_EQ(sys::getsockname(pair.sut(), reinterpret_cast<sockaddr*>(&ss), &len), 0);
}

TEST_F(SeamLibfiuTest, OurRuleWinsWhenBothFire) {
  testing::SeamSocketPair pair(1);
  testing::write_all_raw(pair.peer(), "ab");
  ASSERT_TRUE(arm("reactor/sys/read:error=EINTR,nth=1"));
  ASSERT_EQ(fiu_enable("reactor/sys/read", 1, failinfo(EAGAIN), FIU_ONETIME), 0);
  char c;
  EXPECT_EQ(sys::read(pair.sut(), &c, 1), -1);
  EXPECT_EQ(errno, EINTR);  // ours; libfiu was not even asked
  EXPECT_EQ(sys::read(pair.sut(), &c, 1), -1);
  EXPECT_EQ(errno, EAGAIN);  // libfiu's one-time failure, still pending
  EXPECT_EQ(sys::read(pair.sut(), &c, 1), 1);
}

TEST_F(SeamLibfiuTest, LibfiuInjectionIsTracedWithItsRuleIndex) {
  const std::string path = testing::temp_path("fiu-trace");
  faults::open_trace(path, faults::TraceHeader{});
  testing::SeamSocketPair pair(1);
  ASSERT_EQ(fiu_enable("reactor/sys/read", 1, failinfo(EAGAIN), FIU_ONETIME), 0);
  char c;
  EXPECT_EQ(sys::read(pair.sut(), &c, 1), -1);
  faults::close_trace();
  const auto trace = faults::read_trace(path);
  ASSERT_EQ(trace.records.size(), 1u);
  EXPECT_EQ(trace.records[0].rule, -2);
  EXPECT_EQ(trace.records[0].point, "reactor/sys/read");
  EXPECT_EQ(trace.records[0].action, "error=EAGAIN");
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace faultloop
