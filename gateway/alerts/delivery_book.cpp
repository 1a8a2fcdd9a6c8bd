#include "gateway/alerts/delivery_book.h"

#include <set>

namespace hgj::alerts {

namespace {

std::string idList(const std::vector<int64_t>& ids) {
  std::string out;
  for (int64_t id : ids) {
    if (!out.empty()) {
      out += ',';
    }
    out += std::to_string(id);
  }
  return out;
}

} // namespace

std::map<int64_t, Notification>* DeliveryBook::channelLocked(const std::string& channel) {
  auto ch = by_channel_.find(channel);
  return ch == by_channel_.end() ? nullptr : &ch->second;
}

const std::map<int64_t, Notification>* DeliveryBook::channelLocked(
    const std::string& channel) const {
  auto ch = by_channel_.find(channel);
  return ch == by_channel_.end() ? nullptr : &ch->second;
}

void DeliveryBook::add(Notification n) {
  std::lock_guard lock(mu_);
  by_channel_[n.channel][n.id] = std::move(n);
}

std::vector<Notification> DeliveryBook::pending(const std::string& channel, size_t max) const {
  std::vector<Notification> out;
  std::lock_guard lock(mu_);
  const auto* notes = channelLocked(channel);
  if (notes == nullptr) {
    return out;
  }
  for (const auto& [id, n] : *notes) {
    if (out.size() >= max) {
      break;
    }
    if (n.state == Notification::State::Pending) {
      out.push_back(n);
    }
  }
  return out;
}

size_t DeliveryBook::pendingCount(const std::string& channel) const {
  std::lock_guard lock(mu_);
  const auto* notes = channelLocked(channel);
  size_t n = 0;
  if (notes == nullptr) {
    return n;
  }
  for (const auto& [id, note] : *notes) {
    n += note.state == Notification::State::Pending ? 1 : 0;
  }
  return n;
}

void DeliveryBook::remove(const std::string& channel, const std::vector<int64_t>& ids) {
  std::lock_guard lock(mu_);
  if (auto* notes = channelLocked(channel)) {
    for (int64_t id : ids) {
      notes->erase(id);
    }
  }
}

void DeliveryBook::failed(const std::string& channel, const std::vector<int64_t>& ids) {
  std::lock_guard lock(mu_);
  auto* notes = channelLocked(channel);
  for (size_t i = 0; notes != nullptr && i < ids.size(); ++i) {
    if (auto it = notes->find(ids[i]); it != notes->end()) {
      ++it->second.attempts;
    }
  }
}

std::vector<int64_t> DeliveryBook::expire(const std::string& channel, int64_t before_ms,
                                          int64_t not_before) {
  std::vector<int64_t> out;
  std::lock_guard lock(mu_);
  auto* notes = channelLocked(channel);
  if (notes == nullptr) {
    return out;
  }
  for (auto it = notes->begin(); it != notes->end();) {
    const Notification& n = it->second;
    if (n.state == Notification::State::Pending && n.created_at < before_ms &&
        n.created_at >= not_before) {
      out.push_back(n.id);
      it = notes->erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::vector<Notification> DeliveryBook::takeHeld(const std::string& rule, const std::string& grid,
                                                 const std::string& kind) {
  std::vector<Notification> out;
  std::lock_guard lock(mu_);
  for (auto& [channel, notes] : by_channel_) {
    for (auto it = notes.begin(); it != notes.end();) {
      const Notification& n = it->second;
      if (n.state == Notification::State::Held && n.rule == rule && n.grid == grid &&
          n.kind == kind) {
        out.push_back(std::move(it->second));
        it = notes.erase(it);
      } else {
        ++it;
      }
    }
  }
  return out;
}

std::vector<std::tuple<std::string, std::string, std::string>> DeliveryBook::heldKeys() const {
  std::set<std::tuple<std::string, std::string, std::string>> keys;
  std::lock_guard lock(mu_);
  for (const auto& [channel, notes] : by_channel_) {
    for (const auto& [id, n] : notes) {
      if (n.state == Notification::State::Held) {
        keys.emplace(n.rule, n.grid, n.kind);
      }
    }
  }
  return {keys.begin(), keys.end()};
}

void DeliveryBook::setAlertState(int64_t alert_id, AlertState state) {
  std::lock_guard lock(mu_);
  for (auto& [channel, notes] : by_channel_) {
    for (auto& [id, n] : notes) {
      if (n.alert_id == alert_id) {
        n.alert_state = state;
      }
    }
  }
}

storage::DurableWrite DeliveryBook::sentWrite(std::vector<int64_t> ids, int64_t at_ms,
                                              int64_t batch_id) {
  storage::DurableWrite w;
  w.bytes = 64 + ids.size() * 8;
  w.apply = [sql = "UPDATE alert_notifications SET state='sent', sent_at=?1, last_attempt_at=?1, "
                   "attempts=attempts+1, batch_id=?2, last_error=NULL WHERE id IN (" +
                   idList(ids) + ")",
             at_ms, batch_id](storage::Database& db) {
    db.prepare(sql).bind(1, at_ms).bind(2, batch_id).run();
  };
  return w;
}

storage::DurableWrite DeliveryBook::failedWrite(std::vector<int64_t> ids, int64_t at_ms,
                                                std::string error) {
  storage::DurableWrite w;
  w.bytes = 64 + ids.size() * 8 + error.size();
  w.apply = [sql = "UPDATE alert_notifications SET attempts=attempts+1, last_attempt_at=?1, "
                   "last_error=?2 WHERE id IN (" +
                   idList(ids) + ")",
             at_ms, error = std::move(error)](storage::Database& db) {
    db.prepare(sql).bind(1, at_ms).bind(2, error).run();
  };
  return w;
}

storage::DurableWrite DeliveryBook::expiredWrite(std::vector<int64_t> ids) {
  storage::DurableWrite w;
  w.bytes = 64 + ids.size() * 8;
  w.apply = [sql = "UPDATE alert_notifications SET state='expired', last_error='expired' WHERE "
                   "id IN (" +
                   idList(ids) + ")"](storage::Database& db) { db.prepare(sql).run(); };
  return w;
}

} // namespace hgj::alerts
