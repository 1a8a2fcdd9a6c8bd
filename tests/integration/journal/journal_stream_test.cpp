// The daemon's own output under systemd: with $JOURNAL_STREAM naming its stdout, every line
// carries an sd-daemon <N> priority (what `journalctl -p warning` filters on); without it (or
// when stdout is another file) lines are plain text with a timestamp.
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>
#include <csignal>
#include <sys/stat.h>

#include "tests/support/test_support.h"

using namespace hgj::test;

namespace {

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A small compound whose uplink password sits inline in a file others can read: the daemon warns
// about it at every start, a warning that does not depend on timing.
std::string writeConfig(const TempDir& dir, int http_port, const std::string& broker_url) {
  std::string common = sourcePath("tests/config_cases/common");
  std::string path = dir.file("gateway.yaml");
  std::ofstream(path) << "site: {id: test-site, name: t}\n"
                      << "include:\n"
                      << "  grids: " << common << "/grids.yaml\n"
                      << "  devices: " << common << "/devices.yaml\n"
                      << "  rules: " << common << "/rules.yaml\n"
                      << "  alerts: " << common << "/alerts.yaml\n"
                      << "  profiles: " << sourcePath("conf/profiles") << "\n"
                      << "mqtt: {url: \"" << broker_url << "\"}\n"
                      << "storage: {path: hgj.db}\n"
                      << "http: {port: " << http_port << "}\n"
                      << "uplink: {enabled: false, password: not-for-others}\n";
  ::chmod(path.c_str(), 0644);
  return path;
}

std::string devIno(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

} // namespace

TEST_CASE("journal: under systemd the daemon's warnings carry priority 4 in the raw stream",
          "[journal]") {
  TempDir dir;
  Broker broker;
  std::string config = writeConfig(dir, freePort(), broker.url());
  std::string log = dir.file("stream.log");
  std::ofstream(log).close();  // the stream exists before the daemon: its inode is known
  Process gw({std::string(HGJ_BINARY_DIR) + "/hgj-gateway", "run", "-c", config}, log,
             {"JOURNAL_STREAM=" + devIno(log)});
  REQUIRE(waitFor([&] {
    std::string out = readAll(log);
    return out.find("<4>warning") != std::string::npos && out.find("<6>info") != std::string::npos;
  }));
  gw.signal(SIGTERM);
  CHECK(gw.wait() == 0);
  std::string out = readAll(log);
  INFO(out);
  CHECK(out.find("<4>warning [") != std::string::npos);
  CHECK(out.find("uplink.password: warning: the secret is inline in " + config) !=
        std::string::npos);
  CHECK(out.find("not-for-others") == std::string::npos);
  // Every log line is prefixed, and none carries a timestamp of its own (the journal adds one).
  std::istringstream lines(out);
  std::string line;
  std::regex prefixed(R"(^<[0-7]>(trace|debug|info|warning|error|critical) \[\d+\] .*)");
  int logged = 0;
  while (std::getline(lines, line)) {
    if (line == "hgj-gateway ready") {
      continue;  // the plain readiness line on stdout is not a log record
    }
    CHECK(std::regex_match(line, prefixed));
    ++logged;
  }
  CHECK(logged >= 3);
}

TEST_CASE("journal: outside systemd the log is plain text with timestamps", "[journal]") {
  TempDir dir;
  Broker broker;
  std::string config = writeConfig(dir, freePort(), broker.url());
  std::string other = dir.file("other");
  std::ofstream(other).close();
  std::string log = dir.file("plain.log");
  // JOURNAL_STREAM inherited but naming another file (a shell redirect below a unit).
  Process gw({std::string(HGJ_BINARY_DIR) + "/hgj-gateway", "run", "-c", config}, log,
             {"JOURNAL_STREAM=" + devIno(other)});
  REQUIRE(waitFor([&] { return readAll(log).find(" warning [") != std::string::npos; }));
  gw.signal(SIGTERM);
  CHECK(gw.wait() == 0);
  std::string out = readAll(log);
  INFO(out);
  CHECK(out.find("<4>") == std::string::npos);
  CHECK(std::regex_search(out, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z warning \[)")));
  CHECK(out.find("\033[") == std::string::npos);
}
