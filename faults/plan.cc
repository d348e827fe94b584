// Internal: the compact plan grammar (DESIGN "Compact plan string"), the checks shared with the
// TOML form (faults/detail/plan_parse.h), the canonical spellings and the errno table.
//
// Choices the grammar leaves open, pinned here:
//  - Whitespace is ignored around the separators ';', ':', ',', '=' and '|' (and at both ends
//    of the plan); inside a value ("50%", "5ms", "+HUP", "0.25") it is an error.
//  - An entirely blank plan is empty. An empty rule anywhere else (";;", a trailing ';') is an
//    error, and so is an empty selector (a trailing ',').
//  - Probability is written UINT ["." DIGITS] (no exponent); `to_string` prints the shortest
//    such spelling that parses back to the same double, and leaves out probability=1.
#include "faults/plan.h"

#include "faults/detail/plan_parse.h"

#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <limits>
#include <string>
#include <system_error>
#include <utility>

#include <sys/epoll.h>

namespace faultloop::faults {
namespace {

using detail::quote;

static_assert(kEventBitsAllowed ==
                  (EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLRDHUP | EPOLLERR | EPOLLPRI),
              "kEventBitsAllowed must be the EPOLL* bits of <sys/epoll.h>");

struct ErrnoName {
  std::string_view name;
  int value;
};

// Every E* constant glibc defines on Linux x86_64, canonical names first (sorted by value),
// then the aliases, which errno_name never returns.
constexpr ErrnoName kErrnoNames[] = {
    {"EPERM", EPERM},
    {"ENOENT", ENOENT},
    {"ESRCH", ESRCH},
    {"EINTR", EINTR},
    {"EIO", EIO},
    {"ENXIO", ENXIO},
    {"E2BIG", E2BIG},
    {"ENOEXEC", ENOEXEC},
    {"EBADF", EBADF},
    {"ECHILD", ECHILD},
    {"EAGAIN", EAGAIN},
    {"ENOMEM", ENOMEM},
    {"EACCES", EACCES},
    {"EFAULT", EFAULT},
    {"ENOTBLK", ENOTBLK},
    {"EBUSY", EBUSY},
    {"EEXIST", EEXIST},
    {"EXDEV", EXDEV},
    {"ENODEV", ENODEV},
    {"ENOTDIR", ENOTDIR},
    {"EISDIR", EISDIR},
    {"EINVAL", EINVAL},
    {"ENFILE", ENFILE},
    {"EMFILE", EMFILE},
    {"ENOTTY", ENOTTY},
    {"ETXTBSY", ETXTBSY},
    {"EFBIG", EFBIG},
    {"ENOSPC", ENOSPC},
    {"ESPIPE", ESPIPE},
    {"EROFS", EROFS},
    {"EMLINK", EMLINK},
    {"EPIPE", EPIPE},
    {"EDOM", EDOM},
    {"ERANGE", ERANGE},
    {"EDEADLK", EDEADLK},
    {"ENAMETOOLONG", ENAMETOOLONG},
    {"ENOLCK", ENOLCK},
    {"ENOSYS", ENOSYS},
    {"ENOTEMPTY", ENOTEMPTY},
    {"ELOOP", ELOOP},
    {"ENOMSG", ENOMSG},
    {"EIDRM", EIDRM},
    {"ECHRNG", ECHRNG},
    {"EL2NSYNC", EL2NSYNC},
    {"EL3HLT", EL3HLT},
    {"EL3RST", EL3RST},
    {"ELNRNG", ELNRNG},
    {"EUNATCH", EUNATCH},
    {"ENOCSI", ENOCSI},
    {"EL2HLT", EL2HLT},
    {"EBADE", EBADE},
    {"EBADR", EBADR},
    {"EXFULL", EXFULL},
    {"ENOANO", ENOANO},
    {"EBADRQC", EBADRQC},
    {"EBADSLT", EBADSLT},
    {"EBFONT", EBFONT},
    {"ENOSTR", ENOSTR},
    {"ENODATA", ENODATA},
    {"ETIME", ETIME},
    {"ENOSR", ENOSR},
    {"ENONET", ENONET},
    {"ENOPKG", ENOPKG},
    {"EREMOTE", EREMOTE},
    {"ENOLINK", ENOLINK},
    {"EADV", EADV},
    {"ESRMNT", ESRMNT},
    {"ECOMM", ECOMM},
    {"EPROTO", EPROTO},
    {"EMULTIHOP", EMULTIHOP},
    {"EDOTDOT", EDOTDOT},
    {"EBADMSG", EBADMSG},
    {"EOVERFLOW", EOVERFLOW},
    {"ENOTUNIQ", ENOTUNIQ},
    {"EBADFD", EBADFD},
    {"EREMCHG", EREMCHG},
    {"ELIBACC", ELIBACC},
    {"ELIBBAD", ELIBBAD},
    {"ELIBSCN", ELIBSCN},
    {"ELIBMAX", ELIBMAX},
    {"ELIBEXEC", ELIBEXEC},
    {"EILSEQ", EILSEQ},
    {"ERESTART", ERESTART},
    {"ESTRPIPE", ESTRPIPE},
    {"EUSERS", EUSERS},
    {"ENOTSOCK", ENOTSOCK},
    {"EDESTADDRREQ", EDESTADDRREQ},
    {"EMSGSIZE", EMSGSIZE},
    {"EPROTOTYPE", EPROTOTYPE},
    {"ENOPROTOOPT", ENOPROTOOPT},
    {"EPROTONOSUPPORT", EPROTONOSUPPORT},
    {"ESOCKTNOSUPPORT", ESOCKTNOSUPPORT},
    {"EOPNOTSUPP", EOPNOTSUPP},
    {"EPFNOSUPPORT", EPFNOSUPPORT},
    {"EAFNOSUPPORT", EAFNOSUPPORT},
    {"EADDRINUSE", EADDRINUSE},
    {"EADDRNOTAVAIL", EADDRNOTAVAIL},
    {"ENETDOWN", ENETDOWN},
    {"ENETUNREACH", ENETUNREACH},
    {"ENETRESET", ENETRESET},
    {"ECONNABORTED", ECONNABORTED},
    {"ECONNRESET", ECONNRESET},
    {"ENOBUFS", ENOBUFS},
    {"EISCONN", EISCONN},
    {"ENOTCONN", ENOTCONN},
    {"ESHUTDOWN", ESHUTDOWN},
    {"ETOOMANYREFS", ETOOMANYREFS},
    {"ETIMEDOUT", ETIMEDOUT},
    {"ECONNREFUSED", ECONNREFUSED},
    {"EHOSTDOWN", EHOSTDOWN},
    {"EHOSTUNREACH", EHOSTUNREACH},
    {"EALREADY", EALREADY},
    {"EINPROGRESS", EINPROGRESS},
    {"ESTALE", ESTALE},
    {"EUCLEAN", EUCLEAN},
    {"ENOTNAM", ENOTNAM},
    {"ENAVAIL", ENAVAIL},
    {"EISNAM", EISNAM},
    {"EREMOTEIO", EREMOTEIO},
    {"EDQUOT", EDQUOT},
    {"ENOMEDIUM", ENOMEDIUM},
    {"EMEDIUMTYPE", EMEDIUMTYPE},
    {"ECANCELED", ECANCELED},
    {"ENOKEY", ENOKEY},
    {"EKEYEXPIRED", EKEYEXPIRED},
    {"EKEYREVOKED", EKEYREVOKED},
    {"EKEYREJECTED", EKEYREJECTED},
    {"EOWNERDEAD", EOWNERDEAD},
    {"ENOTRECOVERABLE", ENOTRECOVERABLE},
    {"ERFKILL", ERFKILL},
    {"EHWPOISON", EHWPOISON},
    {"EWOULDBLOCK", EWOULDBLOCK},
    {"EDEADLOCK", EDEADLOCK},
    {"ENOTSUP", ENOTSUP},
};
constexpr std::size_t kErrnoAliases = 3;

struct EventName {
  std::string_view name;
  uint32_t bit;
};

// In canonical order (to_string prints added then removed events in this order).
constexpr EventName kEventNames[] = {
    {"IN", EPOLLIN},       {"OUT", EPOLLOUT}, {"HUP", EPOLLHUP},
    {"RDHUP", EPOLLRDHUP}, {"ERR", EPOLLERR}, {"PRI", EPOLLPRI},
};

constexpr std::string_view kEventHint = "EV in IN OUT HUP RDHUP ERR PRI";
constexpr std::string_view kActionHint = "one of error, short, events, reset, delay, yield";

enum SelectorKey : unsigned {
  kKeyRole,
  kKeyThread,
  kKeyFd,
  kKeyConn,
  kKeyNth,
  kKeyAfter,
  kKeyEvery,
  kKeyCount,
  kKeySeed,
  kKeyProbability,
};

constexpr std::string_view kSelectorNames[] = {"role",  "thread", "fd",    "conn", "nth",
                                               "after", "every",  "count", "seed", "probability"};

constexpr std::string_view kSelectorHint =
    "one of role, thread, fd, conn, nth, after, every, count, seed, probability";

struct DurationUnit {
  std::string_view suffix;
  int64_t ns;
};

// Longest suffix that is also the end of another ("ns" vs "s") is tried first.
constexpr DurationUnit kDurationUnits[] = {
    {"ns", 1}, {"us", 1'000}, {"ms", 1'000'000}, {"s", 1'000'000'000}};

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n\v\f";
  const std::size_t first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) {
    return {};
  }
  return text.substr(first, text.find_last_not_of(kSpace) - first + 1);
}

/// The compact spelling of `key` with its value: "nth=3", or "nth" when written without "=".
std::string fragment(std::string_view key, std::optional<std::string_view> value) {
  std::string out(key);
  if (value) {
    out += '=';
    out += *value;
  }
  return out;
}

[[noreturn]] void fail(const std::string& message) {
  throw PlanError(message);
}

bool all_digits(std::string_view text) {
  if (text.empty()) {
    return false;
  }
  for (const char c : text) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

enum class NumberStatus { kOk, kMalformed, kNegative, kOverflow };

/// Parses UINT into a uint64_t.
NumberStatus parse_uint(std::string_view text, uint64_t& out) {
  if (!all_digits(text)) {
    return text.size() > 1 && text[0] == '-' && all_digits(text.substr(1))
               ? NumberStatus::kNegative
               : NumberStatus::kMalformed;
  }
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (ec == std::errc::result_out_of_range) {
    return NumberStatus::kOverflow;
  }
  return ec == std::errc() && end == text.data() + text.size() ? NumberStatus::kOk
                                                               : NumberStatus::kMalformed;
}

enum class DurationStatus { kOk, kMalformed, kOverflow };

DurationStatus parse_duration_status(std::string_view text, std::chrono::nanoseconds& out) {
  for (const DurationUnit& unit : kDurationUnits) {
    if (!text.ends_with(unit.suffix)) {
      continue;
    }
    const std::string_view digits = text.substr(0, text.size() - unit.suffix.size());
    if (!all_digits(digits)) {
      // "5ns" also ends with "s": only a digit string before the suffix is a match.
      continue;
    }
    uint64_t value = 0;
    if (parse_uint(digits, value) != NumberStatus::kOk ||
        value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / unit.ns)) {
      return DurationStatus::kOverflow;
    }
    out = std::chrono::nanoseconds(static_cast<int64_t>(value) * unit.ns);
    return DurationStatus::kOk;
  }
  return DurationStatus::kMalformed;
}

std::string format_duration(std::chrono::nanoseconds delay) {
  const int64_t ns = delay.count();
  for (auto it = std::rbegin(kDurationUnits); it != std::rend(kDurationUnits); ++it) {
    if (ns != 0 && ns % it->ns == 0) {
      return std::to_string(ns / it->ns) + std::string(it->suffix);
    }
  }
  return std::to_string(ns) + "ns";
}

bool is_wildcard(std::string_view pattern) {
  return pattern.ends_with("/*");
}

std::string legal_actions(ActionMask mask) {
  std::string out;
  for (unsigned k = 0; k <= static_cast<unsigned>(ActionKind::kYield); ++k) {
    if ((mask & action_bit(static_cast<ActionKind>(k))) != 0) {
      if (!out.empty()) {
        out += ", ";
      }
      out += action_name(static_cast<ActionKind>(k));
    }
  }
  return out.empty() ? "none" : out;
}

void check_legal_on(ActionKind kind, PointId id) {
  const PointInfo& info = point_info(id);
  if ((info.actions & action_bit(kind)) == 0) {
    fail("action " + quote(action_name(kind)) + " is not legal on point " + quote(info.name) +
         " (legal there: " + legal_actions(info.actions) + ")");
  }
}

Action parse_short(std::string_view value) {
  const std::string frag = fragment("short", value);
  Action action;
  action.kind = ActionKind::kShort;
  const bool percent = value.ends_with('%');
  const std::string_view digits = percent ? value.substr(0, value.size() - 1) : value;
  uint64_t number = 0;
  switch (parse_uint(digits, number)) {
    case NumberStatus::kOk:
      break;
    case NumberStatus::kOverflow:
      fail("out of range in " + quote(frag) +
           (percent ? " (short=P% needs 1 <= P <= 99)" : " (at most 4294967295 bytes)"));
    case NumberStatus::kMalformed:
    case NumberStatus::kNegative:
      fail("bad value in " + quote(frag) + " (short=UINT bytes or short=UINT%)");
  }
  if (percent) {
    if (number < 1 || number > 99) {
      fail("out of range in " + quote(frag) + " (short=P% needs 1 <= P <= 99)");
    }
    action.short_percent = static_cast<uint32_t>(number);
  } else {
    if (number < 1) {
      fail("out of range in " + quote(frag) + " (short=N needs N >= 1 byte)");
    }
    if (number > std::numeric_limits<uint32_t>::max()) {
      fail("out of range in " + quote(frag) + " (at most 4294967295 bytes)");
    }
    action.short_bytes = static_cast<uint32_t>(number);
  }
  return action;
}

Action parse_events(std::string_view value) {
  const std::string frag = fragment("events", value);
  Action action;
  action.kind = ActionKind::kEvents;
  std::string_view rest = value;
  while (true) {
    const std::size_t bar = rest.find('|');
    const std::string_view ev = trim(rest.substr(0, bar));
    if (ev.empty()) {
      fail("empty event in " + quote(frag) + " (events=+EV|-EV..., " + std::string(kEventHint) +
           ")");
    }
    if (ev[0] != '+' && ev[0] != '-') {
      fail("missing '+' or '-' before " + quote(ev) + " in " + quote(frag) +
           " (+EV adds, -EV removes)");
    }
    const std::string_view name = ev.substr(1);
    uint32_t bit = 0;
    for (const EventName& known : kEventNames) {
      if (known.name == name) {
        bit = known.bit;
      }
    }
    if (bit == 0) {
      fail("unknown event " + quote(name) + " in " + quote(frag) + " (" + std::string(kEventHint) +
           ")");
    }
    (ev[0] == '+' ? action.events_add : action.events_remove) |= bit;
    if ((action.events_add & action.events_remove) != 0) {
      fail("event " + quote(name) + " both added and removed in " + quote(frag));
    }
    if (bar == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(bar + 1);
  }
  return action;
}

/// Parses the probability NUMBER (UINT ["." 1*DIGIT]).
std::optional<double> parse_probability_text(std::string_view text) {
  const std::size_t dot = text.find('.');
  if (!all_digits(text.substr(0, dot)) ||
      (dot != std::string_view::npos && !all_digits(text.substr(dot + 1)))) {
    return std::nullopt;
  }
  double value = 0;
  const auto [end, ec] =
      std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::fixed);
  if (ec == std::errc::result_out_of_range) {
    // Too many digits to be exact, or a huge integer part: either way out of [0, 1] or 0.
    return text.substr(0, dot).find_first_not_of('0') == std::string_view::npos ? 0.0 : 2.0;
  }
  if (ec != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

void claim(detail::SelectorSet& seen, unsigned key, std::string_view frag) {
  const detail::SelectorSet bit = detail::SelectorSet{1} << key;
  if ((seen & bit) != 0) {
    fail("duplicate selector " + quote(kSelectorNames[key]) + " in " + quote(frag));
  }
  seen |= bit;
}

void set_probability(Rule& rule, double probability, std::string_view frag) {
  if (!(probability >= 0.0 && probability <= 1.0)) {
    fail("out of range in " + quote(frag) + " (probability must be in [0, 1])");
  }
  rule.probability = probability;
}

uint64_t parse_selector_uint(std::string_view key, std::string_view value) {
  const std::string frag = fragment(key, value);
  uint64_t number = 0;
  switch (parse_uint(value, number)) {
    case NumberStatus::kOk:
      return number;
    case NumberStatus::kNegative:
      fail("negative value in " + quote(frag) + " (" + std::string(key) + " must be >= 0)");
    case NumberStatus::kOverflow:
      fail("out of range in " + quote(frag) + " (at most 18446744073709551615)");
    case NumberStatus::kMalformed:
      break;
  }
  fail("bad number in " + quote(frag) + " (" + std::string(key) + "=UINT)");
}

Rule parse_rule(std::string_view text, std::size_t index) {
  Rule rule;
  rule.where = "rule " + std::to_string(index) + " " + quote(text);
  try {
    if (text.empty()) {
      fail("empty rule (a stray ';'?)");
    }
    const std::size_t colon = text.find(':');
    if (colon == std::string_view::npos) {
      fail("missing ':' in " + quote(text) + " (rule = point \":\" action *(\",\" selector))");
    }
    rule.point = std::string(trim(text.substr(0, colon)));
    rule.points = detail::resolve_points(rule.point);

    std::string_view rest = text.substr(colon + 1);
    std::size_t comma = rest.find(',');
    const std::string_view action_text = trim(rest.substr(0, comma));
    if (action_text.empty()) {
      fail("missing action after ':' (" + std::string(kActionHint) + ")");
    }
    const std::size_t eq = action_text.find('=');
    rule.action = detail::parse_action_parts(trim(action_text.substr(0, eq)),
                                             eq == std::string_view::npos
                                                 ? std::nullopt
                                                 : std::optional(trim(action_text.substr(eq + 1))));
    detail::restrict_to_legal_points(rule);

    detail::SelectorSet seen = 0;
    while (comma != std::string_view::npos) {
      rest.remove_prefix(comma + 1);
      comma = rest.find(',');
      const std::string_view selector = trim(rest.substr(0, comma));
      if (selector.empty()) {
        fail("empty selector (a stray ','?)");
      }
      const std::size_t key_end = selector.find('=');
      detail::apply_selector(rule, trim(selector.substr(0, key_end)),
                             key_end == std::string_view::npos
                                 ? std::nullopt
                                 : std::optional(trim(selector.substr(key_end + 1))),
                             seen);
    }
  } catch (const PlanError& problem) {
    detail::rethrow_at(rule.where, problem);
  }
  return rule;
}

}  // namespace

namespace detail {

std::string quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  out += text;
  out += '"';
  return out;
}

std::optional<ActionKind> action_from_name(std::string_view name) {
  for (unsigned k = 0; k <= static_cast<unsigned>(ActionKind::kYield); ++k) {
    if (action_name(static_cast<ActionKind>(k)) == name) {
      return static_cast<ActionKind>(k);
    }
  }
  return std::nullopt;
}

bool is_selector_key(std::string_view key) {
  for (const std::string_view known : kSelectorNames) {
    if (known == key) {
      return true;
    }
  }
  return false;
}

std::vector<PointId> resolve_points(std::string_view pattern) {
  const std::string_view base =
      is_wildcard(pattern) ? pattern.substr(0, pattern.size() - 2) : pattern;
  if (!is_valid_point_name(base)) {
    fail("bad point name " + quote(pattern) +
         " (segments of a-z 0-9 _ joined by '/', optionally ending in \"/*\")");
  }
  std::vector<PointId> ids = match_points(pattern);
  if (ids.empty()) {
    fail("unknown point " + quote(pattern) +
         (is_wildcard(pattern) ? " (no registered point below it)" : ""));
  }
  return ids;
}

Action parse_action_parts(std::string_view name, std::optional<std::string_view> value) {
  const std::optional<ActionKind> kind = action_from_name(name);
  const std::string frag = fragment(name, value);
  if (!kind) {
    fail("unknown action " + quote(name) + " (" + std::string(kActionHint) + ")");
  }
  if (*kind == ActionKind::kReset || *kind == ActionKind::kYield) {
    if (value) {
      fail("unexpected value in " + quote(frag) + " (" + std::string(name) + " takes no value)");
    }
    Action action;
    action.kind = *kind;
    return action;
  }
  if (!value || value->empty()) {
    static constexpr std::string_view kForms[] = {
        "error=ERRNO", "short=UINT or short=UINT%", "events=+EV|-EV...", "", "delay=5ms", ""};
    fail("missing value in " + quote(frag) + " (" +
         std::string(kForms[static_cast<unsigned>(*kind)]) + ")");
  }
  switch (*kind) {
    case ActionKind::kError: {
      const std::optional<int> error = errno_from_name(*value);
      if (!error) {
        fail("unknown errno " + quote(*value) + " in " + quote(frag) +
             " (a name of <cerrno> such as EAGAIN)");
      }
      Action action;
      action.kind = ActionKind::kError;
      action.error = *error;
      return action;
    }
    case ActionKind::kShort:
      return parse_short(*value);
    case ActionKind::kEvents:
      return parse_events(*value);
    case ActionKind::kDelay: {
      Action action;
      action.kind = ActionKind::kDelay;
      switch (parse_duration_status(*value, action.delay)) {
        case DurationStatus::kOk:
          return action;
        case DurationStatus::kOverflow:
          fail("out of range in " + quote(frag) + " (at most 9223372036854775807ns)");
        case DurationStatus::kMalformed:
          break;
      }
      fail("bad duration in " + quote(frag) + " (UINT followed by ns, us, ms or s)");
    }
    case ActionKind::kReset:
    case ActionKind::kYield:
      break;
  }
  fail("unknown action " + quote(name));
}

void restrict_to_legal_points(Rule& rule) {
  const ActionKind kind = rule.action.kind;
  if (!is_wildcard(rule.point)) {
    for (const PointId id : rule.points) {
      check_legal_on(kind, id);
    }
    return;
  }
  std::vector<PointId> legal;
  for (const PointId id : rule.points) {
    if ((point_info(id).actions & action_bit(kind)) != 0) {
      legal.push_back(id);
    }
  }
  if (legal.empty()) {
    fail("action " + quote(action_name(kind)) + " is not legal on any point matching " +
         quote(rule.point));
  }
  rule.points = std::move(legal);
}

void apply_selector(Rule& rule,
                    std::string_view key,
                    std::optional<std::string_view> value,
                    SelectorSet& seen) {
  const std::string frag = fragment(key, value);
  unsigned index = 0;
  while (index < std::size(kSelectorNames) && kSelectorNames[index] != key) {
    ++index;
  }
  if (index == std::size(kSelectorNames)) {
    fail("unknown selector " + quote(key) + " in " + quote(frag) + " (" +
         std::string(kSelectorHint) + ")");
  }
  claim(seen, index, frag);
  if (!value || value->empty()) {
    const std::string_view form = index == kKeyRole     ? "role=NAME|NAME..."
                                  : index == kKeyThread ? "thread=NAME"
                                                        : "KEY=NUMBER";
    fail("missing value in " + quote(frag) + " (" + std::string(form) + ")");
  }
  switch (static_cast<SelectorKey>(index)) {
    case kKeyRole: {
      std::string_view rest = *value;
      while (true) {
        const std::size_t bar = rest.find('|');
        const std::string_view name = trim(rest.substr(0, bar));
        if (!is_valid_segment(name)) {
          fail("bad role name " + quote(name) + " in " + quote(frag) + " (NAME is [a-z0-9_]+)");
        }
        const std::optional<RoleId> role = find_role(name);
        if (!role) {
          fail("unknown role " + quote(name) + " in " + quote(frag) + " (not registered)");
        }
        rule.roles.push_back(*role);
        if (bar == std::string_view::npos) {
          break;
        }
        rest.remove_prefix(bar + 1);
      }
      return;
    }
    case kKeyThread: {
      if (!is_valid_segment(*value)) {
        fail("bad thread kind name " + quote(*value) + " in " + quote(frag) +
             " (NAME is [a-z0-9_]+)");
      }
      const std::optional<ThreadKindId> thread = find_thread_kind(*value);
      if (!thread) {
        fail("unknown thread kind " + quote(*value) + " in " + quote(frag) + " (not registered)");
      }
      rule.thread = *thread;
      return;
    }
    case kKeyProbability: {
      const std::optional<double> probability = parse_probability_text(*value);
      if (!probability) {
        fail("bad number in " + quote(frag) + " (probability=P with P in [0, 1], like 0.25)");
      }
      set_probability(rule, *probability, frag);
      return;
    }
    default:
      break;
  }
  const uint64_t number = parse_selector_uint(key, *value);
  switch (static_cast<SelectorKey>(index)) {
    case kKeyFd:
      if (number > static_cast<uint64_t>(INT_MAX)) {
        fail("out of range in " + quote(frag) + " (fd must be <= 2147483647)");
      }
      rule.fd = static_cast<int>(number);
      return;
    case kKeyConn:
      rule.conn = number;
      return;
    case kKeyAfter:
      rule.after = number;
      return;
    case kKeySeed:
      rule.seed = number;
      return;
    case kKeyNth:
    case kKeyEvery:
    case kKeyCount:
      if (number == 0) {
        fail("out of range in " + quote(frag) + " (" + std::string(key) +
             (index == kKeyCount ? " must be >= 1: a rule that never fires is a mistake)"
                                 : " counts calls from 1)"));
      }
      if (index == kKeyNth) {
        rule.nth = number;
      } else if (index == kKeyEvery) {
        rule.every = number;
      } else {
        rule.count = number;
      }
      return;
    default:
      break;
  }
  fail("unknown selector " + quote(key));
}

void apply_probability(Rule& rule, double probability, SelectorSet& seen) {
  const std::string frag = fragment("probability", format_probability(probability));
  claim(seen, kKeyProbability, frag);
  set_probability(rule, probability, frag);
}

std::string format_probability(double value) {
  std::array<char, 512> buffer{};
  const auto [end, ec] =
      std::to_chars(buffer.data(), buffer.data() + buffer.size(), value, std::chars_format::fixed);
  if (ec != std::errc()) {
    return "nan";
  }
  return std::string(buffer.data(), end);
}

void rethrow_at(std::string_view where, const PlanError& problem) {
  throw PlanError(std::string(where) + ": " + problem.what());
}

}  // namespace detail

std::string Action::to_string() const {
  switch (kind) {
    case ActionKind::kError: {
      const std::string_view name = errno_name(error);
      return "error=" + (name.empty() ? std::to_string(error) : std::string(name));
    }
    case ActionKind::kShort:
      return short_percent != 0 ? "short=" + std::to_string(short_percent) + "%"
                                : "short=" + std::to_string(short_bytes);
    case ActionKind::kEvents: {
      std::string out = "events=";
      bool first = true;
      for (const char sign : {'+', '-'}) {
        const uint32_t bits = sign == '+' ? events_add : events_remove;
        for (const EventName& ev : kEventNames) {
          if ((bits & ev.bit) != 0) {
            if (!first) {
              out += '|';
            }
            first = false;
            out += sign;
            out += ev.name;
          }
        }
      }
      return out;
    }
    case ActionKind::kReset:
      return "reset";
    case ActionKind::kDelay:
      return "delay=" + format_duration(delay);
    case ActionKind::kYield:
      return "yield";
  }
  return "?";
}

std::string Rule::to_string() const {
  std::string out = point + ":" + action.to_string();
  if (!roles.empty()) {
    out += ",role=";
    for (std::size_t i = 0; i < roles.size(); ++i) {
      if (i != 0) {
        out += '|';
      }
      out += role_name(roles[i]);
    }
  }
  if (thread) {
    out += ",thread=";
    out += thread_kind_name(*thread);
  }
  const auto number = [&out](std::string_view key, uint64_t value) {
    out += ',';
    out += key;
    out += '=';
    out += std::to_string(value);
  };
  if (fd) {
    number("fd", static_cast<uint64_t>(*fd));
  }
  if (conn) {
    number("conn", *conn);
  }
  if (nth != 0) {
    number("nth", nth);
  }
  if (after != 0) {
    number("after", after);
  }
  if (every != 0) {
    number("every", every);
  }
  if (count) {
    number("count", *count);
  }
  if (seed) {
    number("seed", *seed);
  }
  if (probability != 1.0) {
    out += ",probability=";
    out += detail::format_probability(probability);
  }
  return out;
}

std::string Plan::to_string() const {
  std::string out;
  for (const Rule& rule : rules) {
    if (!out.empty()) {
      out += ';';
    }
    out += rule.to_string();
  }
  return out;
}

Plan parse_plan(std::string_view text) {
  Plan plan;
  if (trim(text).empty()) {
    return plan;
  }
  std::size_t index = 1;
  while (true) {
    const std::size_t semi = text.find(';');
    plan.rules.push_back(parse_rule(trim(text.substr(0, semi)), index++));
    if (semi == std::string_view::npos) {
      break;
    }
    text.remove_prefix(semi + 1);
  }
  return plan;
}

Action parse_action(std::string_view text, const std::vector<PointId>& points) {
  const std::string_view trimmed = trim(text);
  try {
    if (trimmed.empty()) {
      fail("missing action (" + std::string(kActionHint) + ")");
    }
    const std::size_t eq = trimmed.find('=');
    const Action action = detail::parse_action_parts(
        trim(trimmed.substr(0, eq)),
        eq == std::string_view::npos ? std::nullopt : std::optional(trim(trimmed.substr(eq + 1))));
    for (const PointId id : points) {
      check_legal_on(action.kind, id);
    }
    return action;
  } catch (const PlanError& problem) {
    detail::rethrow_at("action " + quote(trimmed), problem);
  }
}

std::optional<int> errno_from_name(std::string_view name) {
  for (const ErrnoName& entry : kErrnoNames) {
    if (entry.name == name) {
      return entry.value;
    }
  }
  return std::nullopt;
}

std::string_view errno_name(int value) {
  for (std::size_t i = 0; i + kErrnoAliases < std::size(kErrnoNames); ++i) {
    if (kErrnoNames[i].value == value) {
      return kErrnoNames[i].name;
    }
  }
  return {};
}

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  std::chrono::nanoseconds out{0};
  if (parse_duration_status(trim(text), out) != DurationStatus::kOk) {
    return std::nullopt;
  }
  return out;
}

}  // namespace faultloop::faults
