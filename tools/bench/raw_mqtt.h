#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "drivers/mqtt/mqtt_wire.h"

/// A deliberately minimal MQTT 3.1.1 client over a plain blocking TCP socket, for the load
/// generator and the counting subscribers. It does exactly what the benchmark needs (CONNECT,
/// SUBSCRIBE, PUBLISH QoS 0/1, PUBACK, PINGREQ, DISCONNECT) and lets the caller decide how many
/// packets go into one system call, which is the point of the measurement. Not thread-safe; one
/// owner thread per connection.
namespace hgj::bench::mqtt {

// The packets themselves are the gateway's own (drivers/mqtt/mqtt_wire.h).
using drivers::mqtt::wire::appendDisconnect;
using drivers::mqtt::wire::appendPingreq;
using drivers::mqtt::wire::appendPuback;
using drivers::mqtt::wire::appendPublish;
using drivers::mqtt::wire::appendSubscribe;
using drivers::mqtt::wire::Packet;
using drivers::mqtt::wire::PacketType;
using drivers::mqtt::wire::scanPackets;

/// A blocking TCP connection to a loopback broker.
class Connection {
public:
  Connection() = default;
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Connects and completes the MQTT handshake (CONNACK accepted) within timeout_s. On failure
  /// returns false with error() set. Bytes that arrive right after the CONNACK (a persistent
  /// session's queued messages) stay in the pending data for the caller.
  bool open(const std::string& host, int port, std::string_view client_id, bool clean_session,
            uint16_t keepalive_s, double timeout_s, int rcvbuf_bytes = 0);
  const std::string& error() const { return error_; }
  bool sessionPresent() const { return session_present_; }
  int fd() const { return fd_; }

  /// Writes all bytes (blocking). False when the connection is gone.
  bool writeAll(const uint8_t* data, size_t n);
  bool writeAll(const std::vector<uint8_t>& v) { return writeAll(v.data(), v.size()); }
  /// Waits up to timeout_ms for data (poll) and appends what one read() returns (at most
  /// max_bytes) to the pending data. A negative timeout skips the poll and blocks in read().
  /// Returns the bytes read, 0 on timeout, -1 when the connection closed.
  long readSome(int timeout_ms, size_t max_bytes);
  /// Reads exactly n bytes into the pending data with as many readSome(timeout_ms) calls as
  /// needed (the way a packet-by-packet client library reads). -1 on close or timeout.
  long readExact(size_t n, int timeout_ms);
  /// Received bytes not yet consumed.
  const uint8_t* pendingData() const { return buf_.data(); }
  size_t pendingSize() const { return len_; }
  /// Drops the first n bytes of the pending data.
  void consume(size_t n);
  void close();

private:
  int fd_ = -1;
  bool session_present_ = false;
  std::string error_;
  std::vector<uint8_t> buf_;
  size_t len_ = 0;
};

} // namespace hgj::bench::mqtt
