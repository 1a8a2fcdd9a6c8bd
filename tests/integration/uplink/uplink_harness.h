#pragma once

// Integration helpers of the uplink tests: a real mosquitto started on a free loopback port with
// its own config and persistence dir, and a recording MQTT subscriber (Paho).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include <mqtt/async_client.h>

#include "tests/unit/uplink/uplink_fixtures.h"

extern char** environ;

namespace hgj::uplink::testing {

inline int freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

inline bool portAccepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

/// Starts a program with its stdout and stderr appended to `output`.
inline pid_t spawn(const std::vector<std::string>& args, const std::string& output) {
  std::vector<char*> argv;
  for (const auto& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

/// A mosquitto on 127.0.0.1 with persistence in its own dir. `listeners` is extra config text
/// (e.g. a TLS listener); the plain listener is on port().
class TestBroker {
public:
  explicit TestBroker(std::string extra = "") : dir_("broker"), port_(freePort()) {
    std::ofstream conf(dir_.file("mosquitto.conf"));
    // As root mosquitto would switch to user "mosquitto", who cannot write our temp dir.
    const passwd* pw = ::getpwuid(::geteuid());
    conf << "user " << (pw != nullptr ? pw->pw_name : "root") << "\n"
         << "persistence true\n"
         << "persistence_location " << dir_.path << "/\n"
         << "autosave_interval 3600\n"
         << "allow_anonymous true\n"
         << "max_queued_messages 0\n"
         << "max_inflight_messages 0\n"
         << "log_dest file " << dir_.file("mosquitto.log") << "\n"
         << "listener " << port_ << " 127.0.0.1\n"
         << extra;
  }
  ~TestBroker() { stop(); }

  /// Starts (or restarts on the same ports) and waits until it accepts connections.
  bool start() {
    pid_ = spawn({"mosquitto", "-c", dir_.file("mosquitto.conf")}, dir_.file("stderr.log"));
    return pid_ > 0 && waitFor([&] { return portAccepts(port_); }, std::chrono::seconds(10));
  }
  /// SIGTERM (mosquitto saves its persistent sessions) and waits for the exit.
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }
  int port() const { return port_; }
  std::string url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  const TempDir& dir() const { return dir_; }

private:
  TempDir dir_;
  int port_;
  pid_t pid_ = -1;
};

struct Received {
  std::string topic;
  std::string payload;
  bool retained = false;
};

/// Subscribes at QoS 1 with a persistent session (clean_session off) and reconnects by itself,
/// so what the broker queued for it while it was away is delivered. Thread-safe.
class Recorder {
public:
  Recorder(const std::string& url, std::vector<std::string> filters,
           const std::string& client_id = "recorder")
      : client_(url, client_id, mqtt::create_options(MQTTVERSION_3_1_1),
                static_cast<mqtt::iclient_persistence*>(nullptr)),
        filters_(std::move(filters)) {
    client_.set_message_callback([this](mqtt::const_message_ptr m) {
      std::lock_guard lock(mu_);
      got_.push_back({m->get_topic(), m->get_payload_str(), m->is_retained()});
    });
    client_.set_connected_handler([this](const std::string&) {
      for (const auto& f : filters_) {
        client_.subscribe(f, 1);
      }
    });
    mqtt::connect_options opts;
    opts.set_clean_session(false);
    opts.set_keep_alive_interval(5);
    opts.set_automatic_reconnect(1, 1);
    client_.connect(opts)->wait_for(std::chrono::seconds(5));
    waitFor([&] { return client_.is_connected(); }, std::chrono::seconds(5));
    for (const auto& f : filters_) {
      client_.subscribe(f, 1)->wait_for(std::chrono::seconds(5));
    }
  }
  ~Recorder() {
    try {
      client_.disconnect()->wait_for(std::chrono::seconds(2));
    } catch (...) {
    }
  }

  std::vector<Received> messages() const {
    std::lock_guard lock(mu_);
    return got_;
  }
  std::vector<Received> on(const std::string& topic) const {
    std::vector<Received> out;
    std::lock_guard lock(mu_);
    for (const auto& m : got_) {
      if (m.topic == topic) {
        out.push_back(m);
      }
    }
    return out;
  }
  size_t count() const {
    std::lock_guard lock(mu_);
    return got_.size();
  }
  void publish(const std::string& topic, const std::string& payload) {
    client_.publish(topic, payload, 1, false)->wait_for(std::chrono::seconds(5));
  }

private:
  mqtt::async_client client_;
  std::vector<std::string> filters_;
  mutable std::mutex mu_;
  std::vector<Received> got_;
};

} // namespace hgj::uplink::testing
