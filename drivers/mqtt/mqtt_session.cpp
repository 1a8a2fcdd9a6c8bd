#include "drivers/mqtt/mqtt_session.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/sanitizers.h"

namespace hgj::drivers::mqtt {
namespace {

constexpr size_t kRxChunk = 64 * 1024;  ///< the buffer a read goes into
constexpr size_t kMinRead = 4 * 1024;   ///< compact or renew the buffer below this much room
/// The most a PUBLISH's head (fixed header, topic length, topic, packet id) can take.
constexpr size_t kMaxPublishHead = 5 + 2 + 65535 + 2;

} // namespace

Session::Session(SessionOptions options, SessionObserver* observer)
    : opt_(std::move(options)), observer_(observer), qos2_(65536 / 64, 0) {
  static SessionObserver quiet;
  if (observer_ == nullptr) {
    observer_ = &quiet;
  }
}

void Session::open(int64_t now_ms) {
  now_ms_ = now_ms;
  state_ = State::kAwaitConnack;
  close_reason_.clear();
  violation_ = wire::Violation::kNone;
  refused_code_ = 0;
  subscribed_ = false;
  session_present_ = false;
  // A buffer still referenced by messages in the pipeline stays theirs.
  if (!rx_ || rx_.use_count() > 1) {
    rx_ = std::make_shared<RxBuffer>(kRxChunk);
  }
  rx_begin_ = rx_end_ = 0;
  skip_ = 0;
  offered_ = false;
  opened_ms_ = last_rx_ms_ = last_tx_ms_ = now_ms;
  ping_sent_ms_ = -1;
  packet_since_ms_ = -1;
  stuck_declared_ = 0;
  skipped_so_far_ = 0;
  out_.clear();
  out_begin_ = 0;
  queued_total_ = sent_total_ = 0;
  output_waiting_ms_ = -1;
  std::vector<uint8_t> connect;
  wire::ConnectOptions co;
  co.client_id = opt_.client_id;
  co.clean_session = false;
  co.keepalive_s = static_cast<uint16_t>(std::clamp(opt_.keepalive_s, 0, 65535));
  co.username = opt_.username;
  co.password = opt_.password;
  wire::appendConnect(connect, co);
  appendOutput(connect);
}

void Session::disconnect() {
  if (state_ == State::kConnected || state_ == State::kAwaitConnack) {
    std::vector<uint8_t> bye;
    wire::appendDisconnect(bye);
    appendOutput(bye);
  }
  close("disconnected by the gateway");
}

void Session::closeTransport(std::string why) { close(std::move(why)); }

void Session::close(std::string why) {
  if (state_ == State::kClosed) {
    return;
  }
  state_ = State::kClosed;
  close_reason_ = std::move(why);
  packet_since_ms_ = -1;
}

void Session::fail(wire::Violation v) {
  violation_ = v;
  close(std::string("protocol violation: ") + wire::describe(v));
}

// ---- input ----

size_t Session::wanted() const {
  const size_t have = rx_end_ - rx_begin_;
  if (skip_ > 0 || have == 0) {
    return 0;
  }
  wire::FixedHeader h;
  if (wire::readFixedHeader(rx_->data.get() + rx_begin_, have, h) !=
      wire::HeaderStatus::kComplete) {
    return 0;
  }
  // Only as much as may be kept: a PUBLISH over the limit is skipped after its head, and any
  // other packet over its type's limit closes the session before its body is read.
  size_t whole = std::min(h.total(), std::max(opt_.max_publish_bytes, kMaxPublishHead));
  return whole > have ? whole - have : 0;
}

bool Session::soleHolder() const {
  if (rx_.use_count() != 1) {
    return false;
  }
#if HGJ_TSAN
  // ThreadSanitizer does not model atomic_thread_fence, so the fence below looks like no
  // ordering at all. weak_ptr::lock() is a compare-and-swap (acq_rel) on the same use count
  // the former holders released, which TSan does see: the TSan build checks the same
  // happens-before with it, and still reports a holder that reads after letting go.
  std::weak_ptr<RxBuffer>(rx_).lock();
#else
  // Pairs with the release in the last former holder's decrement of the use count.
  std::atomic_thread_fence(std::memory_order_acquire);
#endif
  return true;
}

void Session::reserve(size_t need) {
  need = std::max(need, kMinRead);
  if (rx_->cap - rx_end_ >= need) {
    return;
  }
  const size_t pending = rx_end_ - rx_begin_;
  const size_t cap = std::max(kRxChunk, pending + need);
  // Messages already offered may still be queued as views into the handled part: compact in
  // place only when nobody else holds the buffer.
  if (rx_->cap >= cap && soleHolder()) {
    std::memmove(rx_->data.get(), rx_->data.get() + rx_begin_, pending);
  } else {
    auto fresh = std::make_shared<RxBuffer>(cap);
    std::memcpy(fresh->data.get(), rx_->data.get() + rx_begin_, pending);
    rx_ = std::move(fresh);
  }
  rx_begin_ = 0;
  rx_end_ = pending;
}

std::pair<uint8_t*, size_t> Session::readBuffer() {
  if (!rx_) {
    rx_ = std::make_shared<RxBuffer>(kRxChunk);
  }
  if (rx_begin_ == rx_end_ && soleHolder()) {
    rx_begin_ = rx_end_ = 0;  // everything handled and released: reuse from the start
  }
  reserve(wanted());
  return {rx_->data.get() + rx_end_, rx_->cap - rx_end_};
}

void Session::received(size_t n, int64_t now_ms) {
  now_ms_ = now_ms;
  rx_end_ += n;
  if (n > 0) {
    last_rx_ms_ = now_ms;
  }
}

void Session::feed(const uint8_t* data, size_t n, int64_t now_ms) {
  while (n > 0) {
    auto [dst, room] = readBuffer();
    size_t k = std::min(room, n);
    std::memcpy(dst, data, k);
    received(k, now_ms);
    data += k;
    n -= k;
  }
}

void Session::waitingForBytes(int64_t now_ms, size_t declared) {
  if (packet_since_ms_ < 0) {
    packet_since_ms_ = now_ms;
  }
  stuck_declared_ = declared;
}

void Session::packetDone() {
  packet_since_ms_ = -1;
  stuck_declared_ = 0;
  skipped_so_far_ = 0;
}

bool Session::nextMessage(MqttMessage& out, int64_t now_ms, int64_t wall_ms) {
  now_ms_ = now_ms;
  if (offered_ || (state_ != State::kAwaitConnack && state_ != State::kConnected)) {
    return false;
  }
  while (state_ != State::kClosed) {
    const size_t avail = rx_end_ - rx_begin_;
    if (skip_ > 0) {
      const size_t n = std::min(skip_, avail);
      skip_ -= n;
      rx_begin_ += n;
      skipped_so_far_ += n;
      if (skip_ > 0) {
        return false;  // the packet timer keeps running from its first byte
      }
      packetDone();
      continue;
    }
    if (avail == 0) {
      packetDone();
      return false;
    }
    const uint8_t* at = rx_->data.get() + rx_begin_;
    wire::FixedHeader h;
    const wire::HeaderStatus st = wire::readFixedHeader(at, avail, h);
    if (st == wire::HeaderStatus::kMalformed) {
      fail(wire::Violation::kBadRemainingLength);
      return false;
    }
    if (st == wire::HeaderStatus::kIncomplete) {
      waitingForBytes(now_ms, 0);
      return false;
    }
    // The first packet from the server must be CONNACK (MQTT-3.2.0-1).
    if (state_ == State::kAwaitConnack && h.type() != wire::PacketType::kConnack) {
      fail(wire::Violation::kUnexpectedType);
      return false;
    }
    if (auto v = wire::checkHeader(h, opt_.subscriptions.size()); v != wire::Violation::kNone) {
      fail(v);
      return false;
    }
    const uint8_t* body = at + h.size;
    const size_t body_avail = avail - h.size;
    if (h.type() == wire::PacketType::kPublish && h.total() > opt_.max_publish_bytes) {
      wire::PublishHead head;
      bool incomplete = false;
      if (auto v = wire::decodePublishHead(h, body, body_avail, head, incomplete);
          v != wire::Violation::kNone) {
        fail(v);
        return false;
      }
      if (incomplete) {
        waitingForBytes(now_ms, h.total());
        return false;
      }
      // Acknowledged, so that the broker does not send it again forever, and discarded as it
      // streams in.
      if (head.qos == 2 && qos2Pending(head.packet_id)) {
        observer_->onDuplicate(head.packet_id);
        queueAck(wire::PacketType::kPubrec, head.packet_id);
      } else {
        observer_->onOversized(head.topic, h.total());
        if (head.qos == 1) {
          queueAck(wire::PacketType::kPuback, head.packet_id);
        } else if (head.qos == 2) {
          setQos2(head.packet_id, true);
          queueAck(wire::PacketType::kPubrec, head.packet_id);
        }
      }
      waitingForBytes(now_ms, h.total());
      skip_ = h.total();
      skipped_so_far_ = 0;
      continue;
    }
    if (body_avail < h.remaining) {
      waitingForBytes(now_ms, h.total());
      return false;
    }
    rx_begin_ += h.total();
    packetDone();
    if (handle(h, body, out, now_ms, wall_ms)) {
      return true;
    }
  }
  return false;
}

bool Session::handle(const wire::FixedHeader& h, const uint8_t* body, MqttMessage& out,
                     int64_t now_ms, int64_t wall_ms) {
  using wire::PacketType;
  using wire::Violation;
  uint16_t id = 0;
  switch (h.type()) {
  case PacketType::kConnack: {
    if (state_ != State::kAwaitConnack) {
      fail(Violation::kUnexpectedType);  // one CONNACK per connection
      return false;
    }
    wire::Connack c;
    if (auto v = wire::decodeConnack(body, c); v != Violation::kNone) {
      fail(v);
      return false;
    }
    if (c.return_code != 0) {
      refused_code_ = c.return_code;
      close("connection refused: " + wire::connackReason(c.return_code));
      return false;
    }
    session_present_ = c.session_present;
    if (!session_present_ && qos2_count_ > 0) {
      // The broker kept no session, so no PUBREL is coming for what it had sent (MQTT-3.2.2-2).
      std::fill(qos2_.begin(), qos2_.end(), 0);
      qos2_count_ = 0;
    }
    state_ = State::kConnected;
    // Subscribe on every connect: a broker that lost our session (no persistence) must still
    // deliver. With a kept session this is a harmless repeat.
    if (opt_.subscriptions.empty()) {
      subscribed_ = true;
    } else {
      std::vector<uint8_t> sub;
      wire::appendSubscribe(sub, kSubscribeId, opt_.subscriptions, 1);
      appendOutput(sub);
    }
    return false;
  }
  case PacketType::kPublish: {
    wire::PublishHead head;
    bool incomplete = false;
    if (auto v = wire::decodePublishHead(h, body, h.remaining, head, incomplete);
        v != Violation::kNone) {
      fail(v);
      return false;
    }
    if (head.qos == 2 && qos2Pending(head.packet_id)) {
      // Delivered already; its PUBREC may have been lost (section 4.3.3).
      observer_->onDuplicate(head.packet_id);
      queueAck(PacketType::kPubrec, head.packet_id);
      return false;
    }
    out.topic = head.topic;
    out.payload = {reinterpret_cast<const char*>(body + head.size), h.remaining - head.size};
    out.rx_ms = wall_ms;
    out.owner = rx_;
    offered_ = true;
    offered_qos_ = head.qos;
    offered_id_ = head.packet_id;
    offered_ms_ = now_ms;
    return true;
  }
  case PacketType::kPuback:
    // Our commands' acks: the actuator confirms a command by the device's report.
    if (auto v = wire::decodeAckId(body, id); v != Violation::kNone) {
      fail(v);
    }
    return false;
  case PacketType::kPubrel:
    if (auto v = wire::decodeAckId(body, id); v != Violation::kNone) {
      fail(v);
      return false;
    }
    setQos2(id, false);
    queueAck(PacketType::kPubcomp, id);  // also for an id we do not know (MQTT-4.3.3-2 step)
    return false;
  case PacketType::kSuback: {
    std::vector<size_t> refused;
    if (auto v = wire::decodeSuback(h, body, opt_.subscriptions.size(), id, refused);
        v != Violation::kNone) {
      fail(v);
      return false;
    }
    if (id != kSubscribeId || subscribed_) {
      fail(Violation::kUnexpectedType);  // an answer to nothing we asked
      return false;
    }
    subscribed_ = true;
    std::vector<std::string> names;
    for (size_t i : refused) {
      names.push_back(opt_.subscriptions[i]);
    }
    observer_->onSubscribed(names);
    return false;
  }
  case PacketType::kPingresp:
    ping_sent_ms_ = -1;
    return false;
  default:
    // PUBREC and PUBCOMP answer QoS 2 publishes and PUBREL, which we never send; UNSUBACK an
    // UNSUBSCRIBE, which we never send either.
    fail(Violation::kUnexpectedType);
    return false;
  }
}

void Session::messageTaken(int64_t now_ms) {
  if (!offered_) {
    return;
  }
  now_ms_ = now_ms;
  offered_ = false;
  // The gateway was the slow party: the broker's timers pause while the sink was full.
  if (const int64_t stall = now_ms - offered_ms_; stall > 0) {
    last_rx_ms_ = std::min(last_rx_ms_ + stall, now_ms);
    if (ping_sent_ms_ >= 0) {
      ping_sent_ms_ = std::min(ping_sent_ms_ + stall, now_ms);
    }
  }
  if (state_ == State::kClosed) {
    return;
  }
  if (offered_qos_ == 1) {
    queueAck(wire::PacketType::kPuback, offered_id_);
  } else if (offered_qos_ == 2) {
    setQos2(offered_id_, true);
    queueAck(wire::PacketType::kPubrec, offered_id_);
  }
}

// ---- output ----

void Session::appendOutput(const std::vector<uint8_t>& bytes) {
  if (outputSize() == 0) {
    output_waiting_ms_ = now_ms_;
  }
  if (out_begin_ > 64 * 1024 && out_begin_ * 2 > out_.size()) {
    out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(out_begin_));
    out_begin_ = 0;
  }
  out_.insert(out_.end(), bytes.begin(), bytes.end());
  queued_total_ += bytes.size();
}

void Session::queueAck(wire::PacketType type, uint16_t id) {
  std::vector<uint8_t> ack;
  wire::appendAck(ack, type, id);
  appendOutput(ack);
}

void Session::sent(size_t n, int64_t now_ms) {
  now_ms_ = now_ms;
  n = std::min(n, outputSize());
  out_begin_ += n;
  sent_total_ += n;
  if (n > 0) {
    last_tx_ms_ = now_ms;
  }
  if (outputSize() == 0) {
    out_.clear();
    out_begin_ = 0;
    output_waiting_ms_ = -1;
  } else if (n > 0) {
    output_waiting_ms_ = now_ms;
  }
}

uint16_t Session::publish(std::string_view topic, std::string_view payload) {
  if (state_ != State::kConnected) {
    return 0;
  }
  const uint16_t id = next_packet_id_;
  next_packet_id_ = next_packet_id_ == 0xFFFF ? 2 : static_cast<uint16_t>(next_packet_id_ + 1);
  std::vector<uint8_t> pkt;
  wire::appendPublish(pkt, topic, payload, 1, id);
  appendOutput(pkt);
  return id;
}

// ---- time ----

int64_t Session::tick(int64_t now_ms) {
  now_ms_ = now_ms;
  if (state_ != State::kAwaitConnack && state_ != State::kConnected) {
    return -1;
  }
  int64_t next = -1;
  auto at = [&](int64_t t) { next = next < 0 ? t : std::min(next, t); };
  if (state_ == State::kAwaitConnack) {
    if (now_ms - opened_ms_ >= opt_.connack_timeout_ms) {
      close("no CONNACK within " + std::to_string(opt_.connack_timeout_ms / 1000) + " s");
      return -1;
    }
    at(opened_ms_ + opt_.connack_timeout_ms);
  }
  if (output_waiting_ms_ >= 0 && outputSize() > 0) {
    if (now_ms - output_waiting_ms_ >= opt_.send_timeout_ms) {
      close("the broker took no bytes for " + std::to_string(opt_.send_timeout_ms / 1000) + " s");
      return -1;
    }
    at(output_waiting_ms_ + opt_.send_timeout_ms);
  }
  if (!offered_ && packet_since_ms_ >= 0) {
    if (now_ms - packet_since_ms_ >= opt_.packet_timeout_ms) {
      fail(wire::Violation::kPacketTimeout);
      return -1;
    }
    at(packet_since_ms_ + opt_.packet_timeout_ms);
  }
  const int64_t ka = int64_t{opt_.keepalive_s} * 1000;
  if (state_ == State::kConnected && ka > 0) {
    if (ping_sent_ms_ < 0 && now_ms - last_tx_ms_ >= ka * 3 / 4) {
      std::vector<uint8_t> ping;
      wire::appendPingreq(ping);
      appendOutput(ping);
      ping_sent_ms_ = now_ms;
    }
    // Anything received counts as an answer: a PINGRESP may queue behind a burst of messages.
    if (!offered_ && ping_sent_ms_ >= 0 && now_ms - ping_sent_ms_ >= ka &&
        now_ms - last_rx_ms_ >= ka) {
      close("no answer to PINGREQ within the keepalive");
      return -1;
    }
    at(ping_sent_ms_ >= 0 ? std::max(ping_sent_ms_, last_rx_ms_) + ka : last_tx_ms_ + ka * 3 / 4);
  }
  return next;
}

int64_t Session::stuckMs(int64_t now_ms) const {
  if (offered_ || packet_since_ms_ < 0 ||
      (state_ != State::kConnected && state_ != State::kAwaitConnack)) {
    return 0;
  }
  return std::max<int64_t>(0, now_ms - packet_since_ms_);
}

size_t Session::stuckReceived() const {
  if (skip_ > 0) {
    return stuck_declared_ - skip_;
  }
  return rx_end_ - rx_begin_;
}

bool Session::qos2Pending(uint16_t id) const { return (qos2_[id / 64] >> (id % 64)) & 1; }

void Session::setQos2(uint16_t id, bool pending) {
  const uint64_t bit = uint64_t{1} << (id % 64);
  const bool was = (qos2_[id / 64] & bit) != 0;
  if (pending && !was) {
    qos2_[id / 64] |= bit;
    ++qos2_count_;
  } else if (!pending && was) {
    qos2_[id / 64] &= ~bit;
    --qos2_count_;
  }
}

} // namespace hgj::drivers::mqtt
