// seam_cost — the cost of one seam call, for callgrind (DESIGN: "Seam functions must stay within
// 5 instructions of release per call when nothing is armed").
//
//   seam_cost MODE N     MODE: raw | seam | armed_nomatch
//
// Calls read(2) N times on an empty non-blocking socket (every call returns EAGAIN) inside
// faultloop_seam_cost_raw() or faultloop_seam_cost_seam(), so
// `valgrind --tool=callgrind --toggle-collect='faultloop_seam_cost_*'` counts exactly the loop:
// Ir / N is the user-space instructions per call. `raw` calls ::read, `seam` calls sys::read
// (release: inline pass-through; faults: nothing armed), `armed_nomatch` (fault build) arms a rule on reactor/sys/read whose fd selector matches no
// call, so every call takes the armed path and evaluates one rule without injecting.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "reactor/sys/sys.h"

#if FAULTLOOP_FAULTS
#include "faults/engine.h"
#endif

namespace {
int g_fd = -1;
char g_buf[64];
}  // namespace

// One loop per kind of call, so neither loop carries a branch the other lacks.
extern "C" [[gnu::noinline]] long faultloop_seam_cost_raw(long n) {
  long again = 0;
  for (long i = 0; i < n; ++i) {
    again += (::read(g_fd, g_buf, sizeof g_buf) < 0 && errno == EAGAIN) ? 1 : 0;
  }
  return again;
}

extern "C" [[gnu::noinline]] long faultloop_seam_cost_seam(long n) {
  long again = 0;
  for (long i = 0; i < n; ++i) {
    again += (faultloop::sys::read(g_fd, g_buf, sizeof g_buf) < 0 && errno == EAGAIN) ? 1 : 0;
  }
  return again;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: seam_cost raw|seam|armed_nomatch N\n");
    return 2;
  }
  const std::string mode = argv[1];
  const long n = std::strtol(argv[2], nullptr, 10);
  if (n <= 0 || (mode != "raw" && mode != "seam" && mode != "armed_nomatch")) {
    std::fprintf(stderr, "seam_cost: bad arguments \"%s %s\"\n", argv[1], argv[2]);
    return 2;
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) {
    std::perror("socketpair");
    return 1;
  }
  g_fd = sv[0];
  if (mode == "armed_nomatch") {
#if FAULTLOOP_FAULTS
    faultloop::faults::arm(faultloop::faults::parse_plan("reactor/sys/read:error=EIO,fd=1000000"));
#else
    std::fprintf(stderr, "seam_cost: armed_nomatch needs the fault build\n");
    return 2;
#endif
  }
  const long again = mode == "raw" ? faultloop_seam_cost_raw(n) : faultloop_seam_cost_seam(n);
  std::printf("mode=%s calls=%ld eagain=%ld\n", mode.c_str(), n, again);
  ::close(sv[0]);
  ::close(sv[1]);
  return again == n ? 0 : 1;
}
