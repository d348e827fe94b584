// Public: Result<T>, a small expected-like return type (STYLE 32; std::expected is C++23).
//
// A Result holds either a T or a non-zero std::error_code. It is [[nodiscard]]. Asking a
// Result that holds an error for its value is a programming error: value(), operator* and
// operator-> throw std::logic_error naming the error.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace faultloop {

namespace detail {
[[noreturn]] inline void throw_bad_result_access(const std::error_code& ec) {
  throw std::logic_error("faultloop::Result: value() of an error: " + ec.message());
}
inline std::error_code checked_error(std::error_code ec) {
  if (!ec) {
    throw std::logic_error("faultloop::Result: constructed from an empty error_code");
  }
  return ec;
}
}  // namespace detail

/// Holds a T (success) or a non-zero std::error_code (failure).
template <class T>
class [[nodiscard]] Result {
 public:
  static_assert(!std::is_reference_v<T>, "Result<T&> is not supported");

  /// Success holding `value`.
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT implicit
  /// Failure; `ec` must be non-zero (std::logic_error otherwise).
  Result(std::error_code ec) : v_(std::in_place_index<1>, detail::checked_error(ec)) {}  // NOLINT
  /// Failure from an error enum (faultloop::Errc, std::errc via make_error_code, ...).
  template <class E>
    requires std::is_error_code_enum_v<E>
  Result(E e) : Result(std::error_code(make_error_code(e))) {}  // NOLINT implicit

  /// True when holding a value.
  bool ok() const noexcept { return v_.index() == 0; }
  /// Same as ok().
  explicit operator bool() const noexcept { return ok(); }

  /// The value; std::logic_error when holding an error.
  T& value() & {
    check();
    return std::get<0>(v_);
  }
  /// The value; std::logic_error when holding an error.
  const T& value() const& {
    check();
    return std::get<0>(v_);
  }
  /// The value, moved out; std::logic_error when holding an error.
  T&& value() && {
    check();
    return std::get<0>(std::move(v_));
  }
  /// The error; an empty std::error_code when holding a value.
  std::error_code error() const noexcept { return ok() ? std::error_code{} : std::get<1>(v_); }

  /// value().
  T& operator*() & { return value(); }
  /// value().
  const T& operator*() const& { return value(); }
  /// value(), moved out.
  T&& operator*() && { return std::move(*this).value(); }
  /// &value().
  T* operator->() { return &value(); }
  /// &value().
  const T* operator->() const { return &value(); }

 private:
  void check() const {
    if (!ok()) {
      detail::throw_bad_result_access(std::get<1>(v_));
    }
  }

  std::variant<T, std::error_code> v_;
};

/// Success or a non-zero std::error_code, with no value.
template <>
class [[nodiscard]] Result<void> {
 public:
  /// Success.
  Result() noexcept = default;
  /// Failure; `ec` must be non-zero (std::logic_error otherwise).
  Result(std::error_code ec) : ec_(detail::checked_error(ec)) {}  // NOLINT implicit
  /// Failure from an error enum.
  template <class E>
    requires std::is_error_code_enum_v<E>
  Result(E e) : Result(std::error_code(make_error_code(e))) {}  // NOLINT implicit

  /// True on success.
  bool ok() const noexcept { return !ec_; }
  /// Same as ok().
  explicit operator bool() const noexcept { return ok(); }
  /// Nothing on success; std::logic_error on failure.
  void value() const {
    if (ec_) {
      detail::throw_bad_result_access(ec_);
    }
  }
  /// The error; empty on success.
  std::error_code error() const noexcept { return ec_; }

 private:
  std::error_code ec_;
};

}  // namespace faultloop
