// Internal: the out-of-tree consumer of an installed faultloop (ctest install.consumer). It
// uses the seam as an application would and checks the fd count comes back to zero, then
// moves bytes through a LinkBuffer (faultloop::reactor) and checks every node went back.
#include "reactor/sys/sys.h"

#include <cstdio>
#include <cstring>

#include "reactor/link_buffer.h"
#include "reactor/node_pool.h"

#include <sys/socket.h>

namespace {

int fail(const char* what) {
  std::fprintf(stderr, "faultloop_consumer: %s\n", what);
  return 1;
}

}  // namespace

int main() {
  // The seam's build must be the one the package config announced.
  if (FAULTLOOP_FAULTS != FAULTLOOP_CONSUMER_EXPECT_FAULTS) {
    return fail("FAULTLOOP_FAULTS of faultloop::sys differs from faultloopConfig.cmake");
  }
  if (faultloop::sys::fds_open() != 0) {
    return fail("fds_open() is not 0 at start");
  }
  const int fd = faultloop::sys::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    std::perror("faultloop_consumer: socket");
    return 1;
  }
  if (faultloop::sys::fds_open() != 1) {
    return fail("fds_open() is not 1 after socket()");
  }
  if (faultloop::sys::close(fd) != 0) {
    std::perror("faultloop_consumer: close");
    return 1;
  }
  if (faultloop::sys::fds_open() != 0) {
    return fail("fds_open() is not back to 0 after close()");
  }
  {
    faultloop::LinkBuffer buffer;
    if (buffer.write_binary(std::span<const char>("0123456789", 10)) || buffer.flush()) {
      return fail("LinkBuffer write_binary/flush failed");
    }
    auto bytes = buffer.next(10);
    if (!bytes || std::memcmp(bytes->data(), "0123456789", 10) != 0) {
      return fail("LinkBuffer next(10) did not return the 10 bytes written");
    }
    buffer.release();
  }
  if (faultloop::NodePool::instance().nodes_live() != 0) {
    return fail("NodePool nodes_live() is not 0 after the LinkBuffer is gone");
  }
  std::printf("faultloop_consumer: ok (FAULTLOOP_FAULTS=%d)\n", FAULTLOOP_FAULTS);
  return 0;
}
