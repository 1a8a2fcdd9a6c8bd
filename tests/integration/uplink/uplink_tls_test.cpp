#include <catch2/catch.hpp>

#include <cstdlib>

#include "tests/integration/uplink/uplink_common.h"

using namespace hgj;
using namespace hgj::uplink::testing;
using nlohmann::json;
using std::chrono::seconds;

namespace {

bool run(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
}

/// A test PKI made with the openssl CLI: a CA, a server certificate for 127.0.0.1 signed by it,
/// a client certificate signed by it, and an unrelated CA.
struct Pki {
  explicit Pki(const TempDir& dir) : d(dir.path() + "/") {
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    ok = run("openssl req -x509 " + ec + " -keyout " + d + "ca.key -out " + d +
             "ca.crt -days 2 -subj /CN=hgj-test-ca") &&
         run("openssl req -x509 " + ec + " -keyout " + d + "other.key -out " + d +
             "other.crt -days 2 -subj /CN=hgj-other-ca") &&
         run("openssl req " + ec + " -keyout " + d + "server.key -out " + d +
             "server.csr -subj /CN=127.0.0.1") &&
         run("printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > " + d + "san.cnf") &&
         run("openssl x509 -req -in " + d + "server.csr -CA " + d + "ca.crt -CAkey " + d +
             "ca.key -CAcreateserial -days 2 -extfile " + d + "san.cnf -out " + d +
             "server.crt") &&
         run("openssl req " + ec + " -keyout " + d + "client.key -out " + d +
             "client.csr -subj /CN=gw-site1") &&
         run("openssl x509 -req -in " + d + "client.csr -CA " + d + "ca.crt -CAkey " + d +
             "ca.key -CAcreateserial -days 2 -out " + d + "client.crt");
  }
  std::string listener(int port, bool require_cert) const {
    return "listener " + std::to_string(port) + " 127.0.0.1\n" + "cafile " + d + "ca.crt\n" +
           "certfile " + d + "server.crt\n" + "keyfile " + d + "server.key\n" +
           (require_cert ? "require_certificate true\n" : "");
  }
  std::string d;
  bool ok = false;
};

} // namespace

TEST_CASE("uplink tls: connects with the right CA, refuses a wrong CA, presents a client cert",
          "[uplink][integration][tls]") {
  TempDir pki_dir;
  Pki pki(pki_dir);
  REQUIRE(pki.ok);
  const int tls_port = freePort();
  const int mtls_port = freePort();
  Broker broker(true, pki.listener(tls_port, false) + pki.listener(mtls_port, true));
  REQUIRE(waitFor([&] { return portAccepts(tls_port) && portAccepts(mtls_port); }));
  Recorder rec(broker.url(), {"hgj/site1/alerts"});
  const std::string tls_url = "ssl://127.0.0.1:" + std::to_string(tls_port);
  const std::string mtls_url = "mqtts://127.0.0.1:" + std::to_string(mtls_port);

  SECTION("the right CA: connects and delivers") {
    TempDir dir;
    World w;
    auto cfg = testConfig(tls_url);
    cfg.tls.ca_file = pki.d + "ca.crt";
    uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                      core::SystemClock::instance(), w.metrics);
    up.start();
    REQUIRE(waitFor([&] { return up.connected(); }));
    REQUIRE(up.enqueue(uplink::Kind::Alert, "alerts", json{{"id", 1}}));
    REQUIRE(waitFor([&] { return firstSeen(rec, "hgj/site1/alerts").size() == 1; }));
  }
  SECTION("a wrong CA: refused, said in health, nothing sent") {
    TempDir dir;
    World w;
    auto cfg = testConfig(tls_url);
    cfg.tls.ca_file = pki.d + "other.crt";
    uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                      core::SystemClock::instance(), w.metrics);
    up.start();
    REQUIRE(up.enqueue(uplink::Kind::Alert, "alerts", json{{"id", 1}}));
    REQUIRE(waitFor([&] { return w.metrics.value("hgj_uplink_connect_failures_total") >= 2; }));
    CHECK_FALSE(up.connected());
    CHECK(w.metrics.value("hgj_uplink_connects_total") == 0);
    // (An attempt can also fail earlier, on the TCP connect timeout; wait for a TLS failure.)
    CHECK(waitFor([&] {
      return up.health().find("certificate verify failed") != std::string::npos;
    }));
    CHECK(up.outboxStats().rows == 1);
    CHECK(rec.count() == 0);
  }
  SECTION("a broker that requires client certificates: with one it connects, without it fails") {
    TempDir dir;
    World w;
    auto cfg = testConfig(mtls_url);
    cfg.tls.ca_file = pki.d + "ca.crt";
    {
      uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                        core::SystemClock::instance(), w.metrics);
      up.start();
      REQUIRE(waitFor([&] { return w.metrics.value("hgj_uplink_connect_failures_total") >= 1; }));
      CHECK_FALSE(up.connected());
    }
    cfg.tls.cert_file = pki.d + "client.crt";
    cfg.tls.key_file = pki.d + "client.key";
    uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                      core::SystemClock::instance(), w.metrics);
    up.start();
    REQUIRE(waitFor([&] { return up.connected(); }));
  }
}
