#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/heartbeat.h"
#include "core/log.h"
#include "core/metrics.h"
#include "drivers/driver.h"
#include "drivers/modbus/device_plan.h"
#include "drivers/modbus/modbus_config.h"
#include "drivers/modbus/modbus_connection.h"

namespace hgj::drivers::modbus {

/// One Modbus line and its poller thread, which alone owns the line's libmodbus context.
///
/// Scheduling: each device is polled on its own interval, earliest due first; pending writes go
/// before polls, between two transactions, and a de-energizing write (WriteRequest::de_energize)
/// even between two requests of one poll, ignoring write_min_interval and write_queue; a
/// refresh (an out-of-cycle poll a safety rule asked for) goes after writes, before the regular
/// polls, and leaves the device's cadence as it was. A device's poll costs the line at most one response
/// timeout per attempt: a failed attempt is retried (binding `retries`) at its next turn rather
/// than in a loop, so the other devices keep their cadence. A poll that fails after its retries
/// marks the device (and its children) offline and backs it off: interval x 2^(failures-1), at
/// most the line's max_backoff. Exceptions 01-03 (a profile that asks for something the device
/// does not have) are counted and logged; a device that refuses some reads stays online with
/// what it did answer, one that refuses every read of a poll is `faulted` (not online, its
/// reason in DeviceHealth::fault, the poll counted as failed, backed off like a failure), so
/// that a wrong register table never passes for a healthy device; 05/06 (busy) are retried
/// after a short pause; 04, 0A, 0B, timeouts and garbled frames count as failed attempts.
/// A broken TCP connection is closed and reopened with back-off (reconnect_min..max).
class ModbusLine {
public:
  ModbusLine(const LineConfig& line, const ModbusConfig& config, const model::Compound& compound,
             const std::vector<const model::Device*>& devices, SampleSink& sink,
             core::MetricsRegistry& metrics, const core::Clock& clock);
  ~ModbusLine();
  ModbusLine(const ModbusLine&) = delete;
  ModbusLine& operator=(const ModbusLine&) = delete;

  /// `liveness` (optional): the line thread's heartbeat for the watchdog.
  void start(core::Liveness* liveness = nullptr);
  /// Stops and joins the thread; pending writes are reported as failed.
  void stop();
  /// Queues a write (any thread, never blocks). The result is delivered by the line thread.
  void queueWrite(const WriteRequest& request);
  /// Has the line thread report `request` as failed with `reason` (any thread, never blocks).
  void rejectWrite(const WriteRequest& request, const std::string& reason);
  /// Queues an immediate out-of-cycle poll of the device that reads `device` (a port: its
  /// controller). Any thread, never blocks; a device backed off as offline is not polled.
  void queueRefresh(model::DeviceIndex device);
  /// "ok" or what is wrong (any thread).
  std::string health() const;
  const std::string& id() const { return line_.id; }

private:
  enum class Link : uint8_t { Unknown, Online, Offline, Faulted };

  struct DeviceState {
    const model::Device* device = nullptr;
    DevicePlan plan;
    int64_t interval_ms = 1000;
    int64_t timeout_ms = 500;
    int retries = 1;
    int64_t next_due_ms = 0;
    int64_t cycle_ms = 0;  // when the current poll was due (keeps the cadence across retries)
    int attempt = 0;   // failed attempts of the current poll
    int failures = 0;  // consecutive failed polls
    bool refresh = false;  // an out-of-cycle poll is wanted
    Link link = Link::Unknown;
    core::Counter* polls = nullptr;
    core::Counter* failed_polls = nullptr;
    core::Histogram* latency = nullptr;
    core::Gauge* online = nullptr;
    std::map<ErrorKind, core::Counter*> errors;
  };

  struct PendingWrite {
    WriteRequest request;
    int64_t not_before_ms = 0;
    bool rejected = false;
    std::string reject_reason;
  };

  enum class PollStatus : uint8_t { Ok, Retry, Failed, Connection, Refused };
  struct PollOutcome {
    PollStatus status = PollStatus::Ok;
    ErrorKind kind = ErrorKind::None;
    std::string reason;
  };

  void run();
  void loop();
  bool ensureConnected(int64_t now);
  void takeIncoming(int64_t now);
  /// Runs the most urgent due write; `urgent_only`: only a de-energizing one.
  bool runDueWrite(int64_t now, bool urgent_only = false);
  /// Between two requests of a poll: runs the de-energizing writes that arrived meanwhile.
  bool runUrgentWrites();
  bool runRefresh();
  void executeWrite(const WriteRequest& w);
  PollOutcome pollDevice(DeviceState& d);
  void afterPoll(DeviceState& d, const PollOutcome& outcome, int64_t now);
  void setLink(DeviceState& d, Link link, const std::string& reason);
  void countError(DeviceState* d, ErrorKind kind);
  void failWrite(const WriteRequest& w, const std::string& error, int attempts);
  void deliver(Sample&& s);
  DeviceState* stateOf(model::DeviceIndex device);
  void waitFor(int64_t ms);
  int64_t now() const { return core::steadyMs(clock_); }

  const LineConfig line_;
  const ModbusConfig& config_;
  const model::Compound& compound_;
  SampleSink& sink_;
  core::MetricsRegistry& metrics_;
  const core::Clock& clock_;
  Connection conn_;
  std::vector<DeviceState> devices_;  // line thread only after start()
  std::map<model::DeviceIndex, size_t> device_slot_;  // parent and child -> devices_ index
  std::vector<PendingWrite> pending_;                 // line thread only
  std::map<std::pair<model::DeviceIndex, model::PointId>, int64_t> last_write_ms_;
  int64_t reconnect_at_ms_ = 0;
  // Reconnect delays from reconnect_min to reconnect_max with full jitter: the lines of many
  // boxes behind one TCP-to-RS-485 gateway that restarted do not come back in step.
  core::Backoff reconnect_backoff_;
  std::vector<uint16_t> reg_buf_;
  std::vector<uint8_t> bit_buf_;
  core::RateLimitedLog log_;

  core::Counter& polls_total_;
  core::Counter& writes_ok_;
  core::Counter& writes_failed_;
  core::Counter& reconnects_;
  core::Gauge& connected_gauge_;
  std::map<ErrorKind, core::Counter*> line_errors_;

  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<PendingWrite> incoming_;  // guarded by mu_
  std::vector<model::DeviceIndex> refresh_incoming_;  // guarded by mu_
  std::atomic<bool> urgent_waiting_{false};  // a de-energizing write is in incoming_
  core::Heartbeat* heartbeat_ = nullptr;
  core::Liveness* liveness_ = nullptr;
  bool stopping_ = false;              // guarded by mu_
  std::atomic<bool> connected_{false};
  std::atomic<int> offline_devices_{0};
  std::atomic<int> faulted_devices_{0};
  std::atomic<bool> thread_failed_{false};
  std::string last_error_;  // guarded by mu_
};

} // namespace hgj::drivers::modbus
