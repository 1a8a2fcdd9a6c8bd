#pragma once

// A scripted MQTT broker for the MQTT client's conformance and hostile-broker tests: a TCP
// server on a free loopback port whose connections are played by test code (answer CONNECT,
// SUBSCRIBE, then send whatever bytes a case needs: malformed packets, huge declared lengths, one
// byte every few seconds). It records what the client sent and whether and when the client
// closed each connection. Header-only so that the unit, integration and faults programs can all
// use it without a build change.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace hgj::test {

/// One packet the client sent to the scripted broker.
struct ClientPacket {
  uint8_t first_byte = 0;
  std::vector<uint8_t> body;
  int type() const { return first_byte >> 4; }
  /// The packet id at the front of the body (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE).
  uint16_t id() const {
    return body.size() >= 2 ? static_cast<uint16_t>((body[0] << 8) | body[1]) : 0;
  }
};

/// Encodes MQTT bytes by hand, so that a case can break any field on purpose.
class Bytes {
public:
  Bytes& u8(uint8_t b) {
    v_.push_back(b);
    return *this;
  }
  Bytes& u16(uint16_t x) { return u8(static_cast<uint8_t>(x >> 8)).u8(static_cast<uint8_t>(x)); }
  /// A remaining length as MQTT encodes it (up to 4 bytes; larger values are encoded anyway,
  /// with more bytes, for the malformed cases).
  Bytes& varint(uint64_t n) {
    do {
      uint8_t b = n % 128;
      n /= 128;
      u8(n > 0 ? static_cast<uint8_t>(b | 0x80) : b);
    } while (n > 0);
    return *this;
  }
  Bytes& str(const std::string& s) {
    u16(static_cast<uint16_t>(s.size()));
    v_.insert(v_.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& raw(const std::string& s) {
    v_.insert(v_.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& raw(const std::vector<uint8_t>& s) {
    v_.insert(v_.end(), s.begin(), s.end());
    return *this;
  }
  /// A whole packet: first byte, remaining length of `body`, body.
  static std::vector<uint8_t> packet(uint8_t first, const Bytes& body) {
    Bytes b;
    b.u8(first).varint(body.v_.size()).raw(body.v_);
    return b.v_;
  }
  /// A well-formed PUBLISH.
  static std::vector<uint8_t> publish(const std::string& topic, const std::string& payload,
                                      int qos, uint16_t id, bool dup = false, bool retain = false) {
    Bytes body;
    body.str(topic);
    if (qos > 0) {
      body.u16(id);
    }
    body.raw(payload);
    return packet(static_cast<uint8_t>(0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 1 : 0)),
                  body);
  }
  const std::vector<uint8_t>& vec() const { return v_; }
  operator const std::vector<uint8_t>&() const { return v_; }  // NOLINT: a builder

private:
  std::vector<uint8_t> v_;
};

/// One accepted connection, played by a script on the broker's thread.
class ScriptedConn {
public:
  ScriptedConn(int fd, const std::atomic<bool>& stopping) : fd_(fd), stopping_(stopping) {}

  /// The next whole packet from the client, or nothing on timeout or when the client closed.
  std::optional<ClientPacket> read(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (auto p = takeBuffered()) {
        return p;
      }
      if (closed_ || !fill(deadline)) {
        return std::nullopt;
      }
    }
  }

  /// Reads until a packet of `type` (others are kept in received()).
  std::optional<ClientPacket> expect(int type, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (auto p = read(remaining(deadline))) {
      if (p->type() == type) {
        return p;
      }
    }
    return std::nullopt;
  }

  /// CONNECT -> CONNACK (accepted, no session), SUBSCRIBE -> SUBACK granting QoS 1 to each
  /// filter. False when the client did not get that far.
  bool handshake(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (!expect(1, timeout)) {
      return false;
    }
    send(std::vector<uint8_t>{0x20, 2, 0, 0});
    auto sub = expect(8, timeout);
    if (!sub) {
      return false;
    }
    Bytes body;
    body.u16(sub->id());
    for (size_t i = 0; i < filterCount(*sub); ++i) {
      body.u8(1);
    }
    send(Bytes::packet(0x90, body));
    return true;
  }

  /// Writes everything (blocking, in bounded waits); false once the client closed or stop().
  bool send(const std::vector<uint8_t>& bytes) { return send(bytes.data(), bytes.size()); }
  bool send(const uint8_t* data, size_t n) {
    while (n > 0) {
      if (stopping_) {
        return false;
      }
      ssize_t w = ::send(fd_, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        data += w;
        n -= static_cast<size_t>(w);
        sent_ += static_cast<uint64_t>(w);
        continue;
      }
      if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
        pollfd p{fd_, POLLOUT, 0};
        ::poll(&p, 1, 50);
        continue;
      }
      closed_ = true;
      return false;
    }
    return true;
  }

  /// Sends `total` bytes of filler (e.g. the body of a packet declaring a huge length) as fast as
  /// the client takes them; false once the client closed.
  bool stream(uint64_t total, uint8_t fill = 'x') {
    std::vector<uint8_t> chunk(64 * 1024, fill);
    while (total > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(total, chunk.size()));
      if (!send(chunk.data(), n)) {
        return false;
      }
      total -= n;
    }
    return true;
  }

  /// One byte of `bytes` every `interval`, until all are sent or the client closed (false).
  bool drip(const std::vector<uint8_t>& bytes, std::chrono::milliseconds interval) {
    for (uint8_t b : bytes) {
      if (!send(&b, 1) || waitClosed(interval)) {
        return false;
      }
    }
    return true;
  }

  /// Reads (and keeps) whatever the client sends until it closes the connection: true if it
  /// did within `timeout`.
  bool waitClosed(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!closed_ && std::chrono::steady_clock::now() < deadline && !stopping_) {
      fill(deadline);
      while (takeBuffered()) {
      }
    }
    return closed_;
  }

  bool closedByClient() const { return closed_; }
  uint64_t bytesSent() const { return sent_; }
  /// Every packet read so far (also those consumed by expect()).
  const std::vector<ClientPacket>& received() const { return received_; }
  /// Of type `type`.
  std::vector<ClientPacket> received(int type) const {
    std::vector<ClientPacket> out;
    for (const auto& p : received_) {
      if (p.type() == type) {
        out.push_back(p);
      }
    }
    return out;
  }
  int fd() const { return fd_; }

private:
  static std::chrono::milliseconds remaining(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return std::max(left, std::chrono::milliseconds(0));
  }

  static size_t filterCount(const ClientPacket& sub) {
    size_t n = 0;
    for (size_t i = 2; i + 2 <= sub.body.size();) {
      size_t len = static_cast<size_t>((sub.body[i] << 8) | sub.body[i + 1]);
      i += 2 + len + 1;
      ++n;
    }
    return n;
  }

  // Reads what is there (waiting until `deadline`); false on timeout, close or stop.
  bool fill(std::chrono::steady_clock::time_point deadline) {
    while (!stopping_) {
      int wait = static_cast<int>(std::min<int64_t>(remaining(deadline).count(), 50));
      pollfd p{fd_, POLLIN, 0};
      int pr = ::poll(&p, 1, wait);
      if (pr > 0) {
        uint8_t buf[16 * 1024];
        ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
        if (r <= 0) {
          closed_ = true;
          return false;
        }
        rx_.insert(rx_.end(), buf, buf + r);
        return true;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return false;
      }
    }
    return false;
  }

  std::optional<ClientPacket> takeBuffered() {
    if (rx_.size() < 2) {
      return std::nullopt;
    }
    size_t len = 0;
    size_t mul = 1;
    size_t i = 1;
    for (; i < rx_.size() && i <= 4; ++i) {
      len += (rx_[i] & 0x7Fu) * mul;
      mul *= 128;
      if ((rx_[i] & 0x80) == 0) {
        break;
      }
    }
    if (i >= rx_.size() || rx_.size() < i + 1 + len) {
      return std::nullopt;
    }
    ClientPacket p;
    p.first_byte = rx_[0];
    p.body.assign(rx_.begin() + static_cast<long>(i + 1),
                  rx_.begin() + static_cast<long>(i + 1 + len));
    rx_.erase(rx_.begin(), rx_.begin() + static_cast<long>(i + 1 + len));
    received_.push_back(p);
    return p;
  }

  int fd_;
  const std::atomic<bool>& stopping_;
  std::vector<uint8_t> rx_;
  std::vector<ClientPacket> received_;
  bool closed_ = false;
  uint64_t sent_ = 0;
};

/// The broker: accepts on 127.0.0.1 (a free port), and plays connection number n (from 0) with
/// `script(conn, n)` on its own thread, one connection at a time (the client under test opens
/// the next one only after the previous one ended). After the script returns, the connection is
/// read until the client closes it or the broker stops. What each connection saw stays readable
/// through the accessors (thread-safe).
class ScriptedBroker {
public:
  using Script = std::function<void(ScriptedConn& conn, int index)>;

  struct ConnRecord {
    bool closed_by_client = false;
    uint64_t bytes_sent = 0;
    std::vector<ClientPacket> received;
    /// The received packets of `type`.
    std::vector<ClientPacket> of(int type) const {
      std::vector<ClientPacket> out;
      for (const auto& p : received) {
        if (p.type() == type) {
          out.push_back(p);
        }
      }
      return out;
    }
  };

  explicit ScriptedBroker(Script script, int rcvbuf = 0) : script_(std::move(script)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (rcvbuf > 0) {
      // Inherited by accepted sockets: a small window makes a broker that stops reading stall
      // the client's writes quickly.
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 8) != 0) {
      ::close(fd_);
      throw std::runtime_error("scripted broker: cannot listen on a loopback port");
    }
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~ScriptedBroker() { stop(); }
  ScriptedBroker(const ScriptedBroker&) = delete;
  ScriptedBroker& operator=(const ScriptedBroker&) = delete;

  void stop() {
    stopping_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

  int port() const { return port_; }
  std::string url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_; }
  /// Connections the client closed (read EOF or a reset).
  int closedByClient() const {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const auto& r : records_) {
      n += r.closed_by_client ? 1 : 0;
    }
    return n;
  }
  /// What connection `index` saw, once its script and its drain ended.
  std::optional<ConnRecord> record(int index) const {
    std::lock_guard lock(mu_);
    if (index < 0 || static_cast<size_t>(index) >= records_.size()) {
      return std::nullopt;
    }
    return records_[static_cast<size_t>(index)];
  }
  /// True once connection `index` ended (script done and the client closed it).
  bool ended(int index) const {
    std::lock_guard lock(mu_);
    return static_cast<size_t>(index) < records_.size();
  }

private:
  void run() {
    int index = 0;
    while (!stopping_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) {
        continue;
      }
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        continue;
      }
      int one = 1;
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ++accepted_;
      ScriptedConn conn(c, stopping_);
      script_(conn, index);
      // Whatever the script left: wait for the client to hang up (or the test to end).
      while (!conn.closedByClient() && !stopping_) {
        conn.waitClosed(std::chrono::milliseconds(50));
      }
      {
        std::lock_guard lock(mu_);
        records_.push_back({conn.closedByClient(), conn.bytesSent(), conn.received()});
      }
      ::close(c);
      ++index;
    }
  }

  Script script_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  mutable std::mutex mu_;
  std::vector<ConnRecord> records_;  // guarded by mu_
};

/// Publishes `payloads` to `topic` at QoS 0 on a loopback broker over a raw socket of its own
/// (CONNECT, PUBLISH..., DISCONNECT): a publisher that shares no client library, and so no lock,
/// with the client under test. False when the broker did not accept the connection.
inline bool rawPublish(int port, const std::string& topic,
                       const std::vector<std::string>& payloads) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return false;
  }
  std::atomic<bool> never{false};
  ScriptedConn c(fd, never);
  Bytes connect;
  connect.str("MQTT").u8(4).u8(0x02).u16(30).str("raw-publisher");
  bool ok = c.send(Bytes::packet(0x10, connect));
  // The CONNACK, as the client's packets are read by the same scanner.
  pollfd p{fd, POLLIN, 0};
  uint8_t connack[4] = {};
  ok = ok && ::poll(&p, 1, 5000) == 1 && ::recv(fd, connack, 4, MSG_WAITALL) == 4 &&
       connack[0] == 0x20 && connack[3] == 0;
  for (const auto& payload : payloads) {
    ok = ok && c.send(Bytes::publish(topic, payload, 0, 0));
  }
  ok = ok && c.send(std::vector<uint8_t>{0xE0, 0});
  ::close(fd);
  return ok;
}

/// Subscribes to `filter` (QoS 0) on a loopback broker over a raw socket of its own and keeps
/// what arrives: a subscriber that shares no client library with the client under test.
class RawSubscriber {
public:
  RawSubscriber(int port, const std::string& filter) {
    thread_ = std::thread([this, port, filter] { run(port, filter); });
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return ready_ || failed_; });
    if (!ready_) {
      throw std::runtime_error("raw subscriber: no SUBACK from the broker");
    }
  }
  ~RawSubscriber() {
    stop_ = true;
    thread_.join();
  }
  RawSubscriber(const RawSubscriber&) = delete;
  RawSubscriber& operator=(const RawSubscriber&) = delete;

  /// (topic, payload) of every PUBLISH received so far.
  std::vector<std::pair<std::string, std::string>> messages() const {
    std::lock_guard lock(mu_);
    return messages_;
  }
  size_t count() const {
    std::lock_guard lock(mu_);
    return messages_.size();
  }

private:
  void run(int port, const std::string& filter) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ScriptedConn c(fd, stop_);
    Bytes connect;
    connect.str("MQTT").u8(4).u8(0x02).u16(60).str("raw-subscriber");
    ok = ok && c.send(Bytes::packet(0x10, connect)) && c.expect(2, std::chrono::seconds(5));
    ok = ok && c.send(Bytes::packet(0x82, Bytes().u16(1).str(filter).u8(0))) &&
         c.expect(9, std::chrono::seconds(5));
    {
      std::lock_guard lock(mu_);
      (ok ? ready_ : failed_) = true;
    }
    cv_.notify_all();
    while (ok && !stop_) {
      auto p = c.read(std::chrono::milliseconds(50));
      if (!p) {
        ok = !c.closedByClient();
        continue;
      }
      if (p->type() == 3 && p->body.size() >= 2) {
        size_t tl = static_cast<size_t>((p->body[0] << 8) | p->body[1]);
        size_t head = 2 + tl + (((p->first_byte >> 1) & 3) > 0 ? 2 : 0);
        if (head <= p->body.size()) {
          std::lock_guard lock(mu_);
          auto begin = p->body.begin();
          messages_.emplace_back(std::string(begin + 2, begin + 2 + static_cast<long>(tl)),
                                 std::string(begin + static_cast<long>(head), p->body.end()));
        }
      }
    }
    ::close(fd);
  }

  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;   // guarded by mu_
  bool failed_ = false;  // guarded by mu_
  std::vector<std::pair<std::string, std::string>> messages_;  // guarded by mu_
};

} // namespace hgj::test
