#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "drivers/driver.h"
#include "drivers/mqtt/mqtt_wire.h"

namespace hgj::drivers::mqtt {

/// What a Session needs to know; BatchedIngest fills it from MqttConfig.
struct SessionOptions {
  std::string client_id;
  std::string username;
  std::string password;
  int keepalive_s = 30;                    ///< 0: no PINGREQ
  std::vector<std::string> subscriptions;  ///< topic filters, QoS 1, one SUBSCRIBE per connection
  /// A PUBLISH packet (fixed header included) longer than this is acknowledged and discarded as
  /// it streams in, never buffered whole.
  size_t max_publish_bytes = 64 * 1024 + 256 + 16;
  /// The longest one packet may take from its first byte to its last (a broker that drips a
  /// byte now and then cannot hold the session forever).
  int64_t packet_timeout_ms = 10'000;
  /// The longest the broker may take to answer CONNECT.
  int64_t connack_timeout_ms = 10'000;
  /// The longest the output may wait for the socket to take a byte.
  int64_t send_timeout_ms = 10'000;
};

/// What a Session reports besides messages (counters and logs live in the driver). Called on the
/// session's thread, from inside the Session's calls.
class SessionObserver {
public:
  virtual ~SessionObserver() = default;
  /// A PUBLISH over max_publish_bytes was acknowledged and is being discarded.
  virtual void onOversized(std::string_view /*topic*/, size_t /*packet_bytes*/) {}
  /// A QoS 2 PUBLISH whose id still waits for its PUBREL arrived again: not delivered again.
  virtual void onDuplicate(uint16_t /*packet_id*/) {}
  /// The broker answered our SUBSCRIBE; `refused` are the filters it refused.
  virtual void onSubscribed(const std::vector<std::string>& /*refused*/) {}
};

/// The gateway's MQTT 3.1.1 client session (clean session off, QoS 1 subscriptions) as a state
/// machine without I/O, so that it runs the same over a socket (BatchedIngest), in the unit
/// tests and under the fuzzer: received bytes go in (readBuffer/received, or feed), messages come
/// out one at a time (nextMessage/messageTaken), and the bytes to send wait in output().
///
/// Conformance: every packet is checked as wire::checkHeader and the decode* functions say, and
/// a packet's size is checked against its type's limit from the fixed header alone. Any
/// violation closes the session with violation() set, before anything of the packet is
/// delivered or acknowledged. A PUBLISH over max_publish_bytes is acknowledged once its topic
/// and packet id are in and then skipped as it streams in, so no packet costs more than
/// max_publish_bytes of memory or more than linear time. Inbound QoS 2 follows method B of
/// section 4.3.3: a message is delivered once; its packet id is kept until the PUBREL, and a
/// PUBLISH with that id meanwhile (a DUP resend) is acknowledged again but not delivered. Those
/// ids belong to the session: they survive open() and are dropped when a CONNACK says the broker
/// kept no session.
///
/// Our own PUBLISHes (device commands, QoS 1) are sent once and never resent after a reconnect
/// (section 4.4 asks for a resend): a stale relay command must not reach a device after the
/// pipeline's actuator has moved on; the actuator retries and confirms by the device's report.
///
/// Acknowledgement after hand-over: nextMessage() offers a PUBLISH, and only messageTaken()
/// (the sink took it) queues its PUBACK or PUBREC. Time the gateway spends waiting for the sink
/// is not counted against the broker (keepalive and packet timers are paused meanwhile).
///
/// Memory: the receive buffer holds at most one packet beyond a 64 KiB read (max_publish_bytes
/// or a PUBLISH head of at most 65,539 bytes); buffers still referenced by delivered messages
/// are left to them and a fresh one is started. Output grows only by what the caller asks
/// (acknowledgements of offered messages, publish()); the caller bounds it.
///
/// Not thread-safe: one thread owns a Session.
class Session {
public:
  enum class State : uint8_t { kIdle, kAwaitConnack, kConnected, kClosed };

  explicit Session(SessionOptions options, SessionObserver* observer = nullptr);

  /// A new network connection: forgets the previous connection's bytes, queues CONNECT.
  void open(int64_t now_ms);
  /// Queues DISCONNECT and closes (the caller sends what is left, best effort).
  void disconnect();
  /// Closes because of the transport (EOF, a socket error); `why` for closeReason().
  void closeTransport(std::string why);

  State state() const { return state_; }
  bool connected() const { return state_ == State::kConnected; }
  bool closed() const { return state_ == State::kClosed; }
  /// The broker answered this connection's SUBSCRIBE (or there is nothing to subscribe).
  bool subscribed() const { return subscribed_; }
  bool sessionPresent() const { return session_present_; }
  /// Why the session closed ("" while open).
  const std::string& closeReason() const { return close_reason_; }
  /// The protocol violation that closed it, kNone if none did.
  wire::Violation violation() const { return violation_; }
  /// The broker refused the connection (CONNACK return code other than 0).
  bool refused() const { return refused_code_ != 0; }

  // ---- input ----

  /// Where the next read should go: a pointer and how many bytes fit (at least 4 KiB).
  std::pair<uint8_t*, size_t> readBuffer();
  /// `n` bytes were read into readBuffer().
  void received(size_t n, int64_t now_ms);
  /// Copies bytes in through readBuffer()/received() (tests and the fuzzer).
  void feed(const uint8_t* data, size_t n, int64_t now_ms);

  /// Handles the buffered packets up to the next message for the sink: true with `out` set (a
  /// view into the receive buffer that `out.owner` keeps alive) when there is one; false when
  /// more bytes are needed or the session closed. Call messageTaken() before asking again.
  bool nextMessage(MqttMessage& out, int64_t now_ms, int64_t wall_ms);
  /// The sink took the offered message: queues its acknowledgement.
  void messageTaken(int64_t now_ms);
  /// A message is offered and not taken yet.
  bool offering() const { return offered_; }

  // ---- output ----

  const uint8_t* output() const { return out_.data() + out_begin_; }
  size_t outputSize() const { return out_.size() - out_begin_; }
  /// Received bytes not yet handled (after nextMessage returned a message: whether more of
  /// this read follows it, i.e. the broker is sending a burst).
  bool hasBufferedInput() const { return rx_end_ > rx_begin_ || skip_ > 0; }
  /// `n` bytes of output() were sent.
  void sent(size_t n, int64_t now_ms);
  /// Bytes queued for output on this connection so far, and how many of them were sent.
  uint64_t queuedTotal() const { return queued_total_; }
  uint64_t sentTotal() const { return sent_total_; }
  /// Queues a QoS 1 PUBLISH (connected only) and returns its packet id; 0 when not connected.
  uint16_t publish(std::string_view topic, std::string_view payload);

  // ---- time ----

  /// Runs the timers: PINGREQ, no PINGRESP, CONNACK, packet and send timeouts. Returns when it
  /// wants to be called again (steady ms), or -1 when no timer runs.
  int64_t tick(int64_t now_ms);
  /// How long the session has waited for the rest of one packet (0 when it does not), and how
  /// much of it is in: the broker may be dripping it.
  int64_t stuckMs(int64_t now_ms) const;
  size_t stuckReceived() const;
  size_t stuckDeclared() const { return stuck_declared_; }

  /// Memory held by the receive buffer (the fuzzer checks its bound).
  size_t bufferCapacity() const { return rx_ ? rx_->cap : 0; }
  /// Inbound QoS 2 ids waiting for their PUBREL.
  size_t pendingQos2() const { return qos2_count_; }

  static constexpr uint16_t kSubscribeId = 1;

private:
  struct RxBuffer {
    explicit RxBuffer(size_t n) : data(new uint8_t[n]), cap(n) {}
    std::unique_ptr<uint8_t[]> data;
    size_t cap;
  };

  void fail(wire::Violation v);
  void close(std::string why);
  void reserve(size_t need);
  /// Bytes the packet at rx_begin_ still needs in the buffer (a PUBLISH over the limit only
  /// its head).
  size_t wanted() const;
  void waitingForBytes(int64_t now_ms, size_t declared);
  void packetDone();
  bool handle(const wire::FixedHeader& h, const uint8_t* body, MqttMessage& out, int64_t now_ms,
              int64_t wall_ms);
  void appendOutput(const std::vector<uint8_t>& bytes);
  void queueAck(wire::PacketType type, uint16_t id);
  bool qos2Pending(uint16_t id) const;
  void setQos2(uint16_t id, bool pending);

  SessionOptions opt_;
  SessionObserver* observer_;

  State state_ = State::kIdle;
  std::string close_reason_;
  wire::Violation violation_ = wire::Violation::kNone;
  uint8_t refused_code_ = 0;
  bool subscribed_ = false;
  bool session_present_ = false;

  // Receive side.
  /// Whether no message still holds rx_, ordered after every former holder's last read.
  bool soleHolder() const;

  std::shared_ptr<RxBuffer> rx_;
  size_t rx_begin_ = 0;  ///< first byte not yet handled
  size_t rx_end_ = 0;    ///< end of the received bytes
  size_t skip_ = 0;      ///< bytes of an oversized PUBLISH still to discard
  bool offered_ = false;
  int offered_qos_ = 0;
  uint16_t offered_id_ = 0;
  int64_t offered_ms_ = 0;

  // Timers (steady ms; -1: not running).
  int64_t now_ms_ = 0;
  int64_t opened_ms_ = 0;
  int64_t last_rx_ms_ = 0;
  int64_t last_tx_ms_ = 0;
  int64_t ping_sent_ms_ = -1;
  int64_t packet_since_ms_ = -1;  ///< the packet at rx_begin_ is incomplete since then
  size_t stuck_declared_ = 0;
  size_t skipped_so_far_ = 0;
  int64_t output_waiting_ms_ = -1;  ///< output has waited for the socket since then

  // Send side.
  std::vector<uint8_t> out_;
  size_t out_begin_ = 0;
  uint64_t queued_total_ = 0;
  uint64_t sent_total_ = 0;
  uint16_t next_packet_id_ = 2;  ///< 1 is the SUBSCRIBE's

  // Session state kept across connections: inbound QoS 2 ids awaiting PUBREL (65,536 bits).
  std::vector<uint64_t> qos2_;
  size_t qos2_count_ = 0;
};

} // namespace hgj::drivers::mqtt
