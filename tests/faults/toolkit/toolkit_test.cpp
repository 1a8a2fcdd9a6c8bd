// The fault toolkit itself (tests/support/fault_*): each tool does what the fault tests rely on.
#include <catch2/catch.hpp>

#include "tests/support/fault_broker.h"
#include "tests/support/fault_load.h"
#include "tests/support/fault_relay.h"
#include "tests/support/fault_webhook.h"
#include "tests/support/test_support.h"

#include <httplib.h>

using namespace std::chrono_literals;

TEST_CASE("fault toolkit: the load publisher sends every message once, in order, and records "
          "the broker's acknowledgements",
          "[faults][toolkit]") {
  hgj::test::Broker broker(false);
  hgj::test::TestClient sub(broker.url(), "sub");
  sub.subscribe("compound/parking/#");
  hgj::test::LoadSpec spec;
  spec.url = broker.url();
  spec.devices = {"P-B1-0001", "P-B1-0002", "P-B1-0003"};
  spec.per_device = 300;
  spec.rate = 3000;
  hgj::test::LoadPublisher load(spec);
  REQUIRE(load.waitDone(30s));
  CHECK(load.ackedTotal() == 900);
  CHECK(load.ackedSeqs(1).size() == 300);
  REQUIRE(hgj::test::waitFor([&] { return sub.count() == 900; }, 10s));
  auto msgs = sub.messages();
  CHECK(msgs[0].topic == "compound/parking/P-B1-0001/state");
  CHECK(msgs[0].payload.find("\"seq\":1}") != std::string::npos);
}

TEST_CASE("fault toolkit: the load publisher's messages acknowledged across a broker restart",
          "[faults][toolkit]") {
  hgj::test::Broker broker(true);
  hgj::test::LoadSpec spec;
  spec.url = broker.url();
  spec.devices = {"P-B1-0001", "P-B1-0002"};
  spec.per_device = 400;
  spec.rate = 400;
  hgj::test::LoadPublisher load(spec);
  REQUIRE(hgj::test::waitFor([&] { return load.ackedTotal() > 100; }, 10s));
  broker.kill();
  broker.start();
  INFO("published " << load.publishedTotal() << " acked " << load.ackedTotal());
  REQUIRE(load.waitDone(30s));
}

TEST_CASE("fault toolkit: the relay passes, swallows (half-open) and refuses", "[faults][toolkit]") {
  hgj::test::Broker broker(false);
  hgj::test::FaultRelay relay(broker.port());
  {
    hgj::test::TestClient c(relay.url(), "through-relay");
    c.publish("a/b", "x");
  }
  CHECK(relay.accepted() == 1);
  relay.setMode(hgj::test::FaultRelay::Mode::Refuse);
  CHECK(hgj::test::waitFor([&] { return !hgj::test::portOpen(relay.port()); }, 5s));
  relay.setMode(hgj::test::FaultRelay::Mode::Blackhole);
  REQUIRE(hgj::test::waitFor([&] { return hgj::test::portOpen(relay.port()); }, 5s));
  // A connection is accepted but the broker's CONNACK never comes back.
  CHECK_THROWS(hgj::test::TestClient(relay.url(), "swallowed"));
}

TEST_CASE("fault toolkit: the webhook sink answers, fails, goes down and comes back",
          "[faults][toolkit]") {
  hgj::test::WebhookSink sink;
  httplib::Client cli("127.0.0.1", sink.port());
  cli.set_connection_timeout(2s);
  auto r = cli.Post("/hook", "{\"a\":1}", "application/json");
  REQUIRE(r);
  CHECK(r->status == 200);
  sink.setMode(hgj::test::WebhookSink::Mode::Error);
  r = cli.Post("/hook", "{}", "application/json");
  REQUIRE(r);
  CHECK(r->status == 500);
  sink.setMode(hgj::test::WebhookSink::Mode::Down);
  CHECK(!cli.Post("/hook", "{}", "application/json"));
  sink.setMode(hgj::test::WebhookSink::Mode::Ok);
  r = cli.Post("/hook", "{\"b\":2}", "application/json");
  REQUIRE(r);
  CHECK(sink.received() == std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"});
}

TEST_CASE("fault toolkit: the shipped broker config runs with its users and ACL",
          "[faults][toolkit]") {
  hgj::test::ShippedBroker broker(std::vector<hgj::test::ShippedBroker::User>{
      {"hgj-gateway", "gw-secret"}, {"P-B1-0001", "dev-secret"}});
  INFO(broker.config());
  CHECK(broker.config().find("autosave_interval") != std::string::npos);
  CHECK_THROWS(hgj::test::TestClient(broker.url(), "anonymous"));
}
