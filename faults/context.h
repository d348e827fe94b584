// Public: the calling thread's fault context — its kind and current connection — read by the
// seam on its armed path. Set through reactor/sys/call_context.h (sys::ConnScope) and
// sys::set_thread_kind; faults/ only stores it.
#pragma once

#include <cstdint>

#include "faults/registry.h"

namespace faultloop::faults {

/// Per-thread context: which connection the thread is working for and what kind of thread it
/// is. Plain thread-local data: constant-initialised, so access needs no TLS wrapper call.
struct ThreadContext {
  uint64_t conn = 0;                        ///< current connection id; 0 = none
  ThreadKindId thread_kind = kThreadOther;  ///< registered thread kind
};

/// The calling thread's context.
extern constinit thread_local ThreadContext tls_context;

}  // namespace faultloop::faults
