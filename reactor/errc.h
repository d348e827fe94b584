// Public: faultloop's own error conditions (DESIGN "reactor/", STYLE 14 and 33).
//
// The stack reports its own conditions as std::error_code values of faultloop_category();
// message() returns the seed (netpoll) spelling, so logs can be grepped against the seeds.
// Kernel errors are never translated: they stay in std::system_category().
#pragma once

#include <string>
#include <system_error>

namespace faultloop {

/// faultloop's own error conditions. Values start at 1 (0 means "no error").
enum class Errc {
  kConnClosed = 1,  ///< "ErrConnClosed": we closed the connection (netpoll ErrConnClosed).
  kEof,             ///< "ErrEOF": the peer closed; no more input will come (netpoll ErrEOF).
  kReadTimeout,     ///< "ErrReadTimeout": a read waited longer than the read timeout.
  kWriteTimeout,    ///< "ErrWriteTimeout": a flush waited longer than the write timeout.
  kDialTimeout,     ///< "ErrDialTimeout": connect did not finish within the dial timeout.
  kBufferFull,      ///< "ErrBufferFull": a connection's input or output limit was reached.
  kWouldBlock,      ///< "ErrWouldBlock": inline executor, fewer bytes than asked (STYLE 12).
  kPollerClosed,    ///< "ErrPollerClosed": the poll loop was shut down.
  /// "ErrNotEnough": a LinkBuffer holds fewer readable bytes than asked (netpoll "link buffer
  /// next[n] not enough"). The buffer is unchanged; the Connection layer maps it to waiting.
  kNotEnough,
  /// "ErrUnsupported": the operation is not available on this object, e.g. writing to a
  /// read-only LinkBuffer made by slice() (netpoll ErrUnsupported).
  kUnsupported,
};

/// The "faultloop" error category. A function-local static: safe to use during static
/// initialisation and destruction.
const std::error_category& faultloop_category() noexcept;

/// Makes a std::error_code of faultloop_category() (found by ADL for `std::error_code ec =
/// Errc::kEof;`).
std::error_code make_error_code(Errc e) noexcept;

/// A kernel errno as an error_code: kernel errors stay in std::system_category() (STYLE 33).
inline std::error_code system_error(int err) noexcept { return {err, std::system_category()}; }

}  // namespace faultloop

/// Lets Errc convert implicitly to std::error_code.
template <>
struct std::is_error_code_enum<faultloop::Errc> : std::true_type {};
