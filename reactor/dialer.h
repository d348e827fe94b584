// Public: dial_connection — netpoll's DialConnection(network, address, timeout) on our Poll
// (DESIGN "Listener / Dialer / EventLoop").
//
// A non-blocking connect registered with the poll as kWritable; the first event (EPOLLOUT or
// a hang-up) ends it: SO_ERROR decides, and on success the fd becomes a Connection registered
// for reading. A timer on the poll's wheel bounds it (ErrDialTimeout). Both run on the loop
// thread, so exactly one of "connected" and "timed out" happens; the race point
// race::kConnectTimeout stretches the window between them.
#pragma once

#include <functional>
#include <memory>

#include "reactor/address.h"
#include "reactor/clock.h"
#include "reactor/connection.h"
#include "reactor/result.h"

namespace faultloop {

class Executor;
class Poll;

/// What a dial needs besides the address.
struct DialOptions {
  /// Bound on the connect; zero: none (the kernel's own SYN retries still end it).
  Duration timeout = std::chrono::seconds(5);
  /// Handlers of the new connection (may be null: a connection driven by the dialing thread).
  std::shared_ptr<const ConnectionHandlers> handlers;
  /// Limits and timeouts of the new connection.
  ConnectionOptions options;
  /// Where its handlers run; null: a process-wide InlineExecutor (handlers on the poll
  /// thread). Must outlive the connection.
  Executor* executor = nullptr;
};

/// Called once with the connected Connection (already started: on_prepare ran, it is
/// registered for reading) or the error: ErrDialTimeout, ErrPollerClosed (the poll went away
/// first), or the connect's errno (ECONNREFUSED, ENETUNREACH, ...) in system_category. Runs on
/// the poll thread (or on the calling thread when the error is immediate).
using DialCallback = std::function<void(Result<ConnectionPtr>)>;

/// Starts connecting to `address` (TCP v4/v6 or unix) on `poll`; never blocks. From any thread.
void dial(Poll& poll, const Address& address, DialOptions options, DialCallback done);

/// Connects and waits for the result (see dial()). std::errc::operation_would_block when
/// called on `poll`'s own thread (it would wait for itself).
Result<ConnectionPtr> dial_connection(Poll& poll, const Address& address,
                                      DialOptions options = {});

}  // namespace faultloop
