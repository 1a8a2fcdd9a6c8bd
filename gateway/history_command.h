#pragma once

#include <cstdio>
#include <optional>
#include <string>

#include "gateway/config/config.h"

namespace hgj {

/// Options of `hgj-gateway history rebuild`.
struct HistoryRebuildOptions {
  /// --from YYYY-MM-DD: rows of buckets and days before this local day are left as stored.
  /// nullopt: history::defaultRebuildFrom() decides.
  std::optional<std::string> from_day;
  /// --force: rebuild even though the configured HTTP port answers (a gateway seems to run).
  bool force = false;
};

/// `hgj-gateway history rebuild`: recomputes the rollups of docs/storage.md "History" from the
/// `readings` and `alerts` tables of storage.path (history::rebuildFrom), for a database filled
/// by a gateway older than the history, or whose history rows were lost. Meant to run with the
/// gateway stopped: it refuses while something answers on http.bind:http.port, since a running
/// gateway keeps its own running day totals and would write them over the rebuilt ones.
/// Prints what it did on `out`, problems on `err` (one line each). Returns the exit status:
/// 0 done, 1 a gateway seems to run, 2 bad options (history disabled, a bad --from),
/// 4 the database is missing, cannot be opened or has no readings table.
int historyRebuild(const config::GatewayConfig& cfg, const HistoryRebuildOptions& options,
                   std::FILE* out, std::FILE* err);

} // namespace hgj
