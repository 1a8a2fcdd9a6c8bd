#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "tests/support/test_support.h"

using hgj::core::journalStreamMatches;
using hgj::core::syslogPriority;

namespace {

std::string devIno(int fd) {
  struct stat st {};
  REQUIRE(::fstat(fd, &st) == 0);
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

TEST_CASE("log: levels map to the syslog priorities journald filters on", "[log]") {
  CHECK(syslogPriority(spdlog::level::critical) == 2);
  CHECK(syslogPriority(spdlog::level::err) == 3);
  CHECK(syslogPriority(spdlog::level::warn) == 4);
  CHECK(syslogPriority(spdlog::level::info) == 6);
  CHECK(syslogPriority(spdlog::level::debug) == 7);
  CHECK(syslogPriority(spdlog::level::trace) == 7);
}

TEST_CASE("log: JOURNAL_STREAM is believed only for the file it names", "[log]") {
  hgj::test::TempDir dir;
  int a = ::open(dir.file("a").c_str(), O_CREAT | O_WRONLY, 0600);
  int b = ::open(dir.file("b").c_str(), O_CREAT | O_WRONLY, 0600);
  REQUIRE(a >= 0);
  REQUIRE(b >= 0);
  std::string a_id = devIno(a);
  CHECK(journalStreamMatches(a, a_id.c_str()));
  // A redirect below a unit inherits the variable but writes elsewhere: plain text there.
  CHECK_FALSE(journalStreamMatches(b, a_id.c_str()));
  CHECK_FALSE(journalStreamMatches(a, nullptr));
  CHECK_FALSE(journalStreamMatches(a, ""));
  CHECK_FALSE(journalStreamMatches(a, "12"));
  CHECK_FALSE(journalStreamMatches(a, (a_id + "x").c_str()));
  CHECK_FALSE(journalStreamMatches(-1, a_id.c_str()));
  ::close(a);
  ::close(b);
}

TEST_CASE("log: the journal stream sink prefixes every line with its priority", "[log]") {
  hgj::test::TempDir dir;
  std::string path = dir.file("journal");
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  REQUIRE(fd >= 0);
  auto sink = hgj::core::makeJournalStreamSink(fd);
  sink->set_pattern("%l %v");
  spdlog::logger logger("journal-test", sink);
  logger.set_level(spdlog::level::trace);
  logger.info("started");
  logger.warn("port {} hot", 7);
  logger.error("reload failed:\nline two");
  logger.critical("stopping");
  logger.debug("detail");
  logger.flush();
  ::close(fd);
  CHECK(readAll(path) == "<6>info started\n"
                         "<4>warning port 7 hot\n"
                         "<3>error reload failed:\n"
                         "<3>line two\n"
                         "<2>critical stopping\n"
                         "<7>debug detail\n");
}
