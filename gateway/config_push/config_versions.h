#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hgj::config_push {

/// One stored bundle and what became of it.
struct VersionEntry {
  int64_t version = 0;
  /// stored -> trial -> confirmed | rolled_back | failed; a confirmed one that was later left
  /// for another stays confirmed (it is a good one to go back to).
  std::string status;
  std::string by;        ///< the sender's claim
  std::string identity;  ///< who this gateway can vouch for (upstream connection + request id)
  std::string request_id;
  int64_t received_ms = 0;
  int64_t changed_ms = 0;
  std::string message;  ///< why the status changed last
};

/// The probation of a freshly applied bundle.
struct Trial {
  int64_t version = 0;
  int64_t previous = 0;  ///< the version to go back to (0: the local `-c` files)
  int64_t since_ms = 0;
  int64_t boots = 0;     ///< starts on this version while on trial (a crash loop rolls back)
};

/// The manifest (`state.json`): which bundle runs, the probation, the history.
struct ConfigState {
  int64_t active = 0;  ///< 0: the local `-c` files
  std::optional<Trial> trial;
  /// mtime (ns) of the local main file when `active` was chosen: a local edit made later wins.
  int64_t base_mtime_ns = 0;
  std::vector<VersionEntry> versions;  ///< oldest first
  std::vector<nlohmann::json> events;  ///< the latest steps, oldest first (bounded)

  VersionEntry* find(int64_t version);
  int64_t highest() const;
};

/// The bundles on disk under one directory (`<storage dir>/config-versions/`):
///
///     state.json          the manifest, replaced atomically (write temp, fsync, rename, fsync dir)
///     versions/<N>/       one complete bundle each, written to `tmp-*/` first, fsynced, renamed
///
/// The manifest is the single switch: a bundle is active once the rename of `state.json` that
/// names it is done, so a kill -9 at any moment leaves either the old or the new config, whole.
/// Not thread-safe: one owner (RemoteConfig, or main before anything runs).
class ConfigVersions {
public:
  explicit ConfigVersions(std::string dir);
  /// `<dir of storage_path>/config-versions`.
  static std::string dirFor(const std::string& storage_path);

  const std::string& dir() const { return dir_; }
  std::string versionDir(int64_t version) const;
  /// The main file of a stored version.
  std::string mainFile(int64_t version) const;

  /// The manifest; an empty state when there is none. Throws std::runtime_error when it exists
  /// and cannot be read.
  ConfigState load() const;
  /// Replaces the manifest atomically and durably. Throws std::runtime_error.
  void save(const ConfigState& state) const;

  /// Writes `files` to a fresh temporary directory (not yet durable) and returns its path, for
  /// validation. Throws std::runtime_error.
  std::string stage(const std::map<std::string, std::string>& files) const;
  /// Makes a staged directory durable and renames it to versions/<N> (replacing nothing: throws
  /// when the version exists). Throws std::runtime_error.
  void commit(const std::string& staged, int64_t version) const;
  /// Removes a staged directory (best effort).
  void discard(const std::string& staged) const;
  /// Removes leftovers of interrupted writes (`tmp-*`) and stored versions beyond the `keep`
  /// newest that are neither active nor the trial's way back. Best effort.
  void prune(const ConfigState& state, size_t keep) const;

private:
  std::string dir_;
};

/// Milliseconds since the epoch of a file's modification time (ns), 0 when it does not exist.
int64_t fileMtimeNs(const std::string& path);

nlohmann::json toJson(const VersionEntry& e);

} // namespace hgj::config_push
