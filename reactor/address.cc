#include "reactor/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <fmt/core.h>

#include <charconv>
#include <cstddef>
#include <cstring>

namespace faultloop {

namespace {

constexpr std::string_view kUnixPrefix = "unix:";
// sun_path holds the path and its terminating NUL.
constexpr std::size_t kMaxUnixPath = sizeof(sockaddr_un::sun_path) - 1;

Result<Address> fail(std::string* why, std::string message) {
  if (why != nullptr) {
    *why = std::move(message);
  }
  return std::make_error_code(std::errc::invalid_argument);
}

// Parses the decimal port of `text` (the part after the last ':'); `whole` is the input, for
// the message.
bool parse_port(std::string_view port, std::string_view whole, uint16_t* out, std::string* msg) {
  if (port.empty()) {
    *msg = fmt::format("missing port after ':' in \"{}\" (use 0 to pick one)", whole);
    return false;
  }
  for (char c : port) {
    if (c < '0' || c > '9') {
      *msg = fmt::format("port \"{}\" is not a decimal number in \"{}\"", port, whole);
      return false;
    }
  }
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    *msg = fmt::format("port {} out of range (0-65535) in \"{}\"", port, whole);
    return false;
  }
  *out = static_cast<uint16_t>(value);
  return true;
}

}  // namespace

Result<Address> Address::parse(std::string_view text, std::string* why) {
  Address a;
  if (text.empty()) {
    return fail(why, "empty address (expected HOST:PORT, [V6]:PORT or unix:/path)");
  }
  if (text.substr(0, kUnixPrefix.size()) == kUnixPrefix) {
    const std::string_view path = text.substr(kUnixPrefix.size());
    if (path.empty()) {
      return fail(why, fmt::format("empty unix path in \"{}\"", text));
    }
    if (path.size() > kMaxUnixPath) {
      return fail(why, fmt::format("unix path of {} bytes is longer than {} in \"{}\"",
                                   path.size(), kMaxUnixPath, text));
    }
    if (const std::size_t nul = path.find('\0'); nul != std::string_view::npos) {
      // Not quoted: the NUL would cut the message short wherever it is printed.
      return fail(why, fmt::format("unix path contains a NUL byte at offset {}", nul));
    }
    auto* un = reinterpret_cast<sockaddr_un*>(&a.storage_);
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, path.data(), path.size());
    un->sun_path[path.size()] = '\0';
    a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    return a;
  }

  std::string msg;
  uint16_t port = 0;
  if (text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return fail(why, fmt::format("missing ']' after the IPv6 address in \"{}\"", text));
    }
    const std::string host(text.substr(1, close - 1));
    const std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      return fail(why, fmt::format("missing ':PORT' after \"[{}]\" in \"{}\"", host, text));
    }
    if (!parse_port(rest.substr(1), text, &port, &msg)) {
      return fail(why, std::move(msg));
    }
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
    if (host.empty() || ::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) != 1) {
      return fail(why, fmt::format("\"{}\" is not a numeric IPv6 address in \"{}\"", host, text));
    }
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    a.len_ = sizeof(sockaddr_in6);
    return a;
  }

  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return fail(why, fmt::format("missing ':PORT' in \"{}\" (expected HOST:PORT, [V6]:PORT or "
                                 "unix:/path)",
                                 text));
  }
  const std::string host(text.substr(0, colon));
  if (host.find(':') != std::string::npos) {
    return fail(why, fmt::format("IPv6 address without brackets in \"{}\" (write [V6]:PORT)",
                                 text));
  }
  if (!parse_port(text.substr(colon + 1), text, &port, &msg)) {
    return fail(why, std::move(msg));
  }
  auto* in4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
  if (host.empty()) {
    return fail(why, fmt::format("missing host before ':' in \"{}\"", text));
  }
  if (::inet_pton(AF_INET, host.c_str(), &in4->sin_addr) != 1) {
    return fail(why, fmt::format("\"{}\" is not a numeric IPv4 address in \"{}\" (names are not "
                                 "resolved)",
                                 host, text));
  }
  in4->sin_family = AF_INET;
  in4->sin_port = htons(port);
  a.len_ = sizeof(sockaddr_in);
  return a;
}

Address Address::from_sockaddr(const sockaddr* addr, socklen_t len) {
  Address a;
  if (addr == nullptr || len < static_cast<socklen_t>(sizeof(sa_family_t)) ||
      len > static_cast<socklen_t>(sizeof(sockaddr_storage))) {
    return a;
  }
  switch (addr->sa_family) {
    case AF_INET:
      if (len < static_cast<socklen_t>(sizeof(sockaddr_in))) {
        return a;
      }
      break;
    case AF_INET6:
      if (len < static_cast<socklen_t>(sizeof(sockaddr_in6))) {
        return a;
      }
      break;
    case AF_UNIX:
      break;
    default:
      return a;
  }
  std::memcpy(&a.storage_, addr, len);
  a.len_ = len;
  return a;
}

uint16_t Address::port() const {
  switch (family()) {
    case AF_INET:
      return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    case AF_INET6:
      return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    default:
      return 0;
  }
}

std::string Address::path() const {
  if (family() != AF_UNIX) {
    return {};
  }
  const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
  const std::size_t offset = offsetof(sockaddr_un, sun_path);
  if (len_ <= offset) {
    return {};  // unnamed
  }
  const std::size_t max = len_ - offset;
  return std::string(un->sun_path, strnlen(un->sun_path, max));
}

std::string Address::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  switch (family()) {
    case AF_INET:
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf,
                  sizeof buf);
      return fmt::format("{}:{}", buf, port());
    case AF_INET6:
      ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf,
                  sizeof buf);
      return fmt::format("[{}]:{}", buf, port());
    case AF_UNIX:
      return std::string(kUnixPrefix) + path();
    default:
      return {};
  }
}

bool operator==(const Address& a, const Address& b) {
  return a.len_ == b.len_ && std::memcmp(&a.storage_, &b.storage_, a.len_) == 0;
}

}  // namespace faultloop
