#include "drivers/mqtt/batched_ingest.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace hgj::drivers::mqtt {
namespace {

constexpr size_t kRxChunk = 64 * 1024;  ///< bytes asked of one read
constexpr size_t kMinRead = 4 * 1024;   ///< compact or renew the buffer below this much room
constexpr uint16_t kSubscribeId = 1;
constexpr int kConnectTimeoutMs = 5'000;
constexpr int kSendTimeoutMs = 10'000;
constexpr int64_t kStableSessionMs = 5'000;

std::string errnoText(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

} // namespace

BatchedIngest::BatchedIngest(MqttDriverConfig cfg, const model::Compound& compound, SampleSink& sink,
                       core::MetricsRegistry& metrics, const core::Clock& clock)
    : cfg_(std::move(cfg)), compound_(compound), sink_(sink), clock_(clock),
      received_(metrics.counter("hgj_mqtt_messages_received_total",
                                "messages received from the local broker")),
      reconnects_(metrics.counter("hgj_mqtt_connects_total",
                                  "successful connections to the local broker")),
      commands_(metrics.counter("hgj_mqtt_commands_published_total",
                                "write commands published to devices")),
      oversized_(metrics.counter("hgj_readings_dropped_total", "readings dropped, by reason",
                                 {{"reason", "oversized"}})),
      protocol_errors_(metrics.counter("hgj_mqtt_protocol_errors_total",
                                       "connections dropped for a malformed packet")) {
  metrics.gaugeFn("hgj_mqtt_connected", "1 while connected to the local broker",
                  [this] { return connected_.load() ? 1.0 : 0.0; });
}

BatchedIngest::~BatchedIngest() { stop(); }

void BatchedIngest::start() {
  if (running_.exchange(true)) {
    return;
  }
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "hgj-mqtt");
    run();
  });
}

void BatchedIngest::stop() {
  if (!running_.exchange(false)) {
    return;
  }
  {
    std::lock_guard lock(mu_);  // no lost wake-up between the backoff's check and its wait
  }
  cv_.notify_all();
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) {
    thread_.join();
  }
  ::close(wake_fd_);
  wake_fd_ = -1;
}

int64_t BatchedIngest::monoMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void BatchedIngest::setError(std::string e) {
  std::lock_guard lock(mu_);
  last_error_ = std::move(e);
}

void BatchedIngest::run() {
  std::mt19937_64 rng(std::random_device{}());
  int64_t backoff = cfg_.reconnect_min_ms;
  while (running_) {
    std::string error;
    if (connectSocket(error) && handshake(error)) {
      const int64_t began = monoMs();
      std::string why = session();
      bool was_connected = connected_.exchange(false);
      subscribed_ = false;
      if (!running_ || sink_closed_) {
        std::vector<uint8_t> bye;
        wire::appendDisconnect(bye);
        sendAll(bye.data(), bye.size());
        closeSocket();
        return;
      }
      closeSocket();
      if (was_connected) {
        spdlog::warn("mqtt: connection to {} lost: {}", cfg_.url, why);
      }
      setError("connection lost: " + why);
      // A session that ran a while reconnects at once; one that broke right away (a broker
      // that drops us on every connect) backs off like a failed connect.
      if (monoMs() - began >= kStableSessionMs) {
        backoff = cfg_.reconnect_min_ms;
        continue;
      }
    } else {
      closeSocket();
      if (!running_) {
        return;
      }
      setError(error);
      spdlog::warn("mqtt: cannot connect to {} ({}); retrying in {} ms", cfg_.url, error,
                   backoff);
    }
    // Full jitter keeps a compound's gateways (and our restarts) from reconnecting in lockstep.
    std::uniform_int_distribution<int64_t> jitter(backoff / 2, backoff);
    int64_t wait_ms = jitter(rng);
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] { return !running_.load(); });
    }
    backoff = std::min(backoff * 2, cfg_.reconnect_max_ms);
  }
}

bool BatchedIngest::connectSocket(std::string& error) {
  std::string host;
  std::string port;
  if (!parseBrokerUrl(cfg_.url, host, port)) {
    error = "not a tcp://HOST:PORT URL";
    return false;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    error = "resolve " + host + ": " + gai_strerror(rc);
    return false;
  }
  error = "no address for " + host;
  int fd = -1;
  for (addrinfo* ai = res; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      error = errnoText("socket");
      continue;
    }
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      error = errnoText("connect");
      ::close(fd);
      fd = -1;
      continue;
    }
    pollfd p[2] = {{fd, POLLOUT, 0}, {wake_fd_, POLLIN, 0}};
    int pr = ::poll(p, 2, kConnectTimeoutMs);
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (pr <= 0 || (p[0].revents & (POLLOUT | POLLERR | POLLHUP)) == 0) {
      error = pr == 0 ? "connect: timed out" : "connect: interrupted";
    } else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
      error = std::string("connect: ") + std::strerror(soerr);
    } else {
      break;
    }
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) {
    return false;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::lock_guard lock(write_mu_);
  fd_ = fd;
  return true;
}

bool BatchedIngest::sendAll(const uint8_t* data, size_t n) {
  std::lock_guard lock(write_mu_);
  if (fd_ < 0) {
    return false;
  }
  int64_t deadline = monoMs() + kSendTimeoutMs;
  while (n > 0) {
    ssize_t w = ::send(fd_, data, n, MSG_NOSIGNAL);
    if (w > 0) {
      data += w;
      n -= static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int left = static_cast<int>(deadline - monoMs());
      pollfd p{fd_, POLLOUT, 0};
      if (left > 0 && ::poll(&p, 1, left) >= 0) {
        continue;
      }
    }
    // A peer that takes nothing for 10 s, or a dead socket: the session ends on its next read.
    ::shutdown(fd_, SHUT_RDWR);
    return false;
  }
  last_tx_ms_ = monoMs();
  return true;
}

void BatchedIngest::closeSocket() {
  std::lock_guard lock(write_mu_);
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

bool BatchedIngest::handshake(std::string& error) {
  std::vector<uint8_t> out;
  wire::ConnectOptions co;
  co.client_id = cfg_.client_id;
  co.clean_session = false;
  co.keepalive_s = static_cast<uint16_t>(std::clamp(cfg_.keepalive_s, 0, 65535));
  co.username = cfg_.username;
  co.password = cfg_.password;
  wire::appendConnect(out, co);
  if (!sendAll(out.data(), out.size())) {
    error = "cannot send CONNECT";
    return false;
  }
  // The CONNACK is the first packet; a persistent session's messages may follow it in the same
  // read, so whatever else arrives stays buffered for the session.
  rx_ = std::make_shared<RxBuffer>(kRxChunk);
  rx_begin_ = rx_end_ = 0;
  skip_ = 0;
  int64_t deadline = monoMs() + 10'000;
  while (rx_end_ < 4) {
    int left = static_cast<int>(deadline - monoMs());
    pollfd p[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int pr = left > 0 ? ::poll(p, 2, left) : 0;
    if (!running_) {
      error = "stopping";
      return false;
    }
    if (pr <= 0) {
      error = "no CONNACK within 10 s";
      return false;
    }
    ssize_t r = ::recv(fd_, rx_->data.get() + rx_end_, rx_->cap - rx_end_, 0);
    if (r <= 0) {
      error = r == 0 ? "closed by the broker before CONNACK" : errnoText("recv");
      return false;
    }
    rx_end_ += static_cast<size_t>(r);
  }
  const uint8_t* b = rx_->data.get();
  if (b[0] != 0x20 || b[1] != 2) {
    error = "the broker answered CONNECT with something other than CONNACK";
    return false;
  }
  if (b[3] != 0) {
    error = "connection refused: " + wire::connackReason(b[3]);
    return false;
  }
  const bool session_present = (b[2] & 1) != 0;
  rx_begin_ = 4;
  connected_ = true;
  reconnects_.inc();
  spdlog::info("mqtt: connected to {} as {} ({})", cfg_.url, cfg_.client_id,
               session_present ? "session resumed" : "new session");
  // Subscribe on every connect: a broker that lost our session (no persistence) must still
  // deliver. With a kept session this is a harmless repeat.
  suback_seen_ = cfg_.subscriptions.empty();
  subscribed_ = suback_seen_;
  if (!cfg_.subscriptions.empty()) {
    out.clear();
    wire::appendSubscribe(out, kSubscribeId, cfg_.subscriptions, 1);
    if (!sendAll(out.data(), out.size())) {
      error = "cannot send SUBSCRIBE";
      connected_ = false;
      return false;
    }
  }
  {
    std::lock_guard lock(mu_);
    last_error_.clear();
  }
  return true;
}

void BatchedIngest::reserveRx(size_t need) {
  if (rx_->cap - rx_end_ >= std::max(need, kMinRead)) {
    return;
  }
  const size_t pending = rx_end_ - rx_begin_;
  const size_t cap = std::max(kRxChunk, pending + need);
  // Views into the handled part may still be queued: compact in place only when nobody else
  // holds the buffer (acquire pairs with the release of the last holder's decrement).
  if (rx_.use_count() == 1 && rx_->cap >= cap) {
    std::atomic_thread_fence(std::memory_order_acquire);
    std::memmove(rx_->data.get(), rx_->data.get() + rx_begin_, pending);
  } else {
    auto fresh = std::make_shared<RxBuffer>(cap);
    std::memcpy(fresh->data.get(), rx_->data.get() + rx_begin_, pending);
    rx_ = std::move(fresh);
  }
  rx_begin_ = 0;
  rx_end_ = pending;
}

bool BatchedIngest::handleBuffered(std::string& error) {
  const int64_t rx_ms = clock_.wallMs();
  uint64_t delivered = 0;
  bool malformed = false;
  bool ok = true;
  uint8_t* base = rx_->data.get();
  while (ok && rx_begin_ < rx_end_) {
    if (skip_ > 0) {
      size_t n = std::min(skip_, rx_end_ - rx_begin_);
      skip_ -= n;
      rx_begin_ += n;
      continue;
    }
    size_t body_len = 0;
    int hdr = wire::parseFixedHeader(base + rx_begin_, rx_end_ - rx_begin_, body_len);
    if (hdr < 0) {
      malformed = true;
      break;
    }
    if (hdr == 0) {
      break;
    }
    const size_t avail = rx_end_ - rx_begin_ - static_cast<size_t>(hdr);
    const uint8_t first = base[rx_begin_];
    const bool publish = (first >> 4) == static_cast<uint8_t>(wire::PacketType::kPublish);
    if (publish && static_cast<size_t>(hdr) + body_len > cfg_.max_packet_bytes) {
      // Too big to buffer: ack it (so it does not come back forever) and discard it as it
      // streams in. The topic and packet id come first; wait for them.
      const uint8_t* body = base + rx_begin_ + hdr;
      if (avail < 2) {
        break;
      }
      size_t tl = (static_cast<size_t>(body[0]) << 8) | body[1];
      int qos = (first >> 1) & 3;
      size_t head = 2 + tl + (qos > 0 ? 2 : 0);
      if (avail < head) {
        break;
      }
      wire::Packet p{first, body, head};
      if (qos == 1) {
        wire::appendAck(acks_, wire::PacketType::kPuback, p.packetId());
      } else if (qos == 2) {
        wire::appendAck(acks_, wire::PacketType::kPubrec, p.packetId());
      }
      oversized_.inc();
      drop_log_.warn("mqtt: dropped an oversized message on {} ({} bytes, over "
                     "mqtt.max_payload_bytes)",
                     std::string_view(reinterpret_cast<const char*>(body + 2), tl), body_len);
      skip_ = static_cast<size_t>(hdr) + body_len;
      continue;
    }
    if (avail < body_len) {
      break;
    }
    wire::Packet p{first, base + rx_begin_ + hdr, body_len};
    rx_begin_ += static_cast<size_t>(hdr) + body_len;
    switch (p.type()) {
    case wire::PacketType::kPublish: {
      if (!p.publishWellFormed()) {
        malformed = true;
        ok = false;
        break;
      }
      MqttMessage m;
      m.topic = p.publishTopic();
      m.payload = p.publishPayload();
      m.rx_ms = rx_ms;
      m.owner = rx_;
      ++delivered;
      if (!sink_.deliver(Sample(std::move(m)))) {
        sink_closed_ = true;  // the gateway is shutting down: no reconnect
        error = "stopping";
        ok = false;
        break;
      }
      if (p.publishQos() == 1) {
        wire::appendAck(acks_, wire::PacketType::kPuback, p.packetId());
      } else if (p.publishQos() == 2) {
        wire::appendAck(acks_, wire::PacketType::kPubrec, p.packetId());
      }
      break;
    }
    case wire::PacketType::kPubrel:
      wire::appendAck(acks_, wire::PacketType::kPubcomp, p.packetId());
      break;
    case wire::PacketType::kSuback:
      if (p.packetId() == kSubscribeId && !suback_seen_) {
        suback_seen_ = true;
        std::string refused;
        for (size_t i = 2; i < p.body_len && i - 2 < cfg_.subscriptions.size(); ++i) {
          if (p.body[i] == 0x80) {
            refused += (refused.empty() ? "" : ", ") + cfg_.subscriptions[i - 2];
          }
        }
        if (!refused.empty()) {
          spdlog::error("mqtt: the broker refused the subscriptions {} (check its ACL)", refused);
        }
        {
          std::lock_guard lock(mu_);
          refused_ = refused;
        }
        subscribed_ = true;
        spdlog::info("mqtt: subscribed to {} topic filters", cfg_.subscriptions.size());
      }
      break;
    case wire::PacketType::kPingresp:
      ping_sent_ms_ = -1;
      break;
    case wire::PacketType::kPuback:  // our commands' acks: the actuator confirms by read-back
    case wire::PacketType::kPubrec:
    case wire::PacketType::kPubcomp:
    case wire::PacketType::kUnsuback:
      if (p.type() == wire::PacketType::kPubrec) {
        wire::appendAck(acks_, wire::PacketType::kPubrel, p.packetId());
      }
      break;
    default:
      malformed = true;
      ok = false;
      break;
    }
  }
  received_.inc(delivered);
  if (malformed) {
    protocol_errors_.inc();
    error = "malformed packet from the broker";
    return false;
  }
  return ok;
}

std::string BatchedIngest::session() {
  acks_.clear();
  last_rx_ms_ = monoMs();
  ping_sent_ms_ = -1;
  const int64_t ka_ms = int64_t{cfg_.keepalive_s} * 1000;
  std::string error;
  // Messages that arrived together with the CONNACK.
  if (!handleBuffered(error)) {
    return error;
  }
  while (running_) {
    if (!acks_.empty()) {
      if (!sendAll(acks_.data(), acks_.size())) {
        return "cannot send acknowledgements";
      }
      acks_.clear();
    }
    const int64_t now = monoMs();
    int timeout = -1;
    if (ka_ms > 0) {
      if (ping_sent_ms_ < 0 && now - last_tx_ms_.load() >= ka_ms * 3 / 4) {
        std::vector<uint8_t> ping;
        wire::appendPingreq(ping);
        if (!sendAll(ping.data(), ping.size())) {
          return "cannot send PINGREQ";
        }
        ping_sent_ms_ = now;
      }
      if (ping_sent_ms_ >= 0 && now - ping_sent_ms_ >= ka_ms && now - last_rx_ms_ >= ka_ms) {
        return "no answer to PINGREQ within the keepalive";
      }
      int64_t next = ping_sent_ms_ >= 0 ? std::max(ping_sent_ms_, last_rx_ms_) + ka_ms
                                        : last_tx_ms_.load() + ka_ms * 3 / 4;
      timeout = static_cast<int>(std::clamp<int64_t>(next - now, 1, ka_ms));
    }
    pollfd p[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int pr = ::poll(p, 2, timeout);
    if (pr < 0 && errno != EINTR) {
      return errnoText("poll");
    }
    if (pr <= 0 || (p[0].revents & (POLLIN | POLLERR | POLLHUP)) == 0) {
      continue;
    }
    size_t need = kMinRead;
    if (skip_ == 0) {
      size_t body_len = 0;
      int hdr = wire::parseFixedHeader(rx_->data.get() + rx_begin_, rx_end_ - rx_begin_,
                                       body_len);
      if (hdr > 0) {
        size_t whole = static_cast<size_t>(hdr) + body_len;
        size_t have = rx_end_ - rx_begin_;
        // An oversized packet only needs its topic and packet id (at most 64 KiB) buffered.
        whole = std::min(whole, cfg_.max_packet_bytes);
        if (whole > have) {
          need = std::max(need, whole - have);
        }
      }
    }
    reserveRx(need);
    ssize_t r = ::recv(fd_, rx_->data.get() + rx_end_, rx_->cap - rx_end_, 0);
    if (r == 0) {
      return "closed by the broker";
    }
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        continue;
      }
      return errnoText("recv");
    }
    rx_end_ += static_cast<size_t>(r);
    last_rx_ms_ = monoMs();
    if (!handleBuffered(error)) {
      return error;
    }
    if (rx_begin_ == rx_end_ && rx_.use_count() == 1) {
      std::atomic_thread_fence(std::memory_order_acquire);
      rx_begin_ = rx_end_ = 0;  // everything handled and released: reuse from the start
    }
  }
  return "stopping";
}

void BatchedIngest::write(const WriteRequest& req) {
  CommandMessage cmd = commandMessage(compound_, req);
  if (!cmd.error.empty()) {
    reportWriteFailed(sink_, req, cmd.error, clock_.wallMs());
    return;
  }
  if (!connected_) {
    reportWriteFailed(sink_, req, "local broker not connected", clock_.wallMs());
    return;
  }
  if (!publishQos1(cmd)) {
    reportWriteFailed(sink_, req, "publish failed: local broker connection lost", clock_.wallMs());
    return;
  }
  commands_.inc();
}

void BatchedIngest::refresh(const RefreshRequest& req) {
  CommandMessage cmd = refreshMessage(compound_, req);
  if (!cmd.error.empty() || !connected_) {
    return;  // best effort: the rule waits for the device's next regular report
  }
  if (publishQos1(cmd)) {
    commands_.inc();
  }
}

bool BatchedIngest::publishQos1(const CommandMessage& cmd) {
  std::vector<uint8_t> out;
  uint16_t id = 0;
  {
    std::lock_guard lock(write_mu_);
    id = next_packet_id_;
    next_packet_id_ = next_packet_id_ == 0xFFFF ? 2 : static_cast<uint16_t>(next_packet_id_ + 1);
  }
  wire::appendPublish(out, cmd.topic, cmd.payload, 1, id);
  return sendAll(out.data(), out.size());
}

std::string BatchedIngest::health() const {
  std::lock_guard lock(mu_);
  if (connected_) {
    return refused_.empty() ? "ok" : "the broker refused the subscriptions " + refused_;
  }
  return "disconnected from " + cfg_.url + (last_error_.empty() ? "" : ": " + last_error_);
}

} // namespace hgj::drivers::mqtt
