// Public: Address — a socket address of the reactor in the spellings of DESIGN "Listener /
// Dialer / EventLoop": "HOST:PORT" (numeric IPv4), "[V6]:PORT" (numeric IPv6) and "unix:/path".
//
// Host names are never resolved (no DNS inside a reactor: it would block the loop); only
// numeric addresses parse. Port 0 means "let the kernel pick one" (read it back with
// Listener::local_address()). to_string() gives the same spellings, so a log line
// `listening on 127.0.0.1:8080` can be pasted back into a configuration.
//
// Unix paths are taken literally (no abstract namespace: "unix:@x" is the file "@x") and must
// fit sun_path with its terminating NUL (at most 107 bytes on Linux).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "reactor/result.h"

namespace faultloop {

/// A socket address: AF_INET, AF_INET6 or AF_UNIX, held in a sockaddr_storage with its length.
class Address {
 public:
  /// An empty address (family AF_UNSPEC, size 0); to_string() gives "".
  Address() = default;

  /// Parses "127.0.0.1:8080", "[::1]:8080" or "unix:/tmp/x.sock". On failure returns
  /// std::errc::invalid_argument and, when `why` is not null, writes a message naming the
  /// problem and quoting the input, e.g. `port 70000 out of range (0-65535) in
  /// "127.0.0.1:70000"`.
  static Result<Address> parse(std::string_view text, std::string* why = nullptr);

  /// The address of `len` bytes at `addr` (what accept4, getsockname or getpeername return).
  /// A unix address with no path (an unnamed client socket) is kept as such; an unknown
  /// family or a length beyond sockaddr_storage gives an empty Address.
  static Address from_sockaddr(const sockaddr* addr, socklen_t len);

  /// AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC for an empty address.
  int family() const { return len_ == 0 ? AF_UNSPEC : storage_.ss_family; }

  /// True for AF_INET and AF_INET6.
  bool is_ip() const { return family() == AF_INET || family() == AF_INET6; }

  /// For bind/connect: the sockaddr and its length.
  const sockaddr* data() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  /// See data().
  socklen_t size() const { return len_; }

  /// The port (host byte order); 0 for unix and empty addresses.
  uint16_t port() const;

  /// The unix path ("" for an unnamed unix socket and for non-unix addresses).
  std::string path() const;

  /// "127.0.0.1:8080", "[::1]:8080", "unix:/path"; "unix:" for an unnamed unix socket; ""
  /// for an empty address.
  std::string to_string() const;

  /// Same family, length and bytes.
  friend bool operator==(const Address& a, const Address& b);

 private:
  sockaddr_storage storage_{};
  socklen_t len_ = 0;
};

}  // namespace faultloop
