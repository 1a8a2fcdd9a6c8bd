#include "gateway/alerts/delivery_query.h"

#include "gateway/alerts/alert_db.h"

namespace hgj::alerts {

nlohmann::json deliveriesJson(sqlite3* db, int64_t alert_id) {
  // A summarised row's own state says only "summarised"; what the person saw is the summary's.
  Stmt q(db, "SELECT n.channel, n.kind, COALESCE(s.state, n.state), "
             "COALESCE(s.attempts, n.attempts), n.created_at, COALESCE(s.sent_at, n.sent_at), "
             "COALESCE(s.last_error, n.last_error), n.summary_id "
             "FROM alert_notifications n LEFT JOIN alert_notifications s ON s.id = n.summary_id "
             "WHERE n.alert_id = ? ORDER BY n.id");
  q.bind(1, alert_id);
  nlohmann::json out = nlohmann::json::array();
  auto opt_int = [&](int col) {
    return q.isNull(col) ? nlohmann::json(nullptr) : nlohmann::json(q.int64(col));
  };
  while (q.step()) {
    out.push_back({{"channel", q.text(0)},
                   {"kind", q.text(1)},
                   {"state", q.text(2)},
                   {"attempts", q.int64(3)},
                   {"created_at", opt_int(4)},
                   {"sent_at", opt_int(5)},
                   {"last_error", q.isNull(6) ? nlohmann::json(nullptr) : nlohmann::json(q.text(6))},
                   {"via_summary", opt_int(7)}});
  }
  return out;
}

} // namespace hgj::alerts
