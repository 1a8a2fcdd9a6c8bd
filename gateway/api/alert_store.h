#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "gateway/api/views.h"
#include "gateway/storage/sqlite.h"

namespace hgj::api {

struct AlertQuery {
  std::string state;  ///< "" = any
  std::string device; ///< "" = any
  std::string grid;   ///< "" = any
  int limit = 200;
};

/// Read-only access to the `alerts` table (schema owned by the alerts stage, documented in
/// docs/storage.md) through the API's own read connections (storage::ReadPool), so a slow HTTP
/// client never holds the storage writer. Thread-safe: each call borrows a connection from the
/// pool. The database may not exist yet at start-up; calls then fail with a message and are
/// retried by the next request. Shows what is committed: an alert raised a moment ago appears
/// once its transaction has landed (its upstream message and notifications may be ahead).
class AlertStore {
public:
  explicit AlertStore(std::string db_path);
  ~AlertStore();
  AlertStore(const AlertStore&) = delete;
  AlertStore& operator=(const AlertStore&) = delete;

  /// Alerts, newest first, in the API shape. nullopt on a database error (`error` says which).
  std::optional<Json> list(const AlertQuery& q, std::string* error) const;
  /// One alert; a JSON null when there is no such id; nullopt on a database error.
  std::optional<Json> get(int64_t id, std::string* error) const;
  /// Rows per state (for /metrics); empty on error.
  std::map<std::string, int64_t> countByState() const;

private:
  storage::ReadPool pool_;
};

} // namespace hgj::api
