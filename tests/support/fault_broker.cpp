#include "tests/support/fault_broker.h"

#include <csignal>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <pwd.h>
#include <unistd.h>

namespace hgj::test {

namespace fs = std::filesystem;

namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string firstWord(const std::string& line) {
  size_t b = line.find_first_not_of(" \t");
  if (b == std::string::npos || line[b] == '#') {
    return {};
  }
  size_t e = line.find_first_of(" \t", b);
  return line.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

} // namespace

ShippedBroker::ShippedBroker(std::vector<User> users, const std::string& conf,
                             const std::string& acl)
    : port_(freePort()) {
  const std::string original = readFile(conf);
  if (original.empty()) {
    throw std::runtime_error("cannot read " + conf);
  }
  fs::copy_file(acl, dir_.file("acl"));
  // The password file, as an installer makes it (mosquitto_passwd -c for the first user).
  for (size_t i = 0; i < users.size(); ++i) {
    std::vector<std::string> argv{"mosquitto_passwd", "-b"};
    if (i == 0) {
      argv.push_back("-c");
    }
    argv.insert(argv.end(), {dir_.file("passwd"), users[i].name, users[i].password});
    Process p(argv, dir_.file("passwd.log"));
    if (p.wait(std::chrono::seconds(20)) != 0) {
      throw std::runtime_error("mosquitto_passwd failed: " + p.output());
    }
  }
  std::istringstream in(original);
  std::ostringstream out;
  std::string line;
  bool listener_written = false;
  bool skipping = false;  // inside a listener folded into the first one
  static const std::set<std::string> kListenerKeys{
      "allow_anonymous", "password_file", "acl_file", "bind_interface", "certfile", "keyfile",
      "cafile", "capath", "require_certificate", "use_identity_as_username", "protocol",
      "max_connections", "mount_point", "psk_hint", "psk_file", "tls_version", "ciphers"};
  while (std::getline(in, line)) {
    const std::string key = firstWord(line);
    if (skipping && !key.empty() && key != "listener" && kListenerKeys.count(key) == 0) {
      skipping = false;
    }
    if (skipping && key != "listener") {
      out << "# (test, folded listener) " << line << "\n";
    } else if (key == "listener") {
      // All listeners (loopback for the gateway, the devices' interface, TLS) become one plain
      // loopback listener; the settings that follow each apply to it (per_listener_settings).
      if (!listener_written) {
        out << "listener " << port_ << " 127.0.0.1\n";
        listener_written = true;
      } else {
        out << "# (test, folded listener) " << line << "\n";
        skipping = true;
      }
    } else if (key == "bind_interface" || key == "certfile" || key == "keyfile" ||
               key == "cafile" || key == "require_certificate" || key == "user") {
      out << "# (test) " << line << "\n";
    } else if (key == "persistence_location") {
      out << "persistence_location " << dir_.path() << "/\n";
    } else if (key == "password_file") {
      out << "password_file " << dir_.file("passwd") << "\n";
    } else if (key == "acl_file") {
      out << "acl_file " << dir_.file("acl") << "\n";
    } else {
      out << line << "\n";
    }
  }
  if (!listener_written) {
    throw std::runtime_error(conf + " has no listener");
  }
  // As root mosquitto would switch to the "mosquitto" user, who cannot write our temp dir.
  if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr) {
    out << "user " << pw->pw_name << "\n";
  }
  out << "log_dest stderr\n";
  std::ofstream(dir_.file("mosquitto.conf")) << out.str();
  start();
}

ShippedBroker::~ShippedBroker() { kill(); }

void ShippedBroker::start() {
  if (process_) {
    return;
  }
  process_ = std::make_unique<Process>(
      std::vector<std::string>{"mosquitto", "-c", dir_.file("mosquitto.conf")},
      dir_.file("mosquitto.log"));
  if (!waitFor([&] { return portOpen(port_) || !process_->running(); },
               std::chrono::seconds(15)) ||
      !process_->running()) {
    throw std::runtime_error("mosquitto did not start with the shipped config:\n" + config() +
                             "\n" + log());
  }
}

void ShippedBroker::kill() {
  if (process_) {
    process_->signal(SIGKILL);
    process_->wait(std::chrono::seconds(10));
    process_.reset();
  }
}

void ShippedBroker::terminate() {
  if (process_) {
    process_->signal(SIGTERM);
    process_->wait(std::chrono::seconds(20));
    process_.reset();
  }
}

std::string ShippedBroker::persistenceFile() const { return dir_.file("mosquitto.db"); }

std::optional<fs::file_time_type> ShippedBroker::savedAt() const {
  std::error_code ec;
  auto t = fs::last_write_time(persistenceFile(), ec);
  if (ec) {
    return std::nullopt;
  }
  return t;
}

bool ShippedBroker::waitSaved(std::optional<fs::file_time_type> previous,
                              std::chrono::milliseconds timeout) {
  return waitFor(
      [&] {
        auto now = savedAt();
        return now && now != previous;
      },
      timeout);
}

std::string ShippedBroker::config() const { return readFile(dir_.file("mosquitto.conf")); }

std::string ShippedBroker::log() const { return readFile(dir_.file("mosquitto.log")); }

} // namespace hgj::test
