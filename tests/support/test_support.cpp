#include "tests/support/test_support.h"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sqlite3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include <httplib.h>
#include <mqtt/async_client.h>
#include <nlohmann/json.hpp>

#include "core/config_node.h"
#include "gateway/config/config.h"

namespace hgj::test {

namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "hgj-test-XXXXXX").string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

int freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("bind to a free port failed");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.flush();
  if (!out) {
    throw std::runtime_error("cannot write " + path);
  }
}

bool waitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (pred()) {
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return pred();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool portOpen(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

namespace {

pid_t spawn(const std::vector<std::string>& argv, const std::string& log,
            const std::vector<std::string>& env = {}) {
  pid_t pid = fork();
  if (pid < 0) {
    throw std::runtime_error("fork failed");
  }
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      ::close(fd);
    }
    // The gateway blocks signals for sigwait; a child must start with none blocked.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (const auto& e : env) {
      size_t eq = e.find('=');
      if (eq != std::string::npos) {
        setenv(e.substr(0, eq).c_str(), e.substr(eq + 1).c_str(), 1);
      }
    }
    std::vector<char*> args;
    for (const auto& a : argv) {
      args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int waitPid(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
      }
      if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
      }
      return -1;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

} // namespace

Broker::Broker(bool persistence, const std::string& extra_config, bool start_now)
    : port_(freePort()) {
  std::ofstream conf(dir_.file("mosquitto.conf"));
  conf << "listener " << port_ << " 127.0.0.1\n"
       << "allow_anonymous true\n"
       << "max_queued_messages 0\n"
       << "max_inflight_messages 100\n"
       << "log_dest stderr\n"
       << "log_type error\nlog_type warning\n";
  // Run as root, mosquitto would drop to the "mosquitto" user, which cannot write our temp dir.
  if (const passwd* pw = getpwuid(getuid()); pw != nullptr) {
    conf << "user " << pw->pw_name << "\n";
  }
  if (persistence) {
    conf << "persistence true\n"
         << "persistence_location " << dir_.path() << "/\n"
         << "autosave_interval 1\nautosave_on_changes true\n";
  } else {
    conf << "persistence false\n";
  }
  conf << extra_config;
  conf.close();
  if (start_now) {
    start();
  }
}

Broker::~Broker() {
  if (pid_ > 0) {
    kill();
  }
}

void Broker::start() {
  if (pid_ > 0) {
    stop();  // a restart: never lose track of a running broker (it would outlive the test)
  }
  pid_ = spawn({"mosquitto", "-c", dir_.file("mosquitto.conf")}, dir_.file("mosquitto.log"));
  if (!waitFor([&] { return portOpen(port_); }, std::chrono::seconds(10))) {
    throw std::runtime_error("mosquitto did not start on port " + std::to_string(port_));
  }
}

void Broker::stop() {
  if (pid_ <= 0) {
    return;
  }
  ::kill(pid_, SIGTERM);
  if (waitPid(pid_, std::chrono::seconds(10)) < 0) {
    // Not gone after 10 s (a loaded box): it must not outlive the test.
    ::kill(pid_, SIGKILL);
    waitPid(pid_, std::chrono::seconds(10));
  }
  pid_ = -1;
}

void Broker::kill() {
  if (pid_ <= 0) {
    return;
  }
  ::kill(pid_, SIGKILL);
  waitPid(pid_, std::chrono::seconds(10));
  pid_ = -1;
}

NotifySocket::NotifySocket() {
  path_ = dir_.file("notify.sock");
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (fd_ < 0 || path_.size() >= sizeof addr.sun_path) {
    throw std::runtime_error("notify socket: cannot create " + path_);
  }
  std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error("notify socket: bind " + path_ + ": " + std::strerror(errno));
  }
}

NotifySocket::~NotifySocket() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

void NotifySocket::drain(std::chrono::milliseconds wait) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) {
    return;
  }
  char buf[4096];
  while (true) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
      return;
    }
    received_.emplace_back(std::chrono::steady_clock::now(),
                           std::string(buf, static_cast<size_t>(n)));
  }
}

namespace {
bool hasLine(const std::string& datagram, const std::string& line) {
  std::istringstream in(datagram);
  std::string l;
  while (std::getline(in, l)) {
    if (l == line) {
      return true;
    }
  }
  return false;
}
} // namespace

bool NotifySocket::waitFor(const std::string& message, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t seen = 0;
  while (true) {
    for (; seen < received_.size(); ++seen) {
      if (hasLine(received_[seen].second, message)) {
        return true;
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return false;
    }
    drain(std::min(left, std::chrono::milliseconds(100)));
  }
}

std::vector<std::string> NotifySocket::messages() {
  drain(std::chrono::milliseconds(0));
  std::vector<std::string> out;
  for (const auto& [t, m] : received_) {
    out.push_back(m);
  }
  return out;
}

size_t NotifySocket::count(const std::string& message) {
  return arrivals(message).size();
}

std::vector<std::chrono::steady_clock::time_point> NotifySocket::arrivals(
    const std::string& message) {
  drain(std::chrono::milliseconds(0));
  std::vector<std::chrono::steady_clock::time_point> out;
  for (const auto& [t, m] : received_) {
    if (hasLine(m, message)) {
      out.push_back(t);
    }
  }
  return out;
}

Process::Process(std::vector<std::string> argv, std::string log_file,
                 std::vector<std::string> env)
    : argv_(std::move(argv)), log_(std::move(log_file)) {
  pid_ = spawn(argv_, log_, env);
}

Process::~Process() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    waitPid(pid_, std::chrono::seconds(10));
  }
}

void Process::signal(int sig) {
  if (pid_ > 0) {
    ::kill(pid_, sig);
  }
}

int Process::wait(std::chrono::milliseconds timeout) {
  if (status_ >= 0) {
    return status_;
  }
  status_ = waitPid(pid_, timeout);
  return status_;
}

bool Process::running() {
  if (status_ >= 0 || pid_ <= 0) {
    return false;
  }
  int st = waitPid(pid_, std::chrono::milliseconds(0));
  if (st >= 0) {
    status_ = st;
    return false;
  }
  return true;
}

std::string Process::output() const {
  std::ifstream in(log_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string binary(const std::string& name) { return std::string(HGJ_BINARY_DIR) + "/" + name; }

std::string sourcePath(const std::string& rel) { return std::string(HGJ_SOURCE_DIR) + "/" + rel; }

std::map<std::string, int> freeModbusLines(const std::string& config) {
  std::map<std::string, int> ports;
  core::Diagnostics diag;
  try {
    auto cfg = config::loadConfig(config, {}, diag);
    for (const auto& line : cfg.modbus.lines) {
      if (line.kind == drivers::modbus::LineKind::Tcp &&
          (line.host == "127.0.0.1" || line.host == "localhost" || line.host == "::1")) {
        ports[line.id] = freePort();
      }
    }
  } catch (const std::exception&) {
    // A config that does not load (a start-up failure test) has no lines to move.
  }
  return ports;
}

GatewayProcess::GatewayProcess(std::vector<std::string> argv, std::string log_file,
                               int http_port, std::unique_ptr<NotifySocket> notify,
                               std::map<std::string, int> modbus_ports)
    : Process(std::move(argv), std::move(log_file), {"NOTIFY_SOCKET=" + notify->path()}),
      http_port_(http_port), notify_(std::move(notify)), modbus_ports_(std::move(modbus_ports)) {}

std::pair<int, std::string> GatewayProcess::get(const std::string& path) const {
  httplib::Client cli("127.0.0.1", http_port_);
  cli.set_connection_timeout(std::chrono::seconds(2));
  cli.set_read_timeout(std::chrono::seconds(5));
  auto res = cli.Get(path);
  if (!res) {
    return {-1, {}};
  }
  return {res->status, res->body};
}

void GatewayProcess::waitReady(std::chrono::milliseconds timeout, bool need_ingest) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto fail = [&](const std::string& what) {
    throw std::runtime_error("gateway " + what + ":\n" + output());
  };
  while (!notify_->waitFor("READY=1", std::chrono::milliseconds(100))) {
    if (!running()) {
      fail("exited before it was ready");
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      fail("sent no READY=1");
    }
  }
  if (!need_ingest) {
    return;
  }
  bool subscribed = waitFor(
      [&] {
        auto [status, body] = get("/healthz");
        if (status < 0) {
          return false;
        }
        auto j = nlohmann::json::parse(body, nullptr, false);
        return j.is_object() && j.value("ingest", "") == "ok";
      },
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                            std::chrono::steady_clock::now()));
  if (!subscribed) {
    fail("never reported ingest ok on /healthz");
  }
}

std::unique_ptr<GatewayProcess> spawnGateway(const std::string& broker_url,
                                             const std::string& db_path,
                                             const std::string& log_file,
                                             std::vector<std::string> extra_sets,
                                             const std::string& config) {
  int http_port = freePort();
  const std::string config_path = config.empty() ? sourcePath("conf/gateway.yaml") : config;
  std::map<std::string, int> modbus_ports = freeModbusLines(config_path);
  std::vector<std::string> argv{binary("hgj-gateway"),
                                "run",
                                "-c",
                                config_path,
                                "--set",
                                "mqtt.url=" + broker_url,
                                "--set",
                                "storage.path=" + db_path,
                                "--set",
                                "http.port=" + std::to_string(http_port),
                                // Tests that poll Modbus say so.
                                "--set",
                                "modbus.enabled=false"};
  for (const auto& [line, port] : modbus_ports) {
    argv.push_back("--set");
    argv.push_back("modbus.lines." + line + ".port=" + std::to_string(port));
  }
  const std::regex line_port(R"(modbus\.lines\.([^.=]+)\.port=([0-9]+))");
  for (auto& s : extra_sets) {
    if (s.rfind("http.port=", 0) == 0) {
      http_port = std::atoi(s.c_str() + 10);
    }
    if (std::smatch m; std::regex_match(s, m, line_port)) {
      modbus_ports[m[1]] = std::stoi(m[2]);
    }
    argv.push_back("--set");
    argv.push_back(std::move(s));
  }
  return std::make_unique<GatewayProcess>(argv, log_file, http_port,
                                          std::make_unique<NotifySocket>(),
                                          std::move(modbus_ports));
}

std::unique_ptr<GatewayProcess> startGateway(const std::string& broker_url,
                                             const std::string& db_path,
                                             const std::string& log_file,
                                             std::vector<std::string> extra_sets,
                                             const std::string& config) {
  auto p = spawnGateway(broker_url, db_path, log_file, std::move(extra_sets), config);
  p->waitReady();
  return p;
}

struct TestClient::Impl {
  std::unique_ptr<mqtt::async_client> client;
  mutable std::mutex mu;
  std::vector<Message> messages;
};

TestClient::TestClient(const std::string& url, const std::string& client_id, bool clean_session)
    : impl_(std::make_unique<Impl>()) {
  static std::atomic<int> counter{0};
  std::string id = client_id.empty()
                       ? "test-" + std::to_string(getpid()) + "-" + std::to_string(++counter)
                       : client_id;
  impl_->client = std::make_unique<mqtt::async_client>(
      url, id, static_cast<mqtt::iclient_persistence*>(nullptr));
  impl_->client->set_message_callback([this](mqtt::const_message_ptr m) {
    std::lock_guard lock(impl_->mu);
    impl_->messages.push_back({m->get_topic(), m->get_payload_str()});
  });
  auto opts = mqtt::connect_options_builder()
                  .clean_session(clean_session)
                  .connect_timeout(std::chrono::seconds(5))
                  .finalize();
  impl_->client->connect(opts)->wait();
}

TestClient::~TestClient() {
  try {
    impl_->client->disconnect()->wait_for(std::chrono::seconds(2));
  } catch (...) {
  }
}

void TestClient::publish(const std::string& topic, const std::string& payload, int qos,
                         bool retained) {
  impl_->client->publish(topic, payload, qos, retained)->wait_for(std::chrono::seconds(10));
}

void TestClient::subscribe(const std::string& filter, int qos) {
  impl_->client->subscribe(filter, qos)->wait_for(std::chrono::seconds(10));
}

std::vector<TestClient::Message> TestClient::messages() const {
  std::lock_guard lock(impl_->mu);
  return impl_->messages;
}

size_t TestClient::count() const {
  std::lock_guard lock(impl_->mu);
  return impl_->messages.size();
}

std::vector<std::string> queryRows(const std::string& db_path, const std::string& sql) {
  std::vector<std::string> rows;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return rows;
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        if (i > 0) {
          row += '|';
        }
        const auto* t = sqlite3_column_text(st, i);
        row += t != nullptr ? reinterpret_cast<const char*>(t) : "";
      }
      rows.push_back(std::move(row));
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rows;
}

long long queryInt(const std::string& db_path, const std::string& sql) {
  auto rows = queryRows(db_path, sql);
  if (rows.empty() || rows[0].empty()) {
    return -1;
  }
  return std::atoll(rows[0].c_str());
}

} // namespace hgj::test
