#include "reactor/clock.h"

namespace faultloop {

TimePoint SteadyClock::now() const { return std::chrono::steady_clock::now(); }

const SteadyClock& SteadyClock::instance() {
  static const SteadyClock clock;
  return clock;
}

}  // namespace faultloop
