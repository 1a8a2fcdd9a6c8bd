#pragma once

#include <cstdint>
#include <string>

#include "gateway/storage/sqlite.h"

namespace hgj::alerts {

/// The alerts component's schema version in `schema_versions`.
constexpr int kAlertsSchemaVersion = 1;

/// Creates the alerts tables (`alerts`, `alert_events`, `alert_notifications`) and the shared
/// `id_reservations` table when missing, and records the schema version (`now_ms` stamps
/// schema_versions.updated_ms). Throws storage::SqliteError, also for a newer schema.
void createAlertsSchema(storage::Database& db, int64_t now_ms);

/// Ids handed out in memory (alert and notification ids are chosen by the alert manager before
/// their rows are written) must never be given twice, even after a crash that lost rows that
/// were already sent: they come from blocks reserved durably in `id_reservations(name, next)`.
class IdBlocks {
public:
  /// `table` is where ids of `name` end up (its MAX(id) is a floor too).
  IdBlocks(std::string name, std::string table) : name_(std::move(name)), table_(std::move(table)) {}
  /// Reads the floor and reserves the first block durably (startup, on the caller's thread).
  /// A failure to reserve is logged, not thrown (a full disk must not stop the gateway).
  void open(storage::Database& db);
  int64_t next();
  /// The id next() would return.
  int64_t peek() const { return next_; }
  /// When the reserved block is half used: the value to reserve up to, to be written (in the
  /// next durable transaction) with reserveSql(); 0 = nothing to do.
  int64_t wantReserve();
  static void writeReservation(storage::Database& db, const std::string& name, int64_t upto);
  /// At an orderly stop: the next boot continues at the exact next id (no gap), on `db`.
  void close(storage::Database& db);
  const std::string& name() const { return name_; }

private:
  std::string name_;
  std::string table_;
  int64_t next_ = 1;
  int64_t reserved_ = 0;  // ids below this are reserved (durably, or requested)
};

} // namespace hgj::alerts
