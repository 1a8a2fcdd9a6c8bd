// `mqtt.client: paho` over TLS (ssl://, mqtt.tls) to a mosquitto TLS listener with a test PKI.
#include <cstdlib>

#include <catch2/catch.hpp>

#include "tests/integration/ingest/ingest_rig.h"
#include "tests/support/scripted_broker.h"

using namespace std::chrono_literals;
using hgj::test::waitFor;
using hgj::test::ingest::clientConfig;
using hgj::test::ingest::parkingPayload;
using hgj::test::ingest::Rig;

namespace {

bool sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

/// A CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA (openssl CLI).
bool makePki(const std::string& d) {
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2";
  return sh("openssl req -x509 " + ec + " -keyout " + d + "/ca.key -out " + d +
            "/ca.crt -subj /CN=hgj-ingest-ca") &&
         sh("openssl req -x509 " + ec + " -keyout " + d + "/other.key -out " + d +
            "/other.crt -subj /CN=hgj-other-ca") &&
         sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + d +
            "/server.key -out " + d + "/server.csr -subj /CN=127.0.0.1") &&
         sh("printf 'subjectAltName=IP:127.0.0.1\\n' > " + d + "/san.cnf") &&
         sh("openssl x509 -req -in " + d + "/server.csr -CA " + d + "/ca.crt -CAkey " + d +
            "/ca.key -CAcreateserial -days 2 -extfile " + d + "/san.cnf -out " + d +
            "/server.crt");
}

} // namespace

TEST_CASE("paho ingest: ssl:// with the broker's CA delivers, with another CA it stays "
          "disconnected and says why",
          "[integration][ingest][mqtt][tls]") {
  hgj::test::TempDir pki;
  REQUIRE(makePki(pki.path()));
  const int tls_port = hgj::test::freePort();
  hgj::test::Broker broker(false, "listener " + std::to_string(tls_port) + " 127.0.0.1\ncafile " +
                                      pki.file("ca.crt") + "\ncertfile " +
                                      pki.file("server.crt") + "\nkeyfile " +
                                      pki.file("server.key") + "\n");
  REQUIRE(waitFor([&] { return hgj::test::portOpen(tls_port); }));
  auto cfg = clientConfig("ssl://127.0.0.1:" + std::to_string(tls_port), "gw-tls");
  cfg.client = hgj::drivers::mqtt::MqttClient::Paho;
  SECTION("the right CA") {
    cfg.tls.ca_file = pki.file("ca.crt");
    Rig rig(cfg);
    REQUIRE(rig.subscribed());
    REQUIRE(hgj::test::rawPublish(broker.port(), "compound/parking/P-B1-0001/state",
                                  {parkingPayload(1)}));
    REQUIRE(waitFor([&] { return rig.sink.count() == 1; }));
    CHECK(rig.sink.texts()[0].second == parkingPayload(1));
  }
  SECTION("another CA") {
    cfg.tls.ca_file = pki.file("other.crt");
    Rig rig(cfg);
    REQUIRE(waitFor([&] { return rig.client->health() != "disconnected from " + cfg.url; }));
    CHECK_FALSE(rig.client->connected());
    CHECK(rig.client->health().rfind("disconnected from ssl://", 0) == 0);
  }
}
