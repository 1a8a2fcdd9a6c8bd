#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace httplib {
class Server;
}

namespace hgj::test {

/// An HTTP endpoint on a free loopback port standing in for an alert channel (a generic JSON
/// webhook, WeCom or DingTalk robot), scripted to fail (docs/reliability.md row 20):
///  - Ok: answers 200 `{"errcode":0}` at once and records the body.
///  - Slow: holds each request `delay` before answering 200 (and records it).
///  - Error: answers 500.
///  - Down: the port is closed (connection refused).
class WebhookSink {
public:
  enum class Mode { Ok, Slow, Error, Down };
  WebhookSink();
  ~WebhookSink();
  WebhookSink(const WebhookSink&) = delete;
  WebhookSink& operator=(const WebhookSink&) = delete;

  void setMode(Mode mode, std::chrono::milliseconds delay = std::chrono::seconds(0));
  int port() const { return port_; }
  std::string url(const std::string& path = "/hook") const;
  /// Bodies of the requests answered with 200, oldest first.
  std::vector<std::string> received() const;
  /// Requests that arrived in any mode but Down.
  int attempts() const { return attempts_.load(); }

private:
  void listen();
  void shutdown();

  int port_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<Mode> mode_{Mode::Ok};
  std::atomic<int64_t> delay_ms_{0};
  std::atomic<int> attempts_{0};
  mutable std::mutex mu_;
  std::vector<std::string> received_;  // guarded by mu_
};

} // namespace hgj::test
