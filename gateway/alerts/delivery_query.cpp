#include "gateway/alerts/delivery_query.h"

namespace hgj::alerts {

nlohmann::json deliveriesJson(storage::Database& db, int64_t alert_id) {
  // A summarised row's own state says only "summarised"; what the person saw is the summary's.
  storage::Statement q = db.prepare(
      "SELECT n.channel, n.kind, COALESCE(s.state, n.state), "
      "COALESCE(s.attempts, n.attempts), n.created_at, COALESCE(s.sent_at, n.sent_at), "
      "COALESCE(s.last_error, n.last_error), n.summary_id "
      "FROM alert_notifications n LEFT JOIN alert_notifications s ON s.id = n.summary_id "
      "WHERE n.alert_id = ? ORDER BY n.id");
  storage::Statement::Scope scope(q);
  q.bind(1, alert_id);
  nlohmann::json out = nlohmann::json::array();
  auto opt_int = [&](int col) {
    return q.columnNull(col) ? nlohmann::json(nullptr) : nlohmann::json(q.columnInt(col));
  };
  while (q.step()) {
    out.push_back({{"channel", q.columnText(0)},
                   {"kind", q.columnText(1)},
                   {"state", q.columnText(2)},
                   {"attempts", q.columnInt(3)},
                   {"created_at", opt_int(4)},
                   {"sent_at", opt_int(5)},
                   {"last_error", q.columnNull(6) ? nlohmann::json(nullptr)
                                                  : nlohmann::json(q.columnText(6))},
                   {"via_summary", opt_int(7)}});
  }
  return out;
}

} // namespace hgj::alerts
