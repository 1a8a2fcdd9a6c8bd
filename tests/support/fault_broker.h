#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace hgj::test {

/// mosquitto run from a shipped config file (conf/mosquitto/hgj-local.conf by default), so that
/// a fault test proves what the file an installer copies does. Only what ties the file to a box
/// is rewritten: every `listener` (and its `bind_interface`) becomes one listener on a free
/// loopback port; `persistence_location`, `password_file` and `acl_file` point into a temp dir
/// (the ACL is a copy of conf/mosquitto/hgj-acl.example, the password file is made with
/// mosquitto_passwd for `users`); it runs as the current user. Every other line (persistence,
/// autosave, queue limits, per-listener settings) is the shipped one. kill() and start() keep
/// the port and the persistence directory: a broker crash and its restart by systemd.
class ShippedBroker {
public:
  struct User {
    std::string name;
    std::string password;
  };
  explicit ShippedBroker(std::vector<User> users,
                         const std::string& conf = sourcePath("conf/mosquitto/hgj-local.conf"),
                         const std::string& acl = sourcePath("conf/mosquitto/hgj-acl.example"));
  ~ShippedBroker();
  ShippedBroker(const ShippedBroker&) = delete;
  ShippedBroker& operator=(const ShippedBroker&) = delete;

  /// Starts mosquitto and waits until it accepts connections.
  void start();
  /// SIGKILL: nothing is saved beyond what mosquitto had written already.
  void kill();
  /// SIGTERM: mosquitto saves its database and exits.
  void terminate();
  bool running() const { return process_ != nullptr; }
  int port() const { return port_; }
  std::string url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  /// The persistence file and its last write time (nullopt while there is none).
  std::string persistenceFile() const;
  std::optional<std::filesystem::file_time_type> savedAt() const;
  /// Waits until mosquitto writes its persistence file again: its write time differs from
  /// `previous` (what savedAt() said after the event whose save is awaited).
  bool waitSaved(std::optional<std::filesystem::file_time_type> previous,
                 std::chrono::milliseconds timeout);
  /// The config as run (for failure messages) and mosquitto's own log.
  std::string config() const;
  std::string log() const;

private:
  TempDir dir_;
  int port_;
  std::unique_ptr<Process> process_;
};

} // namespace hgj::test
