// Public: the events file (FAULTLOOP_EVENTS) — lifecycle evidence written as it happens, one
// JSON object per line, flushed per record, so out-of-process checks see what in-process
// checks see. The ledger writes its violations here; the reactor's observer writes lifecycle
// events; a summary record is written at exit.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace faultloop::faults {

/// A value of one field of an event record.
using EventValue = std::variant<int64_t, uint64_t, double, bool, std::string>;

/// Starts writing events to `path` (truncating it). Throws std::runtime_error naming the path.
/// A summary record (`"type":"summary"`, ledger and injection totals) is written when the
/// process exits normally or close_events() runs.
void open_events(const std::string& path);

/// Writes the summary record and stops writing events (no-op when no file is open).
void close_events();

/// True when an events file is open.
bool events_enabled();

/// Writes one record {"type": type, "ns": monotonic ns, fields...} and flushes it. No-op when
/// no events file is open. Thread-safe.
void emit_event(std::string_view type,
                const std::vector<std::pair<std::string_view, EventValue>>& fields);

}  // namespace faultloop::faults
