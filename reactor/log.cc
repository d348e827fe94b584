#include "reactor/log.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <utility>

namespace faultloop {
namespace {

// One line to stderr: "[   12.345678] WARN  message". The timestamp is steady_clock seconds
// (monotonic; on Linux, time since boot). One fwrite per line, so lines do not interleave.
void default_sink(LogLevel level, std::string_view line) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count();
  fmt::memory_buffer out;
  fmt::format_to(std::back_inserter(out), "[{:6}.{:06}] {:<5} {}\n", us / 1000000, us % 1000000,
                 log_level_name(level), line);
  std::fwrite(out.data(), 1, out.size(), stderr);
}

struct SinkState {
  std::mutex mutex;
  std::shared_ptr<const LogSink> sink;  // null: default_sink
};

SinkState& sink_state() {
  static SinkState* state = new SinkState;  // never destroyed: logging works during exit
  return *state;
}

}  // namespace

void set_log_sink(LogSink sink) {
  auto next = sink ? std::make_shared<const LogSink>(std::move(sink)) : nullptr;
  SinkState& state = sink_state();
  std::lock_guard lock(state.mutex);
  state.sink.swap(next);
  // The old sink is released after the lock (its destructor may do anything but log).
}

std::string_view log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return "TRACE";
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarn:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "?";
}

namespace detail {

void vlog(LogLevel level, fmt::string_view format, fmt::format_args args) noexcept {
  try {
    fmt::memory_buffer line;
    fmt::vformat_to(std::back_inserter(line), format, args);
    std::shared_ptr<const LogSink> sink;
    {
      SinkState& state = sink_state();
      std::lock_guard lock(state.mutex);
      sink = state.sink;
    }
    const std::string_view text(line.data(), line.size());
    if (sink) {
      (*sink)(level, text);
    } else {
      default_sink(level, text);
    }
  } catch (...) {
    // Logging never throws: a failing formatter or sink loses the line.
  }
}

}  // namespace detail
}  // namespace faultloop
