// docs/reliability.md row 26: start-up failures end with one clear error line and a distinct exit
// status (docs/operations.md, troubleshooting), never a crash; and what had started is stopped
// in order (no thread outlives what it uses: the sanitizer builds run these too).
#include <csignal>
#include <fstream>
#include <sstream>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/support/test_support.h"

using namespace std::chrono_literals;

namespace {

/// Lines of the gateway's output logged at error or critical level.
std::vector<std::string> errorLines(const std::string& out) {
  std::vector<std::string> lines;
  std::istringstream in(out);
  std::string l;
  while (std::getline(in, l)) {
    if (l.find(" critical [") != std::string::npos || l.find(" error [") != std::string::npos) {
      lines.push_back(l);
    }
  }
  return lines;
}

/// Holds a TCP port on 127.0.0.1 (listening) for as long as it lives.
class PortHolder {
public:
  PortHolder() : port_(hgj::test::freePort()) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port_));
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 4) == 0);
  }
  ~PortHolder() { ::close(fd_); }
  int port() const { return port_; }

private:
  int port_;
  int fd_ = -1;
};

/// The example compound with its shed controllers on a serial line whose device is `device`.
std::string serialConfig(const hgj::test::TempDir& dir, const std::string& device) {
  std::ifstream in(hgj::test::sourcePath("conf/gateway.yaml"));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string yaml = ss.str();
  const std::string conf = hgj::test::sourcePath("conf/");
  for (const char* f : {"grids.yaml", "devices.yaml", "rules.yaml", "alerts.yaml"}) {
    auto at = yaml.find(std::string(": ") + f);
    REQUIRE(at != std::string::npos);
    yaml.replace(at, 2 + std::string(f).size(), std::string(": ") + conf + f);
  }
  auto at = yaml.find("profiles: profiles");
  REQUIRE(at != std::string::npos);
  yaml.replace(at, 18, "profiles: " + conf + "profiles");
  const std::string tcp = "{id: shed-bus, type: tcp, host: 127.0.0.1, port: 15021}";
  at = yaml.find(tcp);
  REQUIRE(at != std::string::npos);
  yaml.replace(at, tcp.size(), "{id: shed-bus, type: rtu, device: " + device + "}");
  std::string path = dir.file("gateway.yaml");
  std::ofstream(path) << yaml;
  return path;
}

} // namespace

TEST_CASE("faults startup: the HTTP port taken: one error line, exit 3, nothing actuated",
          "[faults][startup]") {
  hgj::test::Broker broker(false);
  hgj::test::TempDir dir;
  PortHolder taken;
  auto gw = hgj::test::spawnGateway(broker.url(), dir.file("hgj.db"), dir.file("gw.log"),
                                    {"http.port=" + std::to_string(taken.port())});
  const int status = gw->wait(30s);
  const std::string out = gw->output();
  INFO(out);
  CHECK(status == 3);  // was 139: a crash under the running pipeline thread
  auto errors = errorLines(out);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].find("cannot listen on 127.0.0.1:" + std::to_string(taken.port())) !=
        std::string::npos);
  CHECK(errors[0].find("Address already in use") != std::string::npos);
  // The port is taken before the pipeline runs its first rule.
  CHECK(out.find("actuation") == std::string::npos);
  CHECK(gw->notify().count("READY=1") == 0);
}

TEST_CASE("faults startup: the database cannot be created: one error line, exit 4",
          "[faults][startup]") {
  hgj::test::Broker broker(false);
  hgj::test::TempDir dir;
  // A regular file where the database's directory should be (root can write anywhere else).
  std::ofstream(dir.file("not-a-dir")) << "x";
  int run = 0;
  for (const std::string& path : {dir.file("not-a-dir/hgj.db"), dir.path()}) {
    INFO("storage.path=" << path);
    auto gw = hgj::test::spawnGateway(broker.url(), path,
                                      dir.file("gw" + std::to_string(++run) + ".log"));
    const int status = gw->wait(30s);
    const std::string out = gw->output();
    INFO(out);
    CHECK(status == 4);
    auto errors = errorLines(out);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("storage: " + path) != std::string::npos);
    CHECK(errors[0].find("storage.path") != std::string::npos);
  }
}

TEST_CASE("faults startup: a bad broker URL: one configuration line, exit 2, and a broker that is "
          "down is retried, not fatal",
          "[faults][startup]") {
  hgj::test::TempDir dir;
  int run = 0;
  for (const std::string& url :
       {std::string("foo://127.0.0.1:1883"), std::string("tcp://127.0.0.1:99999"),
        std::string("tcp://"), std::string("tcp://127.0.0.1:port")}) {
    INFO("mqtt.url=" << url);
    auto gw = hgj::test::spawnGateway(url, dir.file("hgj.db"),
                                      dir.file("gw" + std::to_string(++run) + ".log"));
    const int status = gw->wait(30s);
    const std::string out = gw->output();
    INFO(out);
    CHECK(status == 2);
    CHECK(out.find("--set:1: mqtt.url: expected tcp://HOST:PORT") != std::string::npos);
    CHECK(out.find("1 configuration problem(s)") != std::string::npos);
  }
  // A well-formed URL whose broker is down (or whose name does not resolve yet at boot) is the
  // broker's outage, not a configuration error: the gateway starts and keeps retrying.
  auto gw = hgj::test::spawnGateway("tcp://127.0.0.1:" + std::to_string(hgj::test::freePort()),
                                    dir.file("hgj.db"), dir.file("down.log"));
  gw->waitReady(30s, false);
  auto [code, body] = gw->get("/healthz");
  CHECK(code == 200);
  CHECK(body.find("\"status\":\"degraded\"") != std::string::npos);
  gw->signal(SIGTERM);
  CHECK(gw->wait(30s) == 0);
}

TEST_CASE("faults startup: a missing serial port: one error line, exit 5", "[faults][startup]") {
  hgj::test::Broker broker(false);
  hgj::test::TempDir dir;
  const std::string config = serialConfig(dir, "/dev/ttyHGJ-missing");
  auto gw = hgj::test::spawnGateway(broker.url(), dir.file("hgj.db"), dir.file("gw.log"),
                                    {"modbus.enabled=true"}, config);
  const int status = gw->wait(30s);
  const std::string out = gw->output();
  INFO(out);
  CHECK(status == 5);
  auto errors = errorLines(out);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].find("modbus line shed-bus: serial port /dev/ttyHGJ-missing") !=
        std::string::npos);
  // The line of the shed-bus entry in the shipped file (counted, not written in: the example
  // file grows).
  int line = 0;
  {
    std::ifstream in(hgj::test::sourcePath("conf/gateway.yaml"));
    std::string l;
    for (int n = 1; std::getline(in, l); ++n) {
      if (l.find("{id: shed-bus,") != std::string::npos) {
        line = n;
      }
    }
  }
  REQUIRE(line > 0);
  CHECK(errors[0].find("gateway.yaml:" + std::to_string(line)) != std::string::npos);
  // With Modbus disabled the same configuration starts (commissioning MQTT devices first).
  auto ok = hgj::test::startGateway(broker.url(), dir.file("hgj2.db"), dir.file("gw2.log"), {},
                                    config);
  ok->signal(SIGTERM);
  CHECK(ok->wait(30s) == 0);
}

TEST_CASE("faults startup: SIGTERM right after start stops cleanly", "[faults][startup]") {
  hgj::test::Broker broker(false);
  hgj::test::TempDir dir;
  for (int i = 0; i < 3; ++i) {
    auto gw = hgj::test::spawnGateway(broker.url(), dir.file("hgj.db"),
                                      dir.file("gw" + std::to_string(i) + ".log"));
    // Whatever stage it is in: signals are blocked until the main loop waits for them, so an
    // early SIGTERM is taken once start() is done.
    REQUIRE(gw->notify().waitFor("READY=1", 30s));
    gw->signal(SIGTERM);
    INFO(gw->output());
    CHECK(gw->wait(30s) == 0);
  }
}
