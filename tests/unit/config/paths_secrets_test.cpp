// Paths in a config are the config file's (not the working directory's), secrets may come from
// files, and `check` warns about secrets that other users can read.
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config_node.h"
#include "gateway/alerts/alerts_config.h"
#include "gateway/config/config.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;
using namespace hgj;

namespace {

// Runs `body` with the working directory set to `dir`, restoring it afterwards.
template <typename F>
void inDirectory(const std::string& dir, F body) {
  fs::path before = fs::current_path();
  fs::current_path(dir);
  try {
    body();
  } catch (...) {
    fs::current_path(before);
    throw;
  }
  fs::current_path(before);
}

std::string writeMain(const test::TempDir& dir, const std::string& extra) {
  std::string common = test::sourcePath("tests/config_cases/common");
  fs::create_directories(dir.file("etc"));
  std::string path = dir.file("etc/gateway.yaml");
  std::ofstream(path) << "site: {id: test-site, name: t}\n"
                      << "include:\n"
                      << "  grids: " << common << "/grids.yaml\n"
                      << "  devices: " << common << "/devices.yaml\n"
                      << "  rules: " << common << "/rules.yaml\n"
                      << "  alerts: " << common << "/alerts.yaml\n"
                      << "  profiles: " << test::sourcePath("conf/profiles") << "\n"
                      << extra;
  return path;
}

void writeSecret(const std::string& path, const std::string& value, mode_t mode) {
  std::ofstream(path) << value << "\n";
  ::chmod(path.c_str(), mode);
}

} // namespace

TEST_CASE("config paths: storage.path and log.file are relative to the config file's folder",
          "[config][paths]") {
  test::TempDir dir;
  std::string main = writeMain(dir, "storage: {path: data/hgj.db}\nlog: {file: ../log/gw.log}\n");
  fs::create_directories(dir.file("elsewhere"));
  inDirectory(dir.file("elsewhere"), [&] {
    core::Diagnostics diag;
    auto cfg = config::loadConfig("../etc/gateway.yaml", {}, diag);
    INFO(diag.format());
    REQUIRE(diag.ok());
    CHECK(cfg.storage.path == fs::path(dir.file("etc/data/hgj.db")).lexically_normal().string());
    CHECK(cfg.log.file == fs::path(dir.file("log/gw.log")).lexically_normal().string());
  });
  (void)main;
}

TEST_CASE("config paths: mqtt.tls and uplink.tls files are the config file's, like every path",
          "[config][paths]") {
  // The two tls sections had a parser each; mqtt's read its files relative to the working
  // directory (and failed to find them when the daemon started elsewhere). One parser now.
  test::TempDir dir;
  writeMain(dir, "mqtt: {client: paho, url: ssl://127.0.0.1:8883, "
                 "tls: {ca_file: certs/ca.pem}}\n"
                 "uplink: {enabled: true, url: ssl://127.0.0.1:8884, "
                 "tls: {ca_file: certs/ca.pem, cert_file: certs/gw.pem, "
                 "key_file: certs/gw.key}}\n");
  fs::create_directories(dir.file("etc/certs"));
  for (const char* f : {"ca.pem", "gw.pem", "gw.key"}) {
    std::ofstream(dir.file(std::string("etc/certs/") + f)) << "PEM\n";
  }
  fs::create_directories(dir.file("elsewhere"));
  inDirectory(dir.file("elsewhere"), [&] {
    core::Diagnostics diag;
    auto cfg = config::loadConfig("../etc/gateway.yaml", {}, diag);
    INFO(diag.format());
    REQUIRE(diag.ok());
    const std::string certs = fs::path(dir.file("etc/certs")).lexically_normal().string();
    CHECK(cfg.mqtt.tls.ca_file == certs + "/ca.pem");
    CHECK(cfg.uplink.tls.ca_file == certs + "/ca.pem");
    CHECK(cfg.uplink.tls.cert_file == certs + "/gw.pem");
    CHECK(cfg.uplink.tls.key_file == certs + "/gw.key");
  });
}

TEST_CASE("config paths: without storage.path the database is /var/lib/hgj/hgj.db",
          "[config][paths]") {
  test::TempDir dir;
  std::string main = writeMain(dir, "");
  core::Diagnostics diag;
  auto cfg = config::loadConfig(main, {}, diag);
  REQUIRE(diag.ok());
  CHECK(cfg.storage.path == "/var/lib/hgj/hgj.db");
}

TEST_CASE("config paths: a relative path given with --set is the working directory's",
          "[config][paths]") {
  test::TempDir dir;
  std::string main = writeMain(dir, "storage: {path: data/hgj.db}\n");
  inDirectory(dir.path(), [&] {
    core::Diagnostics diag;
    auto cfg = config::loadConfig(main, {{"storage.path", "here.db"}}, diag);
    REQUIRE(diag.ok());
    CHECK(cfg.storage.path == fs::path(dir.file("here.db")).lexically_normal().string());
    core::Diagnostics mem;
    auto in_memory = config::loadConfig(main, {{"storage.path", ":memory:"}}, mem);
    CHECK(in_memory.storage.path == ":memory:");
  });
}

TEST_CASE("config secrets: every secret key reads *_file relative to the config's folder",
          "[config][secrets]") {
  test::TempDir dir;
  std::string main = writeMain(dir, R"(uplink:
  enabled: true
  url: ssl://127.0.0.1:8883
  mode: thingsboard
  password_file: pw
  thingsboard: {access_token_file: tb}
  tls: {key_password_file: /KEYPW}
)");
  writeSecret(dir.file("etc/pw"), "uplink-secret", 0640);
  writeSecret(dir.file("etc/tb"), "  tb-secret \n", 0600);
  std::string keypw = dir.file("keypw");
  writeSecret(keypw, "key-secret", 0600);
  std::string text;
  {
    std::ifstream in(main);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  text.replace(text.find("/KEYPW"), 6, keypw);
  std::ofstream(main) << text;
  core::Diagnostics diag;
  auto cfg = config::loadConfig(main, {}, diag);
  INFO(diag.format());
  REQUIRE(diag.ok());
  CHECK(cfg.uplink.password == "uplink-secret");
  CHECK(cfg.uplink.thingsboard_access_token == "tb-secret");
  CHECK(cfg.uplink.tls.key_password == "key-secret");
  // Files only root and the group read: nothing to warn about.
  CHECK(core::exposedSecretWarnings(diag).empty());
}

TEST_CASE("config secrets: check warns about a secret others can read, never showing it",
          "[config][secrets]") {
  test::TempDir dir;
  std::string main = writeMain(dir, "uplink: {enabled: false, password: inline-secret, "
                                    "thingsboard: {access_token_file: tb}}\n");
  ::chmod(main.c_str(), 0644);
  writeSecret(dir.file("etc/tb"), "file-secret", 0604);
  core::Diagnostics diag;
  config::loadConfig(main, {}, diag);
  REQUIRE(diag.ok());
  auto warnings = core::exposedSecretWarnings(diag);
  REQUIRE(warnings.size() == 2);
  CHECK(warnings[0] == main + ":8: uplink.password: warning: the secret is inline in " + main +
                           ", which any user can read (mode 0644); chmod o-rwx " + main +
                           ", or move the secret to uplink.password_file");
  CHECK(warnings[1].find("uplink.thingsboard.access_token_file: warning: the secret file " +
                         dir.file("etc/tb") + ", which any user can read (mode 0604)") !=
        std::string::npos);
  for (const auto& w : warnings) {
    CHECK(w.find("secret") != std::string::npos);
    CHECK(w.find("inline-secret") == std::string::npos);
    CHECK(w.find("file-secret") == std::string::npos);
  }
  ::chmod(main.c_str(), 0640);
  ::chmod(dir.file("etc/tb").c_str(), 0640);
  CHECK(core::exposedSecretWarnings(diag).empty());
}

TEST_CASE("alerts secrets: a channel URL in messages shows no key", "[config][secrets]") {
  CHECK(alerts::redactUrl("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K1") ==
        "https://qyapi.weixin.qq.com/<redacted>");
  CHECK(alerts::redactUrl("https://u:p@host:8443?access_token=T") == "https://<redacted>@host:8443/<redacted>");
  CHECK(alerts::redactUrl("https://host") == "https://host");
  CHECK(alerts::redactUrl("no scheme KEY") == "<redacted>");
}
