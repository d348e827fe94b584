// Internal: the "faultloop" error category; messages are the seed (netpoll) spellings.
#include "reactor/errc.h"

namespace faultloop {
namespace {

class FaultloopCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "faultloop"; }

  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::kConnClosed:
        return "ErrConnClosed";
      case Errc::kEof:
        return "ErrEOF";
      case Errc::kReadTimeout:
        return "ErrReadTimeout";
      case Errc::kWriteTimeout:
        return "ErrWriteTimeout";
      case Errc::kDialTimeout:
        return "ErrDialTimeout";
      case Errc::kBufferFull:
        return "ErrBufferFull";
      case Errc::kWouldBlock:
        return "ErrWouldBlock";
      case Errc::kPollerClosed:
        return "ErrPollerClosed";
      case Errc::kNotEnough:
        return "ErrNotEnough";
      case Errc::kUnsupported:
        return "ErrUnsupported";
    }
    return "faultloop error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& faultloop_category() noexcept {
  static const FaultloopCategory category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), faultloop_category()};
}

}  // namespace faultloop
