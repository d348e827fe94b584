// Public: FAULTLOOP_LOG, the reactor's one logging hook (STYLE 35).
//
//   FAULTLOOP_LOG(kWarn, "close fd={} failed: {}", fd, ec.message());
//
// Levels kTrace < kDebug < kInfo < kWarn < kError. FAULTLOOP_LOG_MIN_LEVEL (an integer: 0 trace,
// 1 debug, 2 info, 3 warn, 4 error, 5 nothing) removes lower levels at compile time: their
// arguments are not evaluated and no code is emitted (the format string is still checked).
// Default: 2 (info) with NDEBUG, 1 (debug) without.
//
// Formatting uses fmt with compile-time checked format strings, so this header includes fmt
// and faultloop::reactor links fmt::fmt PUBLIC. The sink is replaceable (set_log_sink); the
// default one writes one line to stderr with a monotonic timestamp. Logging never throws.
//
// Rule for callers (STYLE 34): never log between a syscall and the check of its result; save
// errno on the line after the call first. The seam (reactor/sys) never logs.
#pragma once

#include <fmt/core.h>

#include <functional>
#include <string_view>

#ifndef FAULTLOOP_LOG_MIN_LEVEL
#ifdef NDEBUG
#define FAULTLOOP_LOG_MIN_LEVEL 2
#else
#define FAULTLOOP_LOG_MIN_LEVEL 1
#endif
#endif

namespace faultloop {

/// Severity of a log line.
enum class LogLevel : int { kTrace = 0, kDebug = 1, kInfo = 2, kWarn = 3, kError = 4 };

/// The lowest level compiled in (FAULTLOOP_LOG_MIN_LEVEL).
inline constexpr int kLogMinLevel = FAULTLOOP_LOG_MIN_LEVEL;

/// Receives each formatted line (without a trailing newline). May be called from any thread,
/// concurrently; it must not throw (exceptions are swallowed) and must not log.
using LogSink = std::function<void(LogLevel, std::string_view)>;

/// Replaces the sink; an empty function restores the default (stderr). Thread-safe; lines
/// being written by other threads may still reach the old sink.
void set_log_sink(LogSink sink);

/// "TRACE", "DEBUG", "INFO", "WARN", "ERROR".
std::string_view log_level_name(LogLevel level);

namespace detail {
/// Formats and hands the line to the sink. Never throws.
void vlog(LogLevel level, fmt::string_view format, fmt::format_args args) noexcept;

/// Checks `format` against `args` at compile time, then vlog().
template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> format, const Args&... args) noexcept {
  vlog(level, format, fmt::make_format_args(args...));
}
}  // namespace detail

}  // namespace faultloop

/// Logs at `level` (a LogLevel enumerator name: kTrace, kDebug, kInfo, kWarn, kError) with an fmt
/// format string and arguments. Compiled out below FAULTLOOP_LOG_MIN_LEVEL.
#define FAULTLOOP_LOG(level, ...)                                                     \
  do {                                                                                \
    if constexpr (static_cast<int>(::faultloop::LogLevel::level) >=                   \
                  ::faultloop::kLogMinLevel) {                                        \
      ::faultloop::detail::log(::faultloop::LogLevel::level, __VA_ARGS__);            \
    }                                                                                 \
  } while (0)
