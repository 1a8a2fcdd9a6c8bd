#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "gateway/alerts/alert_types.h"
#include "gateway/storage/durable.h"

namespace hgj::alerts {

/// One notification waiting for its channel: an `alert_notifications` row in memory.
struct Notification {
  enum class State : uint8_t { Pending, Held };
  int64_t id = 0;
  int64_t alert_id = 0;  ///< 0 for a flood summary
  std::string channel;
  std::string kind;  ///< raised | escalated | renotify | acked | cleared | summary
  int level = 0;
  std::string rule;
  std::string grid;
  std::string severity;
  int64_t created_at = 0;
  State state = State::Pending;
  int attempts = 0;
  std::string body;
  std::string mentions;  ///< JSON
  std::string data;      ///< JSON
  AlertState alert_state = AlertState::Active;  ///< the alert's state now (for late messages)
};

/// The notifications not yet delivered, in memory: the alert manager adds them as it creates
/// them and the Notifier's workers take them from here, so a notification reaches the robots
/// whether or not its row is committed yet (and with a full disk, while it cannot be). The
/// database records the same rows, written behind: the manager submits each row's insert, the
/// workers submit the delivery state (DurableWrites of updateRows()), in order through the same
/// DurableSink, so the row never lags behind in a way that could resend it after a restart
/// (at-least-once: a crash between a robot's answer and the commit of `sent` can repeat one
/// message). At start the manager loads the pending and held rows of the file.
///
/// Thread-safe (one mutex, never held across I/O).
class DeliveryBook {
public:
  void add(Notification n);
  /// The oldest pending notifications of `channel`, at most `max`, oldest first (copies).
  std::vector<Notification> pending(const std::string& channel, size_t max) const;
  size_t pendingCount(const std::string& channel) const;
  /// Removes delivered or expired notifications.
  void remove(const std::string& channel, const std::vector<int64_t>& ids);
  /// Counts a failed attempt.
  void failed(const std::string& channel, const std::vector<int64_t>& ids);
  /// Pending notifications of `channel` created before `before_ms` and not before `not_before`
  /// are removed and returned.
  std::vector<int64_t> expire(const std::string& channel, int64_t before_ms, int64_t not_before);
  /// Removes and returns the held notifications of (rule, grid, kind).
  std::vector<Notification> takeHeld(const std::string& rule, const std::string& grid,
                                     const std::string& kind);
  /// Every (rule, grid, kind) with held notifications.
  std::vector<std::tuple<std::string, std::string, std::string>> heldKeys() const;
  /// The alert was acked or cleared: its waiting notifications say so when they go out late.
  void setAlertState(int64_t alert_id, AlertState state);

  /// The write that records a delivery outcome of `ids`: state 'sent' (with sent_at and
  /// batch_id), 'expired', or an attempt with `error`.
  static storage::DurableWrite sentWrite(std::vector<int64_t> ids, int64_t at_ms,
                                         int64_t batch_id);
  static storage::DurableWrite failedWrite(std::vector<int64_t> ids, int64_t at_ms,
                                           std::string error);
  static storage::DurableWrite expiredWrite(std::vector<int64_t> ids);

private:
  std::map<int64_t, Notification>* channelLocked(const std::string& channel);
  const std::map<int64_t, Notification>* channelLocked(const std::string& channel) const;

  mutable std::mutex mu_;
  // guarded by mu_: channel -> id -> notification (ids grow with time: oldest first)
  std::map<std::string, std::map<int64_t, Notification>> by_channel_;
};

} // namespace hgj::alerts
