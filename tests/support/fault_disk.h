#pragma once

// Storage faults for daemon-level tests (docs/reliability.md rows 7, 8, 9): a small filesystem
// that can be filled to the last block, and another process holding the database's locks.

#include <chrono>
#include <cstdint>
#include <string>

#include <sys/types.h>

#include "tests/support/test_support.h"

namespace hgj::test {

/// A size-capped tmpfs mounted on a fresh directory, so a test can fill the disk under a
/// running gateway and give the space back. Mounting needs root (CAP_SYS_ADMIN); tests call
/// unavailableReason() first and skip with its message.
class SmallDisk {
public:
  /// Empty when a SmallDisk can be made here; otherwise why not (for the skip message).
  static std::string unavailableReason();

  /// Mounts a tmpfs of `bytes` (rounded up to pages). Throws std::runtime_error on failure.
  explicit SmallDisk(int64_t bytes);
  /// Unmounts (lazily, so a process still holding a file cannot keep the mount) and removes
  /// the directory.
  ~SmallDisk();
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;

  std::string file(const std::string& name) const { return mount_ + "/" + name; }
  const std::string& mountPoint() const { return mount_; }

  /// Writes filler files until the filesystem refuses with ENOSPC; returns the bytes written.
  /// May be called again to take space that was freed meanwhile.
  int64_t fill();
  /// Deletes the filler files: the space is back.
  void release();
  /// Bytes an unprivileged writer could still allocate.
  int64_t freeBytes() const;

private:
  TempDir dir_;
  std::string mount_;
  int fillers_ = 0;
};

/// Another process holding the database, as an installer's script or a backup would: the
/// sqlite3 shell with an open transaction, fed on its stdin.
class DatabaseHolder {
public:
  enum class Mode {
    /// BEGIN EXCLUSIVE: the write lock, until release() (in WAL mode readers still read).
    Exclusive,
    /// BEGIN; SELECT ...: a read transaction that pins a snapshot, so no checkpoint can go
    /// past it and the WAL grows while it lasts.
    Reader,
  };

  /// Starts the shell and returns once it holds the lock (its answer to a marker query is read
  /// back). Throws std::runtime_error when it cannot get there within `timeout`.
  DatabaseHolder(const std::string& db_path, Mode mode,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10));
  /// Releases (if not done) and reaps the shell.
  ~DatabaseHolder();
  DatabaseHolder(const DatabaseHolder&) = delete;
  DatabaseHolder& operator=(const DatabaseHolder&) = delete;

  /// Ends the transaction and the shell; true when it exited cleanly.
  bool release();

private:
  bool command(const std::string& sql);
  bool readUntil(const std::string& marker, std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  int in_ = -1;   // the shell's stdin
  int out_ = -1;  // its stdout and stderr
  std::string seen_;
};

} // namespace hgj::test
