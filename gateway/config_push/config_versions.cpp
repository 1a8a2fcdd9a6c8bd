#include "gateway/config_push/config_versions.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hgj::config_push {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr size_t kMaxEvents = 50;

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw std::runtime_error(what + " " + path + ": " + std::strerror(errno));
}

void syncPath(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) {
    fail("cannot open", path);
  }
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) {
    fail("cannot fsync", path);
  }
}

void writeFile(const std::string& path, const std::string& data, bool sync) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) {
    fail("cannot create", path);
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      ::close(fd);
      fail("cannot write", path);
    }
    done += static_cast<size_t>(n);
  }
  if (sync && ::fsync(fd) != 0) {
    ::close(fd);
    fail("cannot fsync", path);
  }
  if (::close(fd) != 0) {
    fail("cannot close", path);
  }
}

void makeDir(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) {
    throw std::runtime_error("cannot create " + path + ": " + ec.message());
  }
}

// Every file and directory under `root` (deepest first for directories), then `root` itself.
void syncTree(const std::string& root) {
  std::vector<std::string> dirs;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_directory()) {
      dirs.push_back(e.path().string());
    } else {
      syncPath(e.path().string(), false);
    }
  }
  std::sort(dirs.begin(), dirs.end(), [](const auto& a, const auto& b) { return a > b; });
  for (const auto& d : dirs) {
    syncPath(d, true);
  }
  syncPath(root, true);
}

json entryJson(const VersionEntry& e) {
  return {{"version", e.version},   {"status", e.status},         {"by", e.by},
          {"identity", e.identity}, {"request_id", e.request_id}, {"received_ms", e.received_ms},
          {"changed_ms", e.changed_ms}, {"message", e.message}};
}

VersionEntry entryFrom(const json& j) {
  VersionEntry e;
  e.version = j.value("version", int64_t{0});
  e.status = j.value("status", std::string());
  e.by = j.value("by", std::string());
  e.identity = j.value("identity", std::string());
  e.request_id = j.value("request_id", std::string());
  e.received_ms = j.value("received_ms", int64_t{0});
  e.changed_ms = j.value("changed_ms", int64_t{0});
  e.message = j.value("message", std::string());
  return e;
}

} // namespace

VersionEntry* ConfigState::find(int64_t version) {
  for (auto& v : versions) {
    if (v.version == version) {
      return &v;
    }
  }
  return nullptr;
}

int64_t ConfigState::highest() const {
  int64_t h = 0;
  for (const auto& v : versions) {
    h = std::max(h, v.version);
  }
  return h;
}

json toJson(const VersionEntry& e) { return entryJson(e); }

int64_t fileMtimeNs(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return 0;
  }
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

ConfigVersions::ConfigVersions(std::string dir) : dir_(std::move(dir)) {}

std::string ConfigVersions::dirFor(const std::string& storage_path) {
  return (fs::path(storage_path).parent_path() / "config-versions").string();
}

std::string ConfigVersions::versionDir(int64_t version) const {
  return dir_ + "/versions/" + std::to_string(version);
}

std::string ConfigVersions::mainFile(int64_t version) const {
  return versionDir(version) + "/gateway.yaml";
}

ConfigState ConfigVersions::load() const {
  ConfigState s;
  const std::string path = dir_ + "/state.json";
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT || !fs::exists(path)) {
      return s;
    }
    fail("cannot read", path);
  }
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw std::runtime_error(path + ": not a config manifest (malformed JSON)");
  }
  s.active = j.value("active", int64_t{0});
  s.base_mtime_ns = j.value("base_mtime_ns", int64_t{0});
  if (auto t = j.find("trial"); t != j.end() && t->is_object()) {
    Trial trial;
    trial.version = t->value("version", int64_t{0});
    trial.previous = t->value("previous", int64_t{0});
    trial.since_ms = t->value("since_ms", int64_t{0});
    trial.boots = t->value("boots", int64_t{0});
    s.trial = trial;
  }
  if (auto v = j.find("versions"); v != j.end() && v->is_array()) {
    for (const auto& e : *v) {
      if (e.is_object()) {
        s.versions.push_back(entryFrom(e));
      }
    }
  }
  if (auto ev = j.find("events"); ev != j.end() && ev->is_array()) {
    for (const auto& e : *ev) {
      s.events.push_back(e);
    }
  }
  return s;
}

void ConfigVersions::save(const ConfigState& state) const {
  makeDir(dir_);
  json j = {{"active", state.active}, {"base_mtime_ns", state.base_mtime_ns}};
  j["trial"] = nullptr;
  if (state.trial) {
    j["trial"] = {{"version", state.trial->version},
                  {"previous", state.trial->previous},
                  {"since_ms", state.trial->since_ms},
                  {"boots", state.trial->boots}};
  }
  j["versions"] = json::array();
  for (const auto& v : state.versions) {
    j["versions"].push_back(entryJson(v));
  }
  j["events"] = json::array();
  const size_t first = state.events.size() > kMaxEvents ? state.events.size() - kMaxEvents : 0;
  for (size_t i = first; i < state.events.size(); ++i) {
    j["events"].push_back(state.events[i]);
  }
  const std::string tmp = dir_ + "/state.json.tmp";
  writeFile(tmp, j.dump(1) + "\n", true);
  if (::rename(tmp.c_str(), (dir_ + "/state.json").c_str()) != 0) {
    fail("cannot rename", tmp);
  }
  syncPath(dir_, true);
}

std::string ConfigVersions::stage(const std::map<std::string, std::string>& files) const {
  static std::atomic<uint64_t> counter{0};
  const std::string staged =
      dir_ + "/tmp-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  std::error_code ec;
  fs::remove_all(staged, ec);
  makeDir(staged);
  for (const auto& [name, content] : files) {
    const fs::path p = fs::path(staged) / name;
    makeDir(p.parent_path().string());
    writeFile(p.string(), content, false);
  }
  return staged;
}

void ConfigVersions::commit(const std::string& staged, int64_t version) const {
  makeDir(dir_ + "/versions");
  const std::string target = versionDir(version);
  if (fs::exists(target)) {
    throw std::runtime_error("version " + std::to_string(version) + " is already stored");
  }
  syncTree(staged);
  if (::rename(staged.c_str(), target.c_str()) != 0) {
    fail("cannot rename", staged);
  }
  syncPath(dir_ + "/versions", true);
  syncPath(dir_, true);
}

void ConfigVersions::discard(const std::string& staged) const {
  std::error_code ec;
  fs::remove_all(staged, ec);
}

void ConfigVersions::prune(const ConfigState& state, size_t keep) const {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    if (e.path().filename().string().rfind("tmp-", 0) == 0) {
      fs::remove_all(e.path(), ec);
    }
  }
  std::set<int64_t> needed{state.active};
  if (state.trial) {
    needed.insert(state.trial->previous);
  }
  std::vector<int64_t> stored;
  for (const auto& e : fs::directory_iterator(dir_ + "/versions", ec)) {
    const std::string name = e.path().filename().string();
    if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos &&
        name.size() < 12) {
      stored.push_back(std::stoll(name));
    }
  }
  std::sort(stored.rbegin(), stored.rend());
  for (size_t i = keep; i < stored.size(); ++i) {
    if (needed.count(stored[i]) == 0) {
      fs::remove_all(versionDir(stored[i]), ec);
    }
  }
}

} // namespace hgj::config_push
