#pragma once

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

namespace hgj::test {

/// A TCP relay on a free loopback port in front of a real broker, scripted to misbehave the way
/// networks do (docs/reliability.md rows 2, 3, 5 and the soak's upstream outages):
///  - Pass: bytes flow both ways.
///  - Blackhole: connections stay open but every byte vanishes in both directions (a half-open
///    link: a NAT that forgot the flow, a dead 4G modem); new connections are accepted and
///    swallowed too.
///  - Refuse: open connections are closed and new ones are refused (the port is closed): the
///    broker is down.
/// One thread does all the relaying; switching mode is immediate.
class FaultRelay {
public:
  enum class Mode { Pass, Blackhole, Refuse };
  explicit FaultRelay(int target_port);
  ~FaultRelay();
  FaultRelay(const FaultRelay&) = delete;
  FaultRelay& operator=(const FaultRelay&) = delete;

  void setMode(Mode mode);
  int port() const { return port_; }
  std::string url() const;
  /// Connections accepted so far (a client reconnecting shows here).
  int accepted() const { return accepted_.load(); }

private:
  struct Pair {
    int client = -1;
    int server = -1;
  };
  void run();
  void openListener();
  void closeListener();
  void closeAll();

  int target_;
  int port_;
  int listen_fd_ = -1;  // relay thread (and constructor)
  int wake_[2] = {-1, -1};
  std::atomic<Mode> mode_{Mode::Pass};
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::vector<Pair> pairs_;  // relay thread only
  std::thread thread_;
};

} // namespace hgj::test
