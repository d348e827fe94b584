// Google Benchmark of one seam call: read(2) on an empty non-blocking socket (EAGAIN), raw and
// through the seam; in the fault build also armed with a rule that matches no call. Wall-clock
// figures here swing 30-100 % between runs: compare ratios of interleaved runs, and use
// seam_cost under callgrind for a stable instruction count.
#include <benchmark/benchmark.h>
#include <sys/socket.h>
#include <unistd.h>

#include "reactor/sys/sys.h"

#if FAULTLOOP_FAULTS
#include "faults/engine.h"
#endif

namespace {

struct EmptySocket {
  int sv[2] = {-1, -1};
  EmptySocket() { ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv); }
  ~EmptySocket() {
    ::close(sv[0]);
    ::close(sv[1]);
  }
};

void BM_RawRead(benchmark::State& state) {
  EmptySocket s;
  char buf[64];
  for (auto _ : state) {
    benchmark::DoNotOptimize(::read(s.sv[0], buf, sizeof buf));
  }
}
BENCHMARK(BM_RawRead);

void BM_SeamRead(benchmark::State& state) {
  EmptySocket s;
  char buf[64];
  for (auto _ : state) {
    benchmark::DoNotOptimize(faultloop::sys::read(s.sv[0], buf, sizeof buf));
  }
}
BENCHMARK(BM_SeamRead);

#if FAULTLOOP_FAULTS
void BM_SeamReadArmedNoMatch(benchmark::State& state) {
  EmptySocket s;
  char buf[64];
  faultloop::faults::arm(faultloop::faults::parse_plan("reactor/sys/read:error=EIO,fd=1000000"));
  for (auto _ : state) {
    benchmark::DoNotOptimize(faultloop::sys::read(s.sv[0], buf, sizeof buf));
  }
  faultloop::faults::reset();
}
BENCHMARK(BM_SeamReadArmedNoMatch);
#endif

}  // namespace

BENCHMARK_MAIN();
