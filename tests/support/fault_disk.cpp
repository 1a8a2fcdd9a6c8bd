#include "tests/support/fault_disk.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace hgj::test {

namespace fs = std::filesystem;

namespace {

std::string errnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

bool mountTmpfs(const std::string& dir, int64_t bytes, std::string* error) {
  std::string opts = "size=" + std::to_string(bytes) + ",mode=0755";
  if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
    *error = errnoText("mount -t tmpfs " + dir);
    return false;
  }
  return true;
}

// Writes until the filesystem is full; returns the bytes written.
int64_t fillFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return 0;  // not even an inode left
  }
  int64_t total = 0;
  // Large writes first, then page-sized ones for the last pages.
  for (size_t chunk : {size_t{1} << 20, size_t{4096}, size_t{512}}) {
    std::vector<char> buf(chunk, 'x');
    while (true) {
      ssize_t n = ::write(fd, buf.data(), buf.size());
      if (n <= 0) {
        break;
      }
      total += n;
    }
  }
  ::close(fd);
  return total;
}

} // namespace

std::string SmallDisk::unavailableReason() {
  if (::geteuid() != 0) {
    return "mounting a size-capped tmpfs needs root (run the faults tests as root)";
  }
  TempDir probe;
  std::string error;
  if (!mountTmpfs(probe.path(), 1 << 20, &error)) {
    return error;
  }
  ::umount2(probe.path().c_str(), MNT_DETACH);
  return {};
}

SmallDisk::SmallDisk(int64_t bytes) : mount_(dir_.file("mnt")) {
  fs::create_directories(mount_);
  std::string error;
  if (!mountTmpfs(mount_, bytes, &error)) {
    throw std::runtime_error(error);
  }
}

SmallDisk::~SmallDisk() { ::umount2(mount_.c_str(), MNT_DETACH); }

int64_t SmallDisk::fill() {
  int64_t total = 0;
  // One file per call, so a later call takes what was freed meanwhile.
  total += fillFile(file("filler-" + std::to_string(fillers_++)));
  return total;
}

void SmallDisk::release() {
  for (int i = 0; i < fillers_; ++i) {
    ::unlink(file("filler-" + std::to_string(i)).c_str());
  }
  fillers_ = 0;
}

int64_t SmallDisk::freeBytes() const {
  struct statvfs st {};
  if (::statvfs(mount_.c_str(), &st) != 0) {
    return -1;
  }
  return static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
}

DatabaseHolder::DatabaseHolder(const std::string& db_path, Mode mode,
                               std::chrono::milliseconds timeout) {
  int in[2];
  int out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
    throw std::runtime_error(errnoText("pipe2"));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out[1], 2);
  std::vector<std::string> args{"sqlite3", "-batch", db_path};
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  int rc = ::posix_spawnp(&pid_, "sqlite3", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  ::close(out[1]);
  in_ = in[1];
  out_ = out[0];
  if (rc != 0) {
    pid_ = -1;
    throw std::runtime_error(std::string("cannot start sqlite3: ") + std::strerror(rc));
  }
  // The gateway's writer holds the write lock for milliseconds at a time: wait for it as any
  // well-behaved second writer would.
  std::string begin = mode == Mode::Exclusive
                          ? "BEGIN EXCLUSIVE;\n"
                          : "BEGIN;\nSELECT count(*) > -1 FROM sqlite_master;\n";
  if (!command(".timeout 10000\n" + begin + "SELECT 'hgj-lock-' || 'held';\n") ||
      !readUntil("hgj-lock-held", timeout)) {
    std::string seen = seen_;
    release();
    throw std::runtime_error("sqlite3 did not take the lock on " + db_path + ": " + seen);
  }
}

DatabaseHolder::~DatabaseHolder() { release(); }

bool DatabaseHolder::command(const std::string& sql) {
  size_t off = 0;
  while (off < sql.size()) {
    ssize_t n = ::write(in_, sql.data() + off, sql.size() - off);
    if (n <= 0) {
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

bool DatabaseHolder::readUntil(const std::string& marker, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[512];
  while (seen_.find(marker) == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return false;
    }
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      continue;
    }
    ssize_t n = ::read(out_, buf, sizeof buf);
    if (n <= 0) {
      return false;  // the shell exited
    }
    seen_.append(buf, static_cast<size_t>(n));
  }
  return true;
}

bool DatabaseHolder::release() {
  if (pid_ <= 0) {
    return false;
  }
  command("COMMIT;\n.quit\n");
  ::close(in_);
  in_ = -1;
  int status = 0;
  bool exited = waitFor([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; },
                        std::chrono::seconds(10));
  if (!exited) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  bool clean = exited && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  ::close(out_);
  out_ = -1;
  pid_ = -1;
  return clean;
}

} // namespace hgj::test
