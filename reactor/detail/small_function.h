// Internal: SmallFunction, a move-only callable with inline storage (a small
// std::move_only_function, which is C++23). Callables up to kCapacity bytes that are nothrow
// move constructible live inside the object, so storing a small lambda never allocates;
// bigger ones go to the heap. Used for timer callbacks (reactor/timer_wheel.h).
#pragma once

#include <cstddef>
#include <functional>
#include <new>
#include <type_traits>
#include <utility>

namespace faultloop::detail {

template <typename Signature, std::size_t kCapacity = 48>
class SmallFunction;

/// A move-only `R(Args...)` callable; empty when default-constructed or moved from.
template <typename R, typename... Args, std::size_t kCapacity>
class SmallFunction<R(Args...), kCapacity> {
  static_assert(kCapacity >= sizeof(void*), "the heap fallback stores a pointer inline");

 public:
  /// Empty.
  SmallFunction() noexcept = default;
  /// Empty.
  SmallFunction(std::nullptr_t) noexcept {}  // NOLINT(google-explicit-constructor)

  /// Stores `f` inline when it fits (size, alignment, nothrow move), else on the heap.
  template <typename F, typename D = std::decay_t<F>,
            typename = std::enable_if_t<!std::is_same_v<D, SmallFunction> &&
                                        std::is_invocable_r_v<R, D&, Args...>>>
  SmallFunction(F&& f) {  // NOLINT(google-explicit-constructor)
    if constexpr (kFitsInline<D>) {
      ::new (static_cast<void*>(storage_)) D(std::forward<F>(f));
      ops_ = &kInlineOps<D>;
    } else {
      ::new (static_cast<void*>(storage_)) D*(new D(std::forward<F>(f)));
      ops_ = &kHeapOps<D>;
    }
  }

  /// Takes `other`'s callable; `other` becomes empty.
  SmallFunction(SmallFunction&& other) noexcept { take(other); }

  /// Destroys the current callable, then takes `other`'s.
  SmallFunction& operator=(SmallFunction&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }

  /// Move-only.
  SmallFunction(const SmallFunction&) = delete;
  /// Move-only.
  SmallFunction& operator=(const SmallFunction&) = delete;

  /// Destroys the callable.
  ~SmallFunction() { reset(); }

  /// Destroys the callable; *this becomes empty.
  void reset() noexcept {
    if (ops_ != nullptr) {
      const Ops* ops = ops_;
      ops_ = nullptr;
      ops->destroy(storage_);
    }
  }

  /// True when a callable is stored.
  explicit operator bool() const noexcept { return ops_ != nullptr; }

  /// Calls the callable (which must be there).
  R operator()(Args... args) { return ops_->invoke(storage_, std::forward<Args>(args)...); }

  /// True when a callable of type F would be stored without allocating.
  template <typename F>
  static constexpr bool kFitsInline =
      sizeof(F) <= kCapacity && alignof(F) <= alignof(std::max_align_t) &&
      std::is_nothrow_move_constructible_v<F>;

 private:
  struct Ops {
    R (*invoke)(void* storage, Args&&... args);
    void (*move_to)(void* from, void* to) noexcept;  // move-construct into `to`, destroy `from`
    void (*destroy)(void* storage) noexcept;
  };

  template <typename D>
  static constexpr Ops kInlineOps = {
      [](void* s, Args&&... args) -> R {
        return std::invoke(*std::launder(static_cast<D*>(s)), std::forward<Args>(args)...);
      },
      [](void* from, void* to) noexcept {
        D* f = std::launder(static_cast<D*>(from));
        ::new (to) D(std::move(*f));
        f->~D();
      },
      [](void* s) noexcept { std::launder(static_cast<D*>(s))->~D(); },
  };

  template <typename D>
  static constexpr Ops kHeapOps = {
      [](void* s, Args&&... args) -> R {
        return std::invoke(**std::launder(static_cast<D**>(s)), std::forward<Args>(args)...);
      },
      [](void* from, void* to) noexcept { ::new (to) D*(*std::launder(static_cast<D**>(from))); },
      [](void* s) noexcept { delete *std::launder(static_cast<D**>(s)); },
  };

  void take(SmallFunction& other) noexcept {
    if (other.ops_ != nullptr) {
      other.ops_->move_to(other.storage_, storage_);
      ops_ = other.ops_;
      other.ops_ = nullptr;
    }
  }

  alignas(std::max_align_t) unsigned char storage_[kCapacity];
  const Ops* ops_ = nullptr;
};

}  // namespace faultloop::detail
