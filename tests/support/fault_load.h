#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hgj::test {

/// What a LoadPublisher sends: parking sensors of the example compound reporting
/// `{"occupied":...,"ts":base_ts+seq}` at QoS 1, round-robin over `devices`, message k of a
/// device carrying seq k (1, 2, 3 ...), so the readings table shows per device which messages
/// arrived. Bounded both in count and in time.
struct LoadSpec {
  std::string url;
  std::vector<std::string> devices;  ///< parking sensor ids (compound/parking/{id}/state)
  int per_device = 1000;             ///< messages per device
  double rate = 1000;                ///< messages per second, all devices together
  std::chrono::milliseconds max_time{std::chrono::seconds(120)};
  int64_t base_ts = 1764252000000;
  /// Each device logs in as user = its id with this password (the shipped ACL's pattern
  /// `compound/parking/%u/state`); empty = anonymous.
  std::string password;
};

/// Devices publishing at QoS 1, one MQTT client each (clean session off, messages buffered
/// while the broker is away and resent after reconnecting, as a device with a persistent
/// session does). Publishes on its own thread from construction until done or stop(). Records
/// per device which messages the broker acknowledged (PUBACK). Thread-safe.
class LoadPublisher {
public:
  explicit LoadPublisher(LoadSpec spec);
  ~LoadPublisher();
  LoadPublisher(const LoadPublisher&) = delete;
  LoadPublisher& operator=(const LoadPublisher&) = delete;

  /// Stops publishing (what is in flight may still be acknowledged).
  void stop();
  /// Waits until every message was published and acknowledged (or the time bound passed).
  bool waitDone(std::chrono::milliseconds timeout);
  const LoadSpec& spec() const { return spec_; }
  std::string topic(size_t device) const;
  int64_t ts(int seq) const { return spec_.base_ts + seq; }
  /// Messages handed to the device's client so far.
  int published(size_t device) const;
  /// Whether the broker acknowledged message `seq` of `device`.
  bool acked(size_t device, int seq) const;
  /// Every acknowledged seq of a device, ascending.
  std::vector<int> ackedSeqs(size_t device) const;
  size_t ackedTotal() const;
  size_t publishedTotal() const;
  /// When message `seq` of `device` was handed to its client (steady clock).
  std::chrono::steady_clock::time_point publishedAt(size_t device, int seq) const;

private:
  struct Device;
  void run();

  LoadSpec spec_;
  std::vector<std::unique_ptr<Device>> devices_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

} // namespace hgj::test
