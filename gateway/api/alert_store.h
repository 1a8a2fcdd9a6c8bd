#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "gateway/api/views.h"

struct sqlite3;

namespace hgj::api {

struct AlertQuery {
  std::string state;  ///< "" = any
  std::string device; ///< "" = any
  std::string grid;   ///< "" = any
  int limit = 200;
};

/// Read-only access to the `alerts` table (schema owned by the alerts stage, documented in
/// docs/storage.md) through the API's own SQLite read connections, so a slow HTTP client never
/// holds the storage writer. Thread-safe: each call borrows a connection from a small pool. The
/// database may not exist yet at start-up; calls then fail with a message and are retried by
/// the next request.
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
  sqlite3* acquire(std::string* error) const;
  void release(sqlite3* db, bool healthy) const;

  std::string path_;
  mutable std::mutex mu_;
  mutable std::vector<sqlite3*> idle_; // guarded by mu_
};

} // namespace hgj::api
