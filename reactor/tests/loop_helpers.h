// Internal: helpers for tests that drive a Poll running on its own thread.
#pragma once

#include <chrono>
#include <future>
#include <thread>

#include "reactor/poll.h"

namespace faultloop::testing {

/// Polls `cond` every millisecond until it holds or `limit` passes; returns its last value.
template <class Cond>
bool eventually(Cond cond, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return cond();
}

/// Runs `fn` on `poll`'s loop thread and returns its result once it ran.
template <class Fn>
auto on_loop(Poll& poll, Fn fn) {
  std::packaged_task<decltype(fn())()> task(std::move(fn));
  auto done = task.get_future();
  poll.queue_in_loop([&task] { task(); });
  return done.get();
}

}  // namespace faultloop::testing
