#pragma once

// Scripted hostile HTTP clients for the API's abuse tests (tests/integration/api and the daemon
// level tests of tests/faults/http). Header-only so both test programs share it. Every target is
// a loopback address; every loop is bounded in count and time.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace hgj::test::hostile {

using Clock = std::chrono::steady_clock;

/// A blocking TCP connection to `ip:port` from the local address `source` (another loopback
/// address plays another client host), or -1.
inline int connectTo(int port, const std::string& ip = "127.0.0.1",
                     const std::string& source = {}) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  if (!source.empty()) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, source.c_str(), &local.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
      ::close(fd);
      return -1;
    }
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

/// Sends everything or fails (peer closed or reset). Never raises SIGPIPE.
inline bool sendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

/// Whether the peer has closed the connection (EOF or reset) within `wait`; data the server sent
/// is read and discarded on the way.
inline bool peerClosed(int fd, std::chrono::milliseconds wait) {
  auto deadline = Clock::now() + wait;
  char buf[4096];
  do {
    pollfd p{fd, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    int r = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (r > 0) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        return true;
      }
    }
  } while (Clock::now() < deadline);
  return false;
}

/// Reads until the server closes or `wait` passes; returns what arrived.
inline std::string readAvailable(int fd, std::chrono::milliseconds wait, size_t max = 1 << 20) {
  std::string out;
  auto deadline = Clock::now() + wait;
  char buf[8192];
  while (out.size() < max) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      break;
    }
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

/// The status code of the first response line in `text` ("HTTP/1.1 413 ..."), or 0.
inline int statusOf(const std::string& text) {
  if (text.rfind("HTTP/1.", 0) != 0 || text.size() < 12) {
    return 0;
  }
  return std::atoi(text.c_str() + 9);
}

/// One request on a fresh connection; the status (0: no answer before `wait`, -1: no
/// connection) and the time from connect to the end of the status line.
struct Timed {
  int status = -1;
  std::chrono::microseconds elapsed{0};
  std::string response;
};
inline Timed timedRequest(int port, const std::string& request,
                          std::chrono::milliseconds wait = std::chrono::seconds(10),
                          const std::string& source = {}) {
  Timed t;
  auto start = Clock::now();
  int fd = connectTo(port, "127.0.0.1", source);
  if (fd < 0) {
    return t;
  }
  t.status = 0;
  if (sendAll(fd, request)) {
    auto deadline = start + wait;
    char buf[8192];
    while (Clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(1, left.count()))) <= 0) {
        continue;
      }
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        break;
      }
      t.response.append(buf, static_cast<size_t>(n));
      if (t.status == 0 && t.response.find("\r\n") != std::string::npos) {
        t.status = statusOf(t.response);
        t.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
      }
      if (t.response.find("\r\n\r\n") != std::string::npos) {
        break;
      }
    }
  }
  ::close(fd);
  return t;
}

inline std::string getRequest(const std::string& path, const std::string& extra_headers = {}) {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + extra_headers +
         "\r\n";
}

/// Result of sending a big body.
struct BodyResult {
  int status = 0;          ///< the server's answer (0: none)
  bool closed = false;     ///< the server closed the connection
  size_t sent_bytes = 0;   ///< body bytes the server took before it answered or closed
};

/// Sends a request whose body is `total` bytes (chunked when `chunked`, else with a
/// Content-Length), in 64 KiB pieces, stopping as soon as the server answers or closes. Bounded by
/// `total` and `wait`.
inline BodyResult bigBody(int port, const std::string& method, const std::string& path,
                          size_t total, bool chunked, const std::string& extra_headers = {},
                          std::chrono::milliseconds wait = std::chrono::seconds(30)) {
  BodyResult r;
  int fd = connectTo(port);
  if (fd < 0) {
    r.closed = true;
    return r;
  }
  std::string head = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers +
                     "Content-Type: application/json\r\n" +
                     (chunked ? std::string("Transfer-Encoding: chunked\r\n")
                              : "Content-Length: " + std::to_string(total) + "\r\n") +
                     "\r\n";
  std::string answer;
  auto deadline = Clock::now() + wait;
  auto poll_answer = [&](int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) > 0) {
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) {
        answer.append(buf, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        r.closed = true;
      }
    }
    return r.closed || answer.find("\r\n") != std::string::npos;
  };
  bool ok = sendAll(fd, head);
  const std::string piece(64 * 1024, 'x');
  char size_line[32];
  std::snprintf(size_line, sizeof(size_line), "%zx\r\n", piece.size());
  while (ok && r.sent_bytes < total && Clock::now() < deadline) {
    if (poll_answer(0)) {
      break;
    }
    size_t n = std::min(piece.size(), total - r.sent_bytes);
    std::string data = chunked ? (n == piece.size() ? std::string(size_line) : [&] {
      char l[32];
      std::snprintf(l, sizeof(l), "%zx\r\n", n);
      return std::string(l);
    }()) + piece.substr(0, n) + "\r\n"
                               : piece.substr(0, n);
    // Non-blocking so that a server that stopped reading cannot hang the test.
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 1000) <= 0) {
      continue;
    }
    ok = sendAll(fd, data);
    if (ok) {
      r.sent_bytes += n;
    }
  }
  if (ok && chunked && r.sent_bytes >= total) {
    ok = sendAll(fd, "0\r\n\r\n");
  }
  while (!r.closed && answer.find("\r\n") == std::string::npos && Clock::now() < deadline) {
    poll_answer(100);
  }
  if (!ok) {
    r.closed = true;
  }
  r.status = statusOf(answer);
  ::close(fd);
  return r;
}

/// Resident memory of a process in bytes (VmRSS), 0 when unknown.
inline size_t rssOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return static_cast<size_t>(std::atoll(line.c_str() + 6)) * 1024;
    }
  }
  return 0;
}

/// Clients that open connections and then send nothing (`idle`), or one header byte per
/// `interval` and never finish the header (slow). They run until stop() or destruction; `closed`
/// counts connections the server has closed.
class ConnectionFlood {
public:
  ConnectionFlood(int port, int idle, int slow, std::chrono::milliseconds interval,
                  const std::string& source = {})
      : interval_(interval) {
    for (int i = 0; i < idle + slow; ++i) {
      int fd = connectTo(port, "127.0.0.1", source);
      if (fd < 0) {
        ++failed_;
        continue;
      }
      ::fcntl(fd, F_SETFL, O_NONBLOCK);
      (i < idle ? idle_ : slow_).push_back(fd);
    }
    thread_ = std::thread([this] { run(); });
  }
  ~ConnectionFlood() { stop(); }
  void stop() {
    if (thread_.joinable()) {
      stop_ = true;
      thread_.join();
    }
    for (int fd : idle_) {
      ::close(fd);
    }
    for (int fd : slow_) {
      ::close(fd);
    }
    idle_.clear();
    slow_.clear();
  }
  int opened() const { return static_cast<int>(idle_.size() + slow_.size()); }
  int failed() const { return failed_; }
  /// Connections the server closed so far (idle and slow).
  int closed() const { return closed_.load(); }
  int slowClosed() const { return slow_closed_.load(); }

private:
  void run() {
    const std::string header = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    std::vector<size_t> pos(slow_.size(), 0);
    std::vector<bool> gone(idle_.size() + slow_.size(), false);
    auto next = Clock::now();
    while (!stop_) {
      if (Clock::now() >= next) {
        next += interval_;
        for (size_t i = 0; i < slow_.size(); ++i) {
          if (gone[idle_.size() + i]) {
            continue;
          }
          // The header never ends: after the prefix, one 'a' per step.
          char c = pos[i] < header.size() ? header[pos[i]] : 'a';
          ++pos[i];
          ::send(slow_[i], &c, 1, MSG_NOSIGNAL);
        }
      }
      for (size_t i = 0; i < idle_.size() + slow_.size(); ++i) {
        if (gone[i]) {
          continue;
        }
        int fd = i < idle_.size() ? idle_[i] : slow_[i - idle_.size()];
        char buf[512];
        ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
          gone[i] = true;
          ++closed_;
          if (i >= idle_.size()) {
            ++slow_closed_;
          }
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20)); // pacing, not synchronisation
    }
  }

  std::chrono::milliseconds interval_;
  std::vector<int> idle_;
  std::vector<int> slow_;
  int failed_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> closed_{0};
  std::atomic<int> slow_closed_{0};
  std::thread thread_;
};

} // namespace hgj::test::hostile
