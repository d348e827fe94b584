#include "faults/trace.h"

#include <fmt/format.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "faults/detail/engine_internal.h"
#include "faults/plan.h"
#include "faults/registry.h"

namespace faultloop::faults {

namespace {

using nlohmann::json;

std::mutex g_trace_mu;
std::FILE* g_trace = nullptr;  // guarded by g_trace_mu
uint64_t g_trace_seq = 0;      // guarded by g_trace_mu
std::atomic<bool> g_trace_on{false};

void write_line_locked(const json& j) {
  const std::string line = j.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), g_trace);
  std::fflush(g_trace);  // a crash keeps every record written so far
}

json header_json(const TraceHeader& h) {
  return json{{"type", "header"},  {"version", 1},         {"scenario", h.scenario},
              {"command", h.command}, {"seed", h.seed}, {"iteration", h.iteration},
              {"plan", h.plan}};
}

json record_json(const TraceRecord& r) {
  json j{{"type", "injection"}, {"seq", r.seq},       {"ns", r.ns},
         {"thread", r.thread},  {"point", r.point},   {"fd", r.fd},
         {"role", r.role},      {"conn", r.conn},     {"conn_ordinal", r.conn_ordinal},
         {"fd_call", r.fd_call}, {"rule", r.rule},    {"action", r.action},
         {"result", r.result}};
  if (!r.error.empty()) {
    j["error"] = r.error;
  }
  return j;
}

template <class T>
T field(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) {
    throw std::runtime_error(fmt::format("{}: missing field \"{}\"", where, key));
  }
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw std::runtime_error(fmt::format("{}: field \"{}\" has the wrong type", where, key));
  }
}

}  // namespace

namespace detail {

bool trace_enabled() { return g_trace_on.load(std::memory_order_acquire); }

void trace_write(TraceRecord record) {
  std::lock_guard lock(g_trace_mu);
  if (g_trace != nullptr) {
    record.seq = ++g_trace_seq;
    write_line_locked(record_json(record));
  }
}

void trace_restart_numbering() {
  std::lock_guard lock(g_trace_mu);
  g_trace_seq = 0;
}

}  // namespace detail

void open_trace(const std::string& path, const TraceHeader& header) {
  std::FILE* f = std::fopen(path.c_str(), "we");
  if (f == nullptr) {
    throw std::runtime_error(fmt::format("FAULTLOOP_TRACE: cannot open \"{}\" for writing", path));
  }
  std::lock_guard lock(g_trace_mu);
  if (g_trace != nullptr) {
    std::fclose(g_trace);
  }
  g_trace = f;
  write_line_locked(header_json(header));
  g_trace_on.store(true, std::memory_order_release);
}

void close_trace() {
  std::lock_guard lock(g_trace_mu);
  g_trace_on.store(false, std::memory_order_release);
  if (g_trace != nullptr) {
    std::fclose(g_trace);
    g_trace = nullptr;
  }
}

Trace read_trace(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error(fmt::format("{}: cannot open the trace", path));
  }
  Trace trace;
  std::string line;
  int line_no = 0;
  bool have_header = false;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) {
      continue;
    }
    const std::string where = fmt::format("{}:{}", path, line_no);
    json j;
    try {
      j = json::parse(line);
    } catch (const json::parse_error& e) {
      throw std::runtime_error(fmt::format("{}: not a JSON object: {}", where, e.what()));
    }
    const auto type = field<std::string>(j, "type", where);
    if (!have_header) {
      if (type != "header") {
        throw std::runtime_error(fmt::format("{}: the first record must be the header", where));
      }
      trace.header.scenario = field<std::string>(j, "scenario", where);
      trace.header.command = field<std::vector<std::string>>(j, "command", where);
      trace.header.seed = field<uint64_t>(j, "seed", where);
      trace.header.iteration = field<uint64_t>(j, "iteration", where);
      trace.header.plan = field<std::string>(j, "plan", where);
      have_header = true;
      continue;
    }
    if (type != "injection") {
      throw std::runtime_error(fmt::format("{}: unknown record type \"{}\"", where, type));
    }
    TraceRecord r;
    r.seq = field<uint64_t>(j, "seq", where);
    r.ns = field<uint64_t>(j, "ns", where);
    r.thread = field<std::string>(j, "thread", where);
    r.point = field<std::string>(j, "point", where);
    r.fd = field<int>(j, "fd", where);
    r.role = field<std::string>(j, "role", where);
    r.conn = field<uint64_t>(j, "conn", where);
    r.conn_ordinal = field<uint32_t>(j, "conn_ordinal", where);
    r.fd_call = field<uint64_t>(j, "fd_call", where);
    r.rule = field<int>(j, "rule", where);
    r.action = field<std::string>(j, "action", where);
    r.result = field<int64_t>(j, "result", where);
    if (j.contains("error")) {
      r.error = field<std::string>(j, "error", where);
    }
    trace.records.push_back(std::move(r));
  }
  if (!have_header) {
    throw std::runtime_error(fmt::format("{}: empty trace (no header record)", path));
  }
  return trace;
}

void write_trace(const std::string& path, const Trace& trace) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) {
    throw std::runtime_error(fmt::format("{}: cannot open for writing", path));
  }
  out << header_json(trace.header).dump() << '\n';
  for (const TraceRecord& r : trace.records) {
    out << record_json(r).dump() << '\n';
  }
  if (!out) {
    throw std::runtime_error(fmt::format("{}: write failed", path));
  }
}

void load_replay(const Trace& trace) {
  auto table = std::make_unique<detail::ReplayTable>();
  for (const TraceRecord& r : trace.records) {
    const std::string where = fmt::format("trace record {} ({} {})", r.seq, r.point, r.action);
    const auto point = find_point(r.point);
    if (!point) {
      throw PlanError(fmt::format("{}: unknown point \"{}\"", where, r.point));
    }
    const auto role = find_role(r.role);
    if (!role) {
      throw PlanError(fmt::format("{}: unknown role \"{}\"", where, r.role));
    }
    Action action;
    try {
      action = parse_action(r.action, {*point});
    } catch (const PlanError& e) {
      throw PlanError(fmt::format("{}: {}", where, e.what()));
    }
    table->actions.insert_or_assign(detail::ReplayKey{*point, *role, r.conn_ordinal, r.fd_call},
                                    action);
  }
  detail::install_replay(std::move(table));
}

}  // namespace faultloop::faults
