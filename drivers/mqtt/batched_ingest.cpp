#include "drivers/mqtt/batched_ingest.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "core/backoff.h"
#include "core/thread_name.h"

namespace hgj::drivers::mqtt {
namespace {

constexpr int kConnectTimeoutMs = 5'000;
/// The longest one wait of the thread: it beats its heartbeat at least this often.
constexpr int kStepMs = 500;
/// The longest one wait for room in the pipeline queue.
constexpr std::chrono::milliseconds kDeliverStep{250};
/// A connection that ran this long without a violation resets the reconnect backoff.
constexpr int64_t kStableSessionMs = 5'000;
/// Output beyond which the thread stops reading and stops taking commands (a broker that does
/// not read; the session's send timeout ends it).
constexpr size_t kMaxOutput = 256 * 1024;

std::string errnoText(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

SessionOptions sessionOptions(const MqttConfig& cfg, std::vector<std::string> subscriptions) {
  SessionOptions o;
  o.client_id = cfg.client_id;
  o.username = cfg.username;
  o.password = cfg.password;
  o.keepalive_s = cfg.keepalive_s;
  o.subscriptions = std::move(subscriptions);
  o.max_publish_bytes = cfg.maxPublishBytes();
  o.packet_timeout_ms = cfg.packet_timeout_ms;
  return o;
}

} // namespace

/// Turns what the session reports into counters and logs (session thread).
class BatchedIngest::Observer final : public SessionObserver {
public:
  explicit Observer(BatchedIngest& in) : in_(in) {}
  void onOversized(std::string_view topic, size_t bytes) override {
    in_.oversized_.inc();
    in_.drop_log_.warn("mqtt: dropped an oversized message on {} ({} bytes, over "
                       "mqtt.max_payload_bytes)",
                       core::printable(topic), bytes);
  }
  void onDuplicate(uint16_t) override { in_.duplicates_.inc(); }
  void onSubscribed(const std::vector<std::string>& refused) override {
    std::string list;
    for (const auto& f : refused) {
      list += (list.empty() ? "" : ", ") + f;
    }
    if (!list.empty()) {
      spdlog::error("mqtt: the broker refused the subscriptions {} (check its ACL)",
                    core::printable(list));
    }
    {
      std::lock_guard lock(in_.mu_);
      in_.refused_ = list;
    }
    in_.subscribed_ = true;
    spdlog::info("mqtt: subscribed to {} topic filters", in_.filter_count_);
  }

private:
  BatchedIngest& in_;
};

BatchedIngest::BatchedIngest(MqttConfig cfg, std::vector<std::string> subscriptions,
                             const model::Compound& compound, SampleSink& sink,
                             core::MetricsRegistry& metrics, const core::Clock& clock)
    : MqttIngest(metrics), cfg_(std::move(cfg)), compound_(compound), sink_(sink), clock_(clock),
      oversized_(metrics.counter("hgj_readings_dropped_total", "readings dropped, by reason",
                                 {{"reason", "oversized"}})),
      duplicates_(metrics.counter("hgj_mqtt_duplicates_total",
                                  "QoS 2 messages received again before their PUBREL, not "
                                  "delivered twice")),
      observer_(std::make_unique<Observer>(*this)), filter_count_(subscriptions.size()),
      commands_queue_(cfg_.command_queue),
      session_(sessionOptions(cfg_, std::move(subscriptions)), observer_.get()) {
  for (uint8_t v = 1; v < violations_.size(); ++v) {
    violations_[v] = &metrics.counter(
        "hgj_mqtt_protocol_errors_total",
        "connections to the local broker closed for a protocol violation, by reason",
        {{"reason", wire::label(static_cast<wire::Violation>(v))}});
  }
  commands_queue_.setWake([this] {
    uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  });
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

BatchedIngest::~BatchedIngest() {
  stop();
  ::close(wake_fd_);
}

void BatchedIngest::start() {
  if (running_.exchange(true)) {
    return;
  }
  joinLiveness();
  thread_ = std::thread([this] {
    core::nameThisThread("hgj-mqtt");
    run();
  });
}

void BatchedIngest::stop() {
  if (!running_.exchange(false)) {
    return;
  }
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) {
    thread_.join();
  }
  commands_failed_.inc(commands_queue_.failAll(sink_, "the gateway is stopping", clock_.wallMs()));
  leaveLiveness();
}

void BatchedIngest::beat() {
  if (heartbeat_ != nullptr) {
    heartbeat_->beat();
  }
}

void BatchedIngest::setError(std::string e) {
  std::lock_guard lock(mu_);
  last_error_ = std::move(e);
}

void BatchedIngest::drainWake() {
  uint64_t n = 0;
  (void)!::read(wake_fd_, &n, sizeof n);
}

void BatchedIngest::write(const WriteRequest& req) {
  if (!commands_queue_.offerWrite(req, sink_, clock_.wallMs())) {
    commands_failed_.inc();
  }
}

void BatchedIngest::refresh(const RefreshRequest& req) { (void)commands_queue_.push(req); }

void BatchedIngest::run() {
  core::Backoff backoff(std::chrono::milliseconds(cfg_.reconnect_min_ms),
                        std::chrono::milliseconds(cfg_.reconnect_max_ms));
  while (running_) {
    beat();
    std::string error;
    if (connectSocket(error)) {
      const int64_t began = nowMs();
      std::string why = runConnection();
      was_connected_ = false;
      connected_ = false;
      subscribed_ = false;
      stuck_since_ms_ = -1;
      const wire::Violation violation = session_.violation();
      if (!running_ || sink_closed_) {
        session_.disconnect();
        flush();
        failUnsent("the gateway is stopping");
        closeSocket();
        return;
      }
      failUnsent(why);
      closeSocket();
      if (violation != wire::Violation::kNone) {
        violations_[static_cast<size_t>(violation)]->inc();
        violation_log_.warn("mqtt: closed the connection to {}: {}; reconnecting within {} ms",
                            cfg_.url, why, backoff.ceilingMs());
      } else {
        spdlog::warn("mqtt: connection to {} ended: {}", cfg_.url, why);
        if (nowMs() - began >= kStableSessionMs && !session_.refused()) {
          backoff.reset();
        }
      }
      setError("connection lost: " + why);
    } else {
      closeSocket();
      if (!running_) {
        return;
      }
      setError(error);
      spdlog::warn("mqtt: cannot connect to {} ({}); retrying within {} ms", cfg_.url, error,
                   backoff.ceilingMs());
    }
    waitBackoff(backoff.next());
  }
}

void BatchedIngest::waitBackoff(std::chrono::milliseconds delay) {
  const auto until = std::chrono::steady_clock::now() + delay;
  while (running_) {
    beat();
    serveCommands();  // not connected: each write is reported failed at once
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return;
    }
    pollfd p{wake_fd_, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), kStepMs)));
    drainWake();
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
  for (addrinfo* ai = res; ai != nullptr && fd < 0 && running_; ai = ai->ai_next) {
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
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kConnectTimeoutMs);
    bool done = false;
    while (running_ && !done) {
      beat();
      serveCommands();
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        break;
      }
      pollfd p[2] = {{fd, POLLOUT, 0}, {wake_fd_, POLLIN, 0}};
      ::poll(p, 2, static_cast<int>(std::min<int64_t>(left.count(), kStepMs)));
      drainWake();
      done = (p[0].revents & (POLLOUT | POLLERR | POLLHUP)) != 0;
    }
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (!done) {
      error = running_ ? "connect: timed out" : "stopping";
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
  fd_ = fd;
  return true;
}

void BatchedIngest::closeSocket() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

std::string BatchedIngest::runConnection() {
  session_.open(nowMs());
  while (running_) {
    beat();
    MqttMessage m;
    uint64_t delivered = 0;
    while (session_.nextMessage(m, nowMs(), clock_.wallMs())) {
      if (hand(std::move(m), !session_.hasBufferedInput()) == Handed::kStopping) {
        received_.inc(delivered);
        return "stopping";
      }
      session_.messageTaken(nowMs());
      ++delivered;
    }
    received_.inc(delivered);
    if (session_.connected() && !was_connected_) {
      was_connected_ = true;
      connected_ = true;
      reconnects_.inc();
      setError("");
      spdlog::info("mqtt: connected to {} as {} ({})", cfg_.url, cfg_.client_id,
                   session_.sessionPresent() ? "session resumed" : "new session");
    }
    serveCommands();
    const int64_t deadline = session_.tick(nowMs());
    if (!flush()) {
      session_.closeTransport(errnoText("send"));
    }
    publishState();
    if (session_.closed()) {
      return session_.closeReason();
    }
    int timeout = kStepMs;
    if (deadline >= 0) {
      timeout = static_cast<int>(std::clamp<int64_t>(deadline - nowMs(), 0, kStepMs));
    }
    const bool want_read = session_.outputSize() < kMaxOutput;
    pollfd p[2] = {{fd_,
                    static_cast<short>((want_read ? POLLIN : 0) |
                                       (session_.outputSize() > 0 ? POLLOUT : 0)),
                    0},
                   {wake_fd_, POLLIN, 0}};
    if (::poll(p, 2, timeout) < 0 && errno != EINTR) {
      return errnoText("poll");
    }
    if ((p[1].revents & POLLIN) != 0) {
      drainWake();
    }
    if (want_read && (p[0].revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
      auto [buf, room] = session_.readBuffer();
      const ssize_t r = ::recv(fd_, buf, room, 0);
      if (r == 0) {
        session_.closeTransport("closed by the broker");
      } else if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        session_.closeTransport(errnoText("recv"));
      } else if (r > 0) {
        session_.received(static_cast<size_t>(r), nowMs());
      }
      if (session_.closed()) {
        return session_.closeReason();
      }
    }
  }
  return "stopping";
}

BatchedIngest::Handed BatchedIngest::hand(MqttMessage&& message, bool last_of_read) {
  Sample sample(std::move(message));
  // A message on its own (the usual case at the rates devices send) is handled right here when
  // the pipeline is idle: one thread woken per message instead of two. A burst goes through
  // the queue, where the pipeline thread batches it while this thread keeps reading.
  if (last_of_read && sink_.handleNow(sample)) {
    return Handed::kTaken;
  }
  while (true) {
    switch (sink_.deliverFor(sample, kDeliverStep)) {
    case SampleSink::Delivery::kTaken:
      return Handed::kTaken;
    case SampleSink::Delivery::kClosed:
      sink_closed_ = true;  // the gateway is shutting down: no reconnect
      return Handed::kStopping;
    case SampleSink::Delivery::kFull:
      break;
    }
    // The pipeline is behind. Nothing is read meanwhile (the broker keeps what is unacked), but
    // commands still go out and the keepalive still runs.
    beat();
    if (!running_) {
      return Handed::kStopping;
    }
    drainWake();
    serveCommands();
    session_.tick(nowMs());
    if (!flush()) {
      session_.closeTransport(errnoText("send"));
    }
    publishState();
  }
}

void BatchedIngest::serveCommands() {
  Command command;
  while (!session_.connected() || session_.outputSize() < kMaxOutput) {
    if (!commands_queue_.tryPop(command)) {
      return;
    }
    if (auto* req = std::get_if<WriteRequest>(&command)) {
      CommandMessage msg = commandMessage(compound_, *req);
      if (!msg.error.empty()) {
        commands_failed_.inc();
        reportWriteFailed(sink_, *req, msg.error, clock_.wallMs());
      } else if (!session_.connected()) {
        commands_failed_.inc();
        reportWriteFailed(sink_, *req, "local broker not connected", clock_.wallMs());
      } else {
        session_.publish(msg.topic, msg.payload);
        unsent_.push_back({session_.queuedTotal(), *req});
        commands_.inc();
      }
    } else if (session_.connected()) {
      // A refresh is best effort: without a connection the rule waits for the next report.
      CommandMessage msg = refreshMessage(compound_, std::get<RefreshRequest>(command));
      if (msg.error.empty()) {
        session_.publish(msg.topic, msg.payload);
        commands_.inc();
      }
    }
  }
}

bool BatchedIngest::flush() {
  bool ok = true;
  while (fd_ >= 0 && session_.outputSize() > 0) {
    const ssize_t w =
        ::send(fd_, session_.output(), session_.outputSize(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      session_.sent(static_cast<size_t>(w), nowMs());
      continue;
    }
    if (w < 0 && errno == EINTR) {
      continue;
    }
    ok = w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    break;
  }
  while (!unsent_.empty() && unsent_.front().end <= session_.sentTotal()) {
    unsent_.pop_front();
  }
  return ok;
}

void BatchedIngest::failUnsent(const std::string& why) {
  for (const auto& u : unsent_) {
    commands_failed_.inc();
    reportWriteFailed(sink_, u.request, "connection lost before the command was sent (" + why + ")",
                      clock_.wallMs());
  }
  unsent_.clear();
}

void BatchedIngest::publishState() {
  const int64_t now = nowMs();
  const int64_t stuck = session_.stuckMs(now);
  if (stuck > 0 && session_.connected()) {
    stuck_received_ = session_.stuckReceived();
    stuck_declared_ = session_.stuckDeclared();
    stuck_since_ms_ = now - stuck;
  } else {
    stuck_since_ms_ = -1;
  }
}

std::string BatchedIngest::health() const {
  std::lock_guard lock(mu_);
  if (!connected_) {
    return "disconnected from " + cfg_.url + (last_error_.empty() ? "" : ": " + last_error_);
  }
  // Between a second and the packet timeout, a packet still arriving is worth saying: no
  // message can pass it, and a broker dripping bytes looks exactly like this.
  const int64_t since = stuck_since_ms_.load();
  const int64_t after = std::min<int64_t>(1'000, cfg_.packet_timeout_ms / 2);
  if (since >= 0 && nowMs() - since >= after) {
    const uint64_t declared = stuck_declared_.load();
    return "degraded: one packet from the broker has been arriving for " +
           std::to_string((nowMs() - since) / 1000) + " s (" +
           std::to_string(stuck_received_.load()) + " of " +
           (declared > 0 ? std::to_string(declared) : std::string("?")) +
           " bytes); no message passes it, cut at mqtt.packet_timeout";
  }
  return refused_.empty() ? "ok" : "the broker refused the subscriptions " + refused_;
}

} // namespace hgj::drivers::mqtt
