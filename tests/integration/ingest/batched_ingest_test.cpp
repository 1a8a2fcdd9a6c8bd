// The batched MQTT client (mqtt.client: batched) on its own, with a sink standing in for the
// pipeline: acks only for what the sink took, messages cut across reads, oversized messages,
// commands, and brokers that stop answering or refuse a subscription (a scripted broker).
#include <atomic>
#include <set>
#include <thread>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/integration/ingest/ingest_rig.h"

using namespace std::chrono_literals;
using hgj::test::ingest::clientConfig;
using hgj::test::ingest::exampleConfig;
using hgj::test::ingest::parkingPayload;
using hgj::test::ingest::Rig;

namespace {

/// A scripted broker on a loopback port: accepts, answers CONNECT with CONNACK and SUBSCRIBE
/// with a SUBACK of `suback_code`, and then says nothing (no PINGRESP), like a broker behind a
/// dead link.
class SilentBroker {
public:
  explicit SilentBroker(uint8_t suback_code = 1) : code_(suback_code) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    REQUIRE(::listen(fd_, 8) == 0);
    thread_ = std::thread([this] { run(); });
  }
  ~SilentBroker() {
    stop_ = true;
    thread_.join();
    for (int c : conns_) {
      ::close(c);
    }
    ::close(fd_);
  }
  std::string url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_; }
  int pingsSeen() const { return pings_; }

private:
  void run() {
    while (!stop_) {
      std::vector<pollfd> fds{{fd_, POLLIN, 0}};
      for (int c : conns_) {
        fds.push_back({c, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 20) <= 0) {
        continue;
      }
      if (fds[0].revents & POLLIN) {
        conns_.push_back(::accept(fd_, nullptr, nullptr));
        ++accepted_;
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if ((fds[i].revents & (POLLIN | POLLHUP)) == 0) {
          continue;
        }
        uint8_t buf[4096];
        ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        for (ssize_t k = 0; k + 1 < n;) {
          uint8_t type = buf[k] >> 4;
          size_t len = buf[k + 1];  // the client's CONNECT and SUBSCRIBE here are short
          if (type == 1) {
            const uint8_t connack[] = {0x20, 2, 0, 0};
            (void)!::write(fds[i].fd, connack, sizeof connack);
          } else if (type == 8) {
            const uint8_t suback[] = {0x90, 3, buf[k + 2], buf[k + 3], code_};
            (void)!::write(fds[i].fd, suback, sizeof suback);
          } else if (type == 12) {
            ++pings_;
          }
          k += static_cast<ssize_t>(2 + len);
        }
      }
    }
  }

  uint8_t code_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::vector<int> conns_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> pings_{0};
};

} // namespace

TEST_CASE("batched ingest: only what the pipeline took is acked, the rest comes back",
          "[integration][ingest][mqtt]") {
  hgj::test::Broker broker(false);
  std::set<std::string> first;
  {
    Rig a(clientConfig(broker.url(), "gw-ack"));
    REQUIRE(a.subscribed());
    a.sink.setLimit(10);  // a full queue after ten messages
    hgj::test::TestClient pub(broker.url());
    for (int i = 1; i <= 50; ++i) {
      pub.publish("compound/parking/P-B1-0001/state", parkingPayload(i));
    }
    REQUIRE(hgj::test::waitFor([&] { return a.sink.count() == 10; }));
    for (const auto& [topic, payload] : a.sink.texts()) {
      first.insert(payload);
    }
  }  // the client stops while blocked on the full queue, with nothing of the rest acked
  Rig b(clientConfig(broker.url(), "gw-ack"));
  REQUIRE(hgj::test::waitFor([&] {
    std::set<std::string> seen;
    for (const auto& [topic, payload] : b.sink.texts()) {
      seen.insert(payload);
    }
    for (int i = 11; i <= 50; ++i) {
      if (seen.count(parkingPayload(i)) == 0) {
        return false;
      }
    }
    return true;
  }));
  CHECK(first.size() == 10);
}

TEST_CASE("batched ingest: thousands of messages cut across reads arrive whole and in order",
          "[integration][ingest][mqtt]") {
  hgj::test::Broker broker(false);
  Rig rig(clientConfig(broker.url(), "gw-order"));
  REQUIRE(rig.subscribed());
  hgj::test::TestClient pub(broker.url());
  constexpr int kCount = 3000;
  std::vector<std::string> sent;
  for (int i = 0; i < kCount; ++i) {
    // Sizes from a few bytes to 3 KB, so packets straddle the 64 KiB reads at every offset.
    std::string p = std::to_string(i) + ":" + std::string(static_cast<size_t>(i * 7919 % 3000), 'a' + i % 26);
    pub.publish("compound/test/" + std::to_string(i % 10), p);
    sent.push_back(std::move(p));
  }
  REQUIRE(hgj::test::waitFor([&] { return rig.sink.count() == kCount; }, 20s));
  // The views are read only now: buffers still referenced must not have been reused.
  auto got = rig.sink.texts();
  for (int i = 0; i < kCount; ++i) {
    INFO("message " << i);
    REQUIRE(got[static_cast<size_t>(i)].second == sent[static_cast<size_t>(i)]);
    REQUIRE(got[static_cast<size_t>(i)].first == "compound/test/" + std::to_string(i % 10));
  }
}

TEST_CASE("batched ingest: a message arriving alone is handled at once by an idle sink, a burst "
          "goes through the queue, all in order",
          "[integration][ingest][mqtt]") {
  hgj::test::Broker broker(false);
  Rig rig(clientConfig(broker.url(), "gw-now"));
  rig.sink.setHandleNow(true);
  REQUIRE(rig.subscribed());
  hgj::test::TestClient pub(broker.url());
  std::vector<std::string> sent;
  // One at a time: each is the only thing in its read, so each is handled on the ingest thread.
  for (int i = 0; i < 20; ++i) {
    sent.push_back("alone " + std::to_string(i));
    pub.publish("compound/test/alone", sent.back());
    REQUIRE(hgj::test::waitFor([&] { return rig.sink.count() == sent.size(); }, 10s));
  }
  CHECK(rig.sink.takenNow() == 20);
  // A burst: the sink is full while 3,000 messages are published, so they wait in the broker
  // and the socket and then come many to a read. Those with more of the read behind them go
  // through deliverFor (the queue); only the last of a read may be handled at once.
  rig.sink.setLimit(sent.size());
  for (int i = 0; i < 3000; ++i) {
    sent.push_back("burst " + std::to_string(i) + std::string(static_cast<size_t>(i % 700), 'b'));
    pub.publish("compound/test/burst", sent.back());
  }
  rig.sink.setLimit(SIZE_MAX);
  REQUIRE(hgj::test::waitFor([&] { return rig.sink.count() == sent.size(); }, 20s));
  CHECK(rig.sink.takenNow() < 20 + 3000);
  auto got = rig.sink.texts();
  REQUIRE(got.size() == sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    INFO("message " << i);
    REQUIRE(got[i].second == sent[i]);
  }
}

TEST_CASE("batched ingest: an oversized message is dropped, counted and not delivered again",
          "[integration][ingest][mqtt]") {
  hgj::test::Broker broker(false);
  auto cfg = clientConfig(broker.url(), "gw-big");
  cfg.max_payload_bytes = 4096;
  {
    Rig rig(cfg);
    REQUIRE(rig.subscribed());
    hgj::test::TestClient pub(broker.url());
    pub.publish("compound/parking/P-B1-0001/state", parkingPayload(1));
    pub.publish("compound/parking/P-B1-0001/state", std::string(200'000, 'x'));
    pub.publish("compound/parking/P-B1-0001/state", parkingPayload(2));
    REQUIRE(hgj::test::waitFor([&] { return rig.sink.count() == 2; }));
    CHECK(rig.metrics.render().find("hgj_readings_dropped_total{reason=\"oversized\"} 1") !=
          std::string::npos);
    CHECK(rig.client->health() == "ok");
  }
  // It was acked: the session does not get it again.
  Rig again(cfg);
  REQUIRE(again.subscribed());
  hgj::test::TestClient pub(broker.url());
  pub.publish("compound/parking/P-B1-0001/state", parkingPayload(3));
  REQUIRE(hgj::test::waitFor([&] { return again.sink.count() >= 1; }));
  auto got = again.sink.texts();
  CHECK(got.size() == 1);
  CHECK(got.front().second == parkingPayload(3));
}

TEST_CASE("batched ingest: a relay command is published to the port's command topic",
          "[integration][ingest][mqtt]") {
  hgj::test::Broker broker(false);
  hgj::test::TestClient device(broker.url());
  device.subscribe("compound/ebike/+/+/set");
  Rig rig(clientConfig(broker.url(), "gw-cmd"));
  REQUIRE(rig.subscribed());
  const auto& compound = *exampleConfig().compound;
  hgj::drivers::WriteRequest req;
  req.id = 77;
  req.device = compound.deviceIndex("S03/P07");
  req.point = *compound.pointId("relay");
  req.value = false;
  req.origin = "test";
  REQUIRE(req.device != hgj::model::kNoDevice);
  rig.client->write(req);
  REQUIRE(hgj::test::waitFor([&] { return device.count() == 1; }));
  auto m = device.messages().front();
  CHECK(m.topic == "compound/ebike/S03/P07/set");
  CHECK(m.payload == R"({"id":"77","relay":false})");
}

TEST_CASE("batched ingest: a broker that stops answering is dropped after the keepalive",
          "[integration][ingest][mqtt]") {
  SilentBroker silent;
  auto cfg = clientConfig(silent.url(), "gw-silent");
  cfg.keepalive_s = 2;
  Rig rig(cfg);
  REQUIRE(rig.subscribed());
  // A PINGREQ after 1.5 s without traffic, no answer within the keepalive: reconnect.
  REQUIRE(hgj::test::waitFor([&] { return silent.accepted() >= 2; }, 8s));
  CHECK(silent.pingsSeen() >= 1);
}

TEST_CASE("batched ingest: a subscription the broker refuses shows in the health",
          "[integration][ingest][mqtt]") {
  SilentBroker refusing(0x80);
  Rig rig(clientConfig(refusing.url(), "gw-acl"), {"compound/#"});
  REQUIRE(rig.subscribed());
  CHECK(rig.client->health() == "the broker refused the subscriptions compound/#");
}

TEST_CASE("batched ingest: no broker is retried with backoff and reported in the health",
          "[integration][ingest][mqtt]") {
  const int port = hgj::test::freePort();
  Rig rig(clientConfig("tcp://127.0.0.1:" + std::to_string(port), "gw-none"));
  REQUIRE(hgj::test::waitFor([&] {
    return rig.client->health().find("connect: Connection refused") != std::string::npos;
  }));
  CHECK_FALSE(rig.client->connected());
}
