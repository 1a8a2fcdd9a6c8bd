// A stand-in daemon for the dashboard's browser test: the real HttpServer over a hand-built
// compound of the example size, a read model the test changes through stdin, and an alerts table
// in a temp directory. Prints "PORT <n>" once listening on 127.0.0.1, then answers one line per
// command (options: --static-dir DIR, --viewer-token T, --operator-token T):
//   space <id> occupied|free|unknown   -> "ok"     (publishes a snapshot and a "space" event)
//   alert <rule> <device> <severity> <message...> -> "alert <id>"
//   quit
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/metrics.h"
#include "gateway/api/http_server.h"
#include "tests/integration/api/api_fixture.h"

int main(int argc, char** argv) {
  using namespace hgj;
  // stdout carries the protocol; logs go to stderr.
  spdlog::set_default_logger(spdlog::stderr_color_mt("fixture"));
  std::string dir =
      std::filesystem::temp_directory_path() / ("hgj_browser_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string db = dir + "/gateway.db";
  int rc = 0;
  try {
    api::testing::CompoundShape shape{500, 65, 37, 10};
    auto compound = api::testing::makeCompound(shape);
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    api::testing::LiveState live(compound, now);
    live.fillDefaults();
    pipeline::ReadModel read_model;
    live.publish(read_model);
    api::testing::createAlertsTable(db);
    api::testing::insertAlert(db, "port_over_temp", "S03/P07", "G1", "critical", "active",
                              "S03/P07 端口温度 72.5°C，已断电", "72.5", now - 90'000);
    api::testing::insertAlert(db, "device_offline", "EV-12", "G1", "warning", "active",
                              "EV-12 离线", "\"offline\"", now - 600'000);
    api::testing::TestCommandSink sink(db, &read_model, now);
    core::MetricsRegistry metrics;
    api::HttpConfig cfg;
    cfg.port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
      std::string flag = argv[i];
      if (flag == "--static-dir") {
        cfg.static_dir = argv[i + 1];
      } else if (flag == "--viewer-token") {
        cfg.viewer_token = argv[i + 1];
      } else if (flag == "--operator-token") {
        cfg.operator_token = argv[i + 1];
      }
    }
    api::HttpServer server(cfg, read_model, sink, metrics, db, [] {
      return nlohmann::json{{"status", "ok"}};
    });
    server.start();
    std::cout << "PORT " << server.port() << std::endl;
    std::string line;
    while (std::getline(std::cin, line)) {
      std::istringstream in(line);
      std::string cmd;
      in >> cmd;
      auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
      live.setNow(wall);
      if (cmd == "space") {
        std::string id;
        std::string st;
        in >> id >> st;
        if (compound->device(id) == nullptr) {
          std::cout << "error unknown device" << std::endl;
          continue;
        }
        if (st == "unknown") {
          live.setSpace(id, std::nullopt);
        } else {
          live.setSpace(id, st == "occupied");
        }
        live.publish(read_model);
        std::cout << "ok" << std::endl;
      } else if (cmd == "alert") {
        std::string rule;
        std::string device;
        std::string severity;
        in >> rule >> device >> severity;
        std::string message;
        std::getline(in, message);
        auto id = api::testing::insertAlert(db, rule, device, "G1", severity, "active",
                                            message.empty() ? rule : message.substr(1), "1", wall);
        read_model.pushEvent("alert", nlohmann::json{{"id", id}, {"state", "active"}}.dump());
        std::cout << "alert " << id << std::endl;
      } else if (cmd == "quit") {
        break;
      } else if (!cmd.empty()) {
        std::cout << "error unknown command" << std::endl;
      }
    }
    server.stop();
  } catch (const std::exception& e) {
    std::cerr << "fixture: " << e.what() << std::endl;
    rc = 1;
  }
  std::filesystem::remove_all(dir);
  return rc;
}
