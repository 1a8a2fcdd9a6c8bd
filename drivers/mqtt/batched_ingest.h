#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "drivers/driver.h"
#include "drivers/mqtt/mqtt_config.h"
#include "drivers/mqtt/mqtt_ingest.h"
#include "drivers/mqtt/mqtt_wire.h"
#include "model/compound.h"

namespace hgj::drivers::mqtt {

/// MQTT ingest over our own MQTT 3.1.1 session (MqttIngest): clean session off and QoS 1
/// subscriptions, so what the broker holds while the gateway is down arrives after a restart.
///
/// One thread of ours owns the connection. It reads the socket in large chunks (up to 64 KiB per
/// system call), hands every PUBLISH of a chunk to the SampleSink as a view into that chunk (the
/// chunk is shared, so no byte is copied), and only then acknowledges the chunk's messages with
/// one write. The sink blocks while the pipeline queue is full, so a message is acked to the
/// broker only once it is queued (backpressure instead of loss), and the broker, which keeps at
/// most its inflight window unacknowledged, slows down with us. A general-purpose client (Paho)
/// reads every packet with three system calls, polls before each and writes every PUBACK on its
/// own, and costs 2-3x the whole gateway's CPU per message on that (docs/benchmarks.md).
///
/// The same thread reconnects with exponential backoff and full jitter, re-subscribes on every
/// connect, keeps the connection alive with PINGREQ and drops a connection whose broker stopped
/// answering (half-open TCP). Plain TCP only: the local broker is on the box or the compound's
/// LAN; TLS is for the uplink.
///
/// write() publishes a command to the profile's command topic at QoS 1 (from the caller's
/// thread, under the socket's write lock); success is confirmed later by a report showing the
/// value (the pipeline's actuator watches for it). A publish that cannot be sent is reported at
/// once as a failed WriteResult.
class BatchedIngest final : public MqttIngest {
public:
  BatchedIngest(MqttDriverConfig cfg, const model::Compound& compound, SampleSink& sink,
             core::MetricsRegistry& metrics, const core::Clock& clock);
  ~BatchedIngest() override;

  const char* name() const override { return "mqtt"; }
  void start() override;
  void stop() override;
  void write(const WriteRequest& request) override;
  void refresh(const RefreshRequest& request) override;
  std::string health() const override;
  bool connected() const override { return connected_.load(); }
  /// True once the subscriptions of the current connection are acknowledged by the broker.
  bool subscribed() const override { return subscribed_.load(); }

private:
  /// A receive buffer. PUBLISH views handed to the pipeline keep it alive; the session appends
  /// behind them and starts a fresh buffer when it needs to compact one that is still shared.
  struct RxBuffer {
    explicit RxBuffer(size_t n) : data(new uint8_t[n]), cap(n) {}
    std::unique_ptr<uint8_t[]> data;
    size_t cap;
  };

  void run();
  bool connectSocket(std::string& error);
  bool handshake(std::string& error);
  /// Reads and handles packets until the connection is lost or stop(); returns why it ended.
  std::string session();
  /// Handles the complete packets in the buffer; false on a protocol error (sets error).
  bool handleBuffered(std::string& error);
  /// Makes room for at least `need` more bytes after the buffered ones.
  void reserveRx(size_t need);
  bool sendAll(const uint8_t* data, size_t n);
  bool publishQos1(const CommandMessage& cmd);
  void closeSocket();
  void setError(std::string e);
  int64_t monoMs() const;

  MqttDriverConfig cfg_;
  const model::Compound& compound_;
  SampleSink& sink_;
  const core::Clock& clock_;
  core::Counter& received_;
  core::Counter& reconnects_;
  core::Counter& commands_;
  core::Counter& oversized_;
  core::Counter& protocol_errors_;
  core::RateLimitedLog drop_log_;

  std::atomic<bool> connected_{false};
  std::atomic<bool> subscribed_{false};
  std::atomic<bool> running_{false};
  std::thread thread_;
  int wake_fd_ = -1;  ///< eventfd: stop() wakes the session's poll

  // The socket: the session thread opens and closes it; writers (acks, pings, commands) hold
  // write_mu_, under which fd_ is only ever replaced or closed.
  std::mutex write_mu_;
  int fd_ = -1;
  std::atomic<int64_t> last_tx_ms_{0};
  uint16_t next_packet_id_ = 2;  // guarded by write_mu_; 1 is the SUBSCRIBE's

  // Receive state, session thread only.
  std::shared_ptr<RxBuffer> rx_;
  size_t rx_begin_ = 0;  ///< first byte not yet handled
  size_t rx_end_ = 0;    ///< end of the received bytes
  size_t skip_ = 0;      ///< bytes of an oversized packet still to discard
  std::vector<uint8_t> acks_;
  bool suback_seen_ = false;
  bool sink_closed_ = false;
  int64_t last_rx_ms_ = 0;
  int64_t ping_sent_ms_ = -1;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string last_error_;  // guarded by mu_
  std::string refused_;     // guarded by mu_: subscriptions the broker refused
};

} // namespace hgj::drivers::mqtt
