#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>

namespace mqtt {
class async_client;
}

namespace hgj::test {

/// A temporary directory removed with everything in it when destroyed.
class TempDir {
public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

/// Writes `text` to `path` (created or truncated); throws when the file cannot be written.
void writeFile(const std::string& path, const std::string& text);

/// A free TCP port on 127.0.0.1 (bound to port 0 and released).
int freePort();

/// Polls `pred` every few milliseconds until it is true or `timeout` passes. The way tests wait
/// for something to happen: never a bare sleep.
bool waitFor(const std::function<bool()>& pred,
             std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// Whether something accepts TCP connections on 127.0.0.1:port.
bool portOpen(int port);

/// A real mosquitto broker on a free loopback port, with its own config and data directory.
class Broker {
public:
  /// `persistence`: keep sessions and queued QoS 1 messages across restarts (autosave on
  /// every change, so a stop/start keeps everything). `extra_config`: more mosquitto.conf text
  /// (a TLS listener). `start`: false for a test that begins with the broker down (the port is
  /// chosen now and kept).
  explicit Broker(bool persistence = true, const std::string& extra_config = {},
                  bool start = true);
  ~Broker();
  /// Starts (or restarts on the same port) and waits until it accepts connections; throws
  /// when it does not.
  void start();
  void stop();  ///< SIGTERM and wait (mosquitto writes its persistence file)
  void kill();  ///< SIGKILL
  int port() const { return port_; }
  std::string url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  bool running() const { return pid_ > 0; }

private:
  TempDir dir_;
  int port_;
  pid_t pid_ = -1;
};

/// Plays systemd's notify socket (sd_notify(3)): a datagram socket whose path a child gets in
/// NOTIFY_SOCKET. The way tests know a daemon is ready (READY=1), stopping, or feeding its
/// watchdog (WATCHDOG=1), instead of reading its log.
class NotifySocket {
public:
  NotifySocket();
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  const std::string& path() const { return path_; }
  /// Waits until a datagram containing the line `message` (e.g. "READY=1") arrives; true if it
  /// did. Datagrams received before the call count.
  bool waitFor(const std::string& message, std::chrono::milliseconds timeout);
  /// Every datagram received so far, oldest first (reads what is pending first).
  std::vector<std::string> messages();
  /// How many datagrams so far contained the line `message`.
  size_t count(const std::string& message);
  /// Steady-clock arrival times of the datagrams containing `message`.
  std::vector<std::chrono::steady_clock::time_point> arrivals(const std::string& message);

private:
  void drain(std::chrono::milliseconds wait);
  TempDir dir_;
  std::string path_;
  int fd_ = -1;
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::string>> received_;
};

/// A child process with stdout+stderr captured to a file.
class Process {
public:
  /// `env`: extra NAME=value entries for the child's environment.
  Process(std::vector<std::string> argv, std::string log_file,
          std::vector<std::string> env = {});
  ~Process();
  void signal(int sig);
  /// Waits for exit; returns the exit status (or 128+signal), -1 on timeout.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  bool running();
  std::string output() const;
  pid_t pid() const { return pid_; }

private:
  std::vector<std::string> argv_;
  std::string log_;
  pid_t pid_ = -1;
  int status_ = -1;
};

/// Free loopback ports for every TCP Modbus line of a gateway config whose host is a loopback
/// address, by line id. A test never uses the ports the file names: a running demo
/// (tools/demo.sh) or another test may be serving them. Empty when the config does not load.
std::map<std::string, int> freeModbusLines(const std::string& config);

/// A running hgj-gateway: the process, its notify socket, its HTTP port and the ports of its
/// loopback Modbus lines.
class GatewayProcess : public Process {
public:
  GatewayProcess(std::vector<std::string> argv, std::string log_file, int http_port,
                 std::unique_ptr<NotifySocket> notify,
                 std::map<std::string, int> modbus_ports = {});
  NotifySocket& notify() { return *notify_; }
  int httpPort() const { return http_port_; }
  /// Where the gateway polls each loopback TCP Modbus line (line id -> port): give these to a
  /// simulator (Scenario::modbus.lines) so that it serves what this gateway polls.
  const std::map<std::string, int>& modbusPorts() const { return modbus_ports_; }
  std::string baseUrl() const { return "http://127.0.0.1:" + std::to_string(http_port_); }
  /// GET on the gateway's API (status code and body; status -1 when nothing answered).
  std::pair<int, std::string> get(const std::string& path) const;
  /// Waits for READY=1 on the notify socket, then until /healthz reports the local broker
  /// subscribed (ingest "ok"). Throws with the gateway's output when it does not get there.
  void waitReady(std::chrono::milliseconds timeout = std::chrono::seconds(20),
                 bool need_ingest = true);

private:
  int http_port_;
  std::unique_ptr<NotifySocket> notify_;
  std::map<std::string, int> modbus_ports_;
};

/// The built hgj-gateway on the example compound, pointed at a broker and a database file, on a
/// free HTTP port, every loopback TCP Modbus line moved to a free port (modbusPorts()). Extra
/// --set overrides can be given (they win over the defaults). Modbus polling is off unless
/// `modbus.enabled=true` is passed. Waits until the gateway is ready and
/// subscribed (GatewayProcess::waitReady).
std::unique_ptr<GatewayProcess> startGateway(const std::string& broker_url,
                                             const std::string& db_path,
                                             const std::string& log_file,
                                             std::vector<std::string> extra_sets = {},
                                             const std::string& config = {});
/// The same without waiting (start-up failure tests, readiness timing).
std::unique_ptr<GatewayProcess> spawnGateway(const std::string& broker_url,
                                             const std::string& db_path,
                                             const std::string& log_file,
                                             std::vector<std::string> extra_sets = {},
                                             const std::string& config = {});

/// A Paho client for tests: connect, publish at QoS 1 and wait for the acks, subscribe and
/// collect messages.
class TestClient {
public:
  explicit TestClient(const std::string& url, const std::string& client_id = {},
                      bool clean_session = true);
  ~TestClient();
  void publish(const std::string& topic, const std::string& payload, int qos = 1,
               bool retained = false);
  void subscribe(const std::string& filter, int qos = 1);
  struct Message {
    std::string topic;
    std::string payload;
  };
  std::vector<Message> messages() const;
  size_t count() const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// One integer from a SQL query on a database file (read-only connection).
long long queryInt(const std::string& db_path, const std::string& sql);
/// Rows of a query as text, columns joined with '|'.
std::vector<std::string> queryRows(const std::string& db_path, const std::string& sql);

/// Path of a built binary (build dir / name).
std::string binary(const std::string& name);
/// Path inside the source tree.
std::string sourcePath(const std::string& rel);

} // namespace hgj::test
