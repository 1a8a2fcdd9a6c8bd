#include <catch2/catch.hpp>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/uplink/uplink_common.h"

using namespace hgj;
using namespace hgj::uplink::testing;
using nlohmann::json;
using std::chrono::seconds;

extern char** environ;

namespace {

/// A socat TCP relay from 127.0.0.1:port to the broker, in its own process group so that the
/// relay and its per-connection children can be frozen together (packets vanish: half-open).
class Relay {
public:
  Relay(int port, int target, const std::string& log) {
    const std::string listen = "TCP-LISTEN:" + std::to_string(port) +
                               ",bind=127.0.0.1,reuseaddr,fork";
    const std::string to = "TCP:127.0.0.1:" + std::to_string(target);
    const char* argv[] = {"socat", listen.c_str(), to.c_str(), nullptr};
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    if (::posix_spawnp(&pid_, "socat", &actions, &attr, const_cast<char**>(argv), environ) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  ~Relay() { kill(); }
  void freeze() { ::kill(-pid_, SIGSTOP); }
  void kill() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGKILL);
      ::kill(-pid_, SIGCONT);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }
  bool ok() const { return pid_ > 0; }

private:
  pid_t pid_ = -1;
};

} // namespace

TEST_CASE("uplink half-open: keepalive notices vanished packets, reconnects, loses nothing",
          "[uplink][integration]") {
  Broker broker;
  Recorder rec(broker.url(), {"hgj/site1/alerts"});
  TempDir dir;
  const int port = freePort();
  auto relay = std::make_unique<Relay>(port, broker.port(), dir.file("socat.log"));
  REQUIRE(relay->ok());
  REQUIRE(waitFor([&] { return portAccepts(port); }));
  World w;
  auto cfg = testConfig("tcp://127.0.0.1:" + std::to_string(port));
  cfg.keepalive = seconds(2);
  uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  up.start();
  REQUIRE(waitFor([&] { return up.connected(); }));
  for (int i = 1; i <= 10; ++i) {
    REQUIRE(up.enqueue(uplink::Kind::Alert, "alerts", json{{"id", i}}));
  }
  REQUIRE(waitFor([&] { return firstSeen(rec, "hgj/site1/alerts").size() == 10; }));

  relay->freeze();
  for (int i = 11; i <= 30; ++i) {
    REQUIRE(up.enqueue(uplink::Kind::Alert, "alerts", json{{"id", i}}));
  }
  // No PINGRESP: the keepalive declares the link dead (about 1.5-2 keepalives).
  REQUIRE(waitFor([&] { return !up.connected(); }, seconds(15)));
  CHECK(up.outboxStats().rows >= 20);  // (and any whose PUBACK was frozen on the way)

  relay.reset();
  relay = std::make_unique<Relay>(port, broker.port(), dir.file("socat.log"));
  REQUIRE(relay->ok());
  REQUIRE(waitFor([&] { return firstSeen(rec, "hgj/site1/alerts").size() == 30; }, seconds(20)));
  std::vector<int64_t> expected;
  for (int64_t i = 1; i <= 30; ++i) {
    expected.push_back(i);
  }
  CHECK(firstSeenField(rec, "hgj/site1/alerts", "id") == expected);
  CHECK(msgIdsIncrease(rec, "hgj/site1/alerts"));
  REQUIRE(waitFor([&] { return up.outboxStats().rows == 0; }));
  CHECK(w.metrics.value("hgj_uplink_connects_total") >= 2);
}
