#pragma once

// The in-process API server of the integration tests: a hand-built compound, its read model, an
// alerts database and a command sink that stands in for the pipeline.

#include <httplib.h>

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/metrics.h"
#include "gateway/api/http_server.h"
#include "tests/integration/api/api_fixture.h"
#include "tests/support/test_support.h"

namespace hgj::api::testing {

constexpr int64_t kNow = 1'790'000'000'000;
const std::string kViewer = "viewer-token-0123456789";
const std::string kOperator = "operator-token-0123456789";

inline api::HttpConfig withOperator(api::HttpConfig c) {
  c.operator_token = kOperator;
  return c;
}

inline api::HttpConfig tokenConfig() {
  api::HttpConfig c;
  c.viewer_token = kViewer;
  c.operator_token = kOperator;
  return c;
}

/// A running server over a hand-built compound, its read model and an alerts database.
struct Harness {
  hgj::test::TempDir dir;
  std::string db;
  std::shared_ptr<model::Compound> compound;
  LiveState live;
  pipeline::ReadModel read_model;
  core::MetricsRegistry metrics;
  TestCommandSink sink;
  nlohmann::json health_value =
      nlohmann::json{{"status", "ok"}, {"ingest", {{"status", "ok"}}}};
  std::unique_ptr<api::HttpServer> server;

  /// A loopback server; operator actions need kOperator (as on an installed box) unless the
  /// config says otherwise.
  explicit Harness(api::HttpConfig config = withOperator({}), bool publish = true)
      : db(dir.file("gateway.db")), compound(makeCompound()), live(compound, kNow),
        sink(db, &read_model, kNow + 1000) {
    createAlertsTable(db);
    live.fillDefaults();
    if (publish) {
      live.publish(read_model);
    }
    config.port = 0;
    config.bind = config.bind.empty() ? "127.0.0.1" : config.bind;
    server = std::make_unique<api::HttpServer>(config, read_model, sink, metrics, db,
                                               [this] { return health_value; });
    server->start();
  }

  httplib::Client client(const std::string& token = "") const {
    httplib::Client c("127.0.0.1", server->port());
    c.set_read_timeout(5, 0);
    c.set_connection_timeout(2, 0);
    if (!token.empty()) {
      c.set_bearer_token_auth(token);
    }
    return c;
  }
};

} // namespace hgj::api::testing
