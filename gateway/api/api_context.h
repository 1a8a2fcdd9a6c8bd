#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/log.h"
#include "core/metrics.h"
#include "gateway/api/alert_store.h"
#include "gateway/api/history_store.h"
#include "gateway/api/http_config.h"
#include "gateway/api/http_message.h"
#include "gateway/pipeline/commands.h"
#include "gateway/pipeline/read_model.h"

namespace hgj::api {

constexpr size_t kMaxIdLength = 128;
constexpr size_t kMaxNameLength = 64;

/// What every handler may use: the live state, the alerts store, the command queue, metrics and
/// the shared answers (no snapshot yet, body checks, running a command). Built once by
/// HttpServer; its members are thread-safe, so handlers run on any worker thread.
struct ApiContext {
  ApiContext(const HttpConfig& c, const pipeline::ReadModel& rm, pipeline::CommandSink& cs,
             core::MetricsRegistry& m, std::shared_ptr<AlertStore> a,
             std::function<nlohmann::json()> h)
      : config(c), read_model(rm), commands(cs), metrics(m), alerts(std::move(a)),
        health(std::move(h)) {}

  const HttpConfig config;
  const pipeline::ReadModel& read_model;
  pipeline::CommandSink& commands;
  core::MetricsRegistry& metrics;
  std::shared_ptr<AlertStore> alerts;
  std::function<nlohmann::json()> health;
  /// The history tables (set by HttpServer; null in tests that need none: 503).
  std::shared_ptr<HistoryStore> history;
  /// Open event streams and connections, for /healthz (set by HttpServer).
  std::function<int()> sse_clients = [] { return 0; };
  /// Remote configuration (docs/remote-config.md), set by the wiring; unset: 404.
  std::function<nlohmann::json()> config_versions;
  std::function<std::pair<int, nlohmann::json>(const std::string& by, const std::string& identity)>
      config_rollback;
  std::atomic<uint64_t> next_command{0};
  core::RateLimitedLog error_log;

  /// The current snapshot, or nullptr after answering 503 (the pipeline has published none).
  std::shared_ptr<const pipeline::Snapshot> snapshot(Response& res) const;
  /// The body as a JSON object with no field outside `fields`, or nullopt after answering 415 /
  /// 400 (an unknown field is named, with the ones expected).
  std::optional<Json> jsonBody(const Request& req, Response& res,
                               std::initializer_list<std::string_view> fields) const;
  /// The operator's name in the body's "by" (1..64 printable characters): `fallback` when the
  /// body has none and a fallback is given, else nullopt after answering 400.
  static std::optional<std::string> operatorName(const Json& body, Response& res,
                                                 const char* fallback = nullptr);
  /// Submits `cmd`, waits up to config.command_timeout and answers with the result (`extra`
  /// merged into a success). Blocks the calling worker thread.
  void runCommand(pipeline::Command cmd, Response& res, const Json& extra);
  /// A fresh command id ("api-N") for a command from this API.
  std::string commandId() { return "api-" + std::to_string(++next_command); }
  /// A command from this API: a fresh id, origin "api", the operator's claimed name `by`, and
  /// for the audit trail the identity the request authenticated as ("api:<role>").
  pipeline::Command command(pipeline::Command::Kind kind, const Request& req, std::string by);
};

} // namespace hgj::api
