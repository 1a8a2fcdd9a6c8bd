// Fuzzes everything of ours that an HTTP client's bytes reach before and inside a handler: the
// request reader (Beast's framing, then our decoded path, query and lower-case headers), the
// access rules (Host, Origin, Authorization, access_token) under three configurations, the
// router and its path captures, query parameters, and the handlers of the routes that take
// client input (JSON bodies of acks and writes, filters, event-stream positions) over a small
// hand-built compound. The input is raw request bytes, fed in two pieces split at a point the
// input chooses.
#include <cstddef>
#include <cstdint>
#include <future>
#include <string>
#include <string_view>

#include "core/metrics.h"
#include "gateway/api/api_context.h"
#include "gateway/api/auth.h"
#include "gateway/api/event_feed.h"
#include "gateway/api/handlers.h"
#include "gateway/api/http_listener.h"
#include "gateway/api/request_reader.h"
#include "gateway/api/routes.h"
#include "tests/integration/api/api_fixture.h"

namespace {

using namespace hgj;

// Answers every command at once, as a pipeline that refuses it would (no database write).
class RefusingSink final : public pipeline::CommandSink {
public:
  std::future<pipeline::CommandResult> submit(pipeline::Command) override {
    std::promise<pipeline::CommandResult> p;
    p.set_value(pipeline::CommandResult{false, 409, "refused by the fuzz target"});
    return p.get_future();
  }
};

struct World {
  pipeline::ReadModel read_model;
  core::MetricsRegistry metrics;
  RefusingSink sink;
  api::HttpConfig open_config;
  api::HttpConfig token_config;
  api::HttpConfig lan_config;
  api::AccessPolicy open{open_config};
  api::AccessPolicy tokens{[] {
    api::HttpConfig c;
    c.viewer_token = "viewer-token-0123456789";
    c.operator_token = "operator-token-0123456789";
    c.cors_origins = {"https://pm.example.com"};
    return c;
  }()};
  api::AccessPolicy lan{[] {
    api::HttpConfig c;
    c.bind = "0.0.0.0";
    c.viewer_token = "viewer-token-0123456789";
    c.operator_token = "operator-token-0123456789";
    c.allowed_hosts = {"gw.local"};
    return c;
  }()};
  // No file: the alert queries fail fast with an error, which the handler answers with 503.
  api::ApiContext ctx{open_config, read_model, sink, metrics,
                      std::make_shared<api::AlertStore>("/nonexistent/hgj-fuzz.db"), nullptr};
  api::HttpListener listener{open_config, metrics, [](api::Request, api::Responder) {},
                             [](int) {}};
  api::EventFeed feed{read_model, listener, std::chrono::milliseconds(10000)};

  World() {
    auto compound = api::testing::makeCompound();
    api::testing::LiveState live(compound, 1'790'000'000'000);
    live.fillDefaults();
    live.publish(read_model);
    read_model.pushEvent("spaces", R"(["P-B1-0001","nope",3])");
    read_model.pushEvent("alert", R"({"id":1})");
  }
};

World& world() {
  static World w;
  return w;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = world();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t split = size == 0 ? 0 : static_cast<size_t>(data[0]) % (size + 1);

  api::RequestReader reader(2048, 4096);
  std::string pending(input.substr(0, split));
  auto p = reader.feed(pending);
  pending.erase(0, p.consumed);
  if (p.error_status == 0 && !reader.done()) {
    pending.append(input.substr(split));
    p = reader.feed(pending);
  }
  if (p.error_status != 0 || !reader.done()) {
    return 0;
  }
  (void)reader.keepAlive();
  std::string error;
  auto parsed = reader.take(&error);
  if (!parsed) {
    return 0;
  }
  api::Request& req = *parsed;
  req.peer = "127.0.0.1";

  for (const api::AccessPolicy* policy : {&w.open, &w.tokens, &w.lan}) {
    api::Admission a = policy->admit(req);
    (void)a;
  }
  (void)api::hostWithoutPort(req.header("host"));
  (void)api::bearerToken(req.header("authorization"));
  for (const char* name : {"level", "zone", "state", "limit", "online", "after", "access_token"}) {
    (void)req.param(name);
  }

  api::RouteMatch m = api::matchRoute(req.method, req.path);
  if (m.route == nullptr) {
    return 0;
  }
  req.params = std::move(m.params);
  req.role = api::Role::Operator;
  api::Response res;
  if (m.route->run_on == api::RunOn::EventStream) {
    res = w.feed.open(req);
  } else if (m.route->handler != api::getMetrics) {
    m.route->handler(w.ctx, req, res);
  }
  if (res.status < 100 || res.status > 599) {
    __builtin_trap(); // every handler answers with a real status
  }
  (void)api::serializeHead(res, true, req.method == "HEAD");
  return 0;
}
