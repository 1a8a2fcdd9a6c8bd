// docs/reliability.md row 9: a corrupt or missing database file at start. The daemon starts,
// moves the bad file aside (kept for forensics, never overwritten), creates a new database,
// says so in one clear log line and raises an alert (docs/storage.md "Faults").
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>
#include <signal.h>

#include "tests/faults/storage/storage_fixture.h"

using namespace std::chrono_literals;
using hgj::test::queryInt;
using hgj::test::queryRows;
using hgj::test::waitFor;
using namespace hgj::test::storage;
namespace fs = std::filesystem;

namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<fs::path> besides(const std::string& db, const std::string& marker) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(fs::path(db).parent_path())) {
    if (e.path().filename().string().find(marker) != std::string::npos) {
      out.push_back(e.path());
    }
  }
  return out;
}

/// A gateway started on `db`: it must come up, with the bad file aside and a new database that
/// stores readings and holds the recovery alert.
void expectRecovered(const hgj::test::Broker& broker, const hgj::test::TempDir& dir,
                     const std::string& db, const std::string& aside_marker,
                     const std::string& bad_bytes) {
  auto gw = hgj::test::startGateway(broker.url(), db, dir.file("gw.log"));
  auto aside = besides(db, aside_marker);
  REQUIRE(aside.size() == 1);
  if (!bad_bytes.empty()) {
    CHECK(readFile(aside[0].string()) == bad_bytes);
  }
  CHECK(gw->output().find("storage: " + db) != std::string::npos);
  CHECK(gw->output().find(aside[0].string()) != std::string::npos);
  CHECK(waitFor(
      [&] {
        return queryInt(db, "SELECT count(*) FROM alerts WHERE rule='storage_db_recovered' AND "
                            "severity='critical'") == 1;
      },
      10s));
  hgj::test::TestClient device(broker.url(), "corrupt-devices");
  device.publish("compound/ebike/S01/P01/telemetry", portReport(31));
  CHECK(waitFor([&] {
    return queryInt(db, "SELECT count(*) FROM readings WHERE device='S01/P01'") > 0;
  }));
  CHECK(health(*gw)["storage"] == "ok");
  gw->signal(SIGTERM);
  CHECK(gw->wait() == 0);
  CHECK(queryRows(db, "PRAGMA integrity_check") == std::vector<std::string>{"ok"});
}

} // namespace

TEST_CASE("faults storage: a file that is not a database is moved aside and a new one created",
          "[faults][storage][row9]") {
  hgj::test::TempDir dir;
  hgj::test::Broker broker(false);
  const std::string db = dir.file("hgj.db");
  std::string garbage;
  for (int i = 0; i < 20000; ++i) {
    garbage += "not a database " + std::to_string(i) + "\n";
  }
  std::ofstream(db, std::ios::binary) << garbage;
  expectRecovered(broker, dir, db, ".corrupt-", garbage);
}

TEST_CASE("faults storage: a database whose pages were overwritten is moved aside at start",
          "[faults][storage][row9]") {
  hgj::test::TempDir dir;
  hgj::test::Broker broker(false);
  const std::string db = dir.file("hgj.db");
  {
    auto gw = hgj::test::startGateway(broker.url(), db, dir.file("first.log"));
    hgj::test::TestClient device(broker.url(), "corrupt-first");
    for (int i = 0; i < 200; ++i) {
      device.publish("compound/ebike/S02/P01/telemetry", portReport(30 + i * 0.01));
    }
    REQUIRE(waitFor([&] {
      return queryInt(db, "SELECT count(*) FROM readings WHERE device='S02/P01' AND "
                          "point='temp_c'") == 200;
    }));
    gw->signal(SIGTERM);
    REQUIRE(gw->wait() == 0);
  }
  // Everything in the main file, then a torn write over its b-tree pages (the header stays).
  REQUIRE(std::system(("sqlite3 '" + db + "' 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null")
                          .c_str()) == 0);
  std::string bytes = readFile(db);
  REQUIRE(bytes.size() > 8 * 4096);
  for (size_t i = 4096; i < bytes.size(); i += 1) {
    bytes[i] = static_cast<char>(0xA5 ^ (i & 0xff));
  }
  std::ofstream(db, std::ios::binary | std::ios::trunc) << bytes;
  expectRecovered(broker, dir, db, ".corrupt-", bytes);
}

TEST_CASE("faults storage: a WAL whose database file is gone is kept aside, not replayed into a "
          "new file",
          "[faults][storage][row9]") {
  hgj::test::TempDir dir;
  hgj::test::Broker broker(false);
  const std::string db = dir.file("hgj.db");
  std::ofstream(db + "-wal", std::ios::binary) << std::string(8192, 'w');
  expectRecovered(broker, dir, db, "-wal.orphan-", std::string(8192, 'w'));
}
