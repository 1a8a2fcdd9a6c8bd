#pragma once

// Shared by unit_alerts and integration_alerts: a small hand-built compound, a recording
// listener and a local HTTP server standing in for the robots.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "core/config_node.h"
#include "gateway/alerts/alert_manager.h"
#include "gateway/alerts/alerts_config.h"
#include "model/compound.h"
#include "tests/support/test_support.h"

namespace hgj::alerts::testing {

// The shared helpers of tests/support, under the names the alerts tests use.
using hgj::test::TempDir;
using hgj::test::waitFor;

/// Site "demo"; grid g1 (e-bike shed S03 with ports S03/P01..P10; staff 张三, escalation 李经理)
/// on channels `g1_channels`; grid g2 (parking P-B1-0001..0300, staff 王五) on `g2_channels`.
inline std::shared_ptr<model::Compound> makeCompound(
    std::vector<std::string> g1_channels = {"wecom", "dingtalk", "hook"},
    std::vector<std::string> g2_channels = {"wecom"}) {
  auto c = std::make_shared<model::Compound>();
  c->site_id = "demo";
  c->site_name = "示例小区";
  auto shed = std::make_unique<model::Profile>();
  shed->name = "ebike_shed_mqtt";
  shed->device_type = "ebike_shed";
  auto port = std::make_unique<model::Profile>();
  port->name = "ebike_port_mqtt";
  port->device_type = "ebike_port";
  auto parking = std::make_unique<model::Profile>();
  parking->name = "parking_sensor_mqtt";
  parking->device_type = "parking_sensor";

  model::Grid g1;
  g1.id = "g1";
  g1.name = "一网格";
  g1.staff.push_back({"张三", "13800000001", "zhangsan", ""});
  g1.escalation.push_back({"李经理", "13900000002", "limanager", "13900000009"});
  g1.channels = std::move(g1_channels);
  model::Grid g2;
  g2.id = "g2";
  g2.name = "地库网格";
  g2.staff.push_back({"王五", "13700000003", "wangwu", ""});
  g2.channels = std::move(g2_channels);
  c->grids = {g1, g2};

  model::Device s03;
  s03.index = 0;
  s03.id = "S03";
  s03.profile = shed.get();
  s03.grid = "g1";
  s03.location = {"3号楼", "", "", ""};
  c->devices.push_back(s03);
  for (int n = 1; n <= 10; ++n) {
    model::Device p;
    p.index = static_cast<model::DeviceIndex>(c->devices.size());
    char id[32];
    std::snprintf(id, sizeof id, "S03/P%02d", n);
    p.id = id;
    p.profile = port.get();
    p.grid = "g1";
    p.parent = 0;
    p.child_number = n;
    c->devices[0].children.push_back(p.index);
    c->devices.push_back(p);
  }
  for (int n = 1; n <= 300; ++n) {
    model::Device p;
    p.index = static_cast<model::DeviceIndex>(c->devices.size());
    char id[32];
    std::snprintf(id, sizeof id, "P-B1-%04d", n);
    p.id = id;
    p.profile = parking.get();
    p.grid = "g2";
    p.location = {"", "B1", std::string(1, "ABCD"[(n - 1) / 125 % 4]), id};
    c->devices.push_back(p);
  }
  c->profiles.push_back(std::move(shed));
  c->profiles.push_back(std::move(port));
  c->profiles.push_back(std::move(parking));
  c->buildIndexes();
  return c;
}

/// Parses `yaml` (the body of the `alerts:` section) against `compound`; REQUIREs no problems.
inline AlertsConfig parseConfig(const std::string& yaml, const model::Compound& compound,
                                core::Diagnostics& diag) {
  auto root = core::loadYamlText(yaml, "alerts.yaml", diag);
  if (!root) {
    return defaultAlertsConfig();
  }
  return parseAlertsConfig(root->child("alerts"), compound);
}

struct RecordingListener : AlertListener {
  std::vector<AlertEvent> events;
  void onAlertEvent(const AlertEvent& e) override { events.push_back(e); }
};

struct ReceivedRequest {
  std::string path;
  std::string timestamp;  ///< DingTalk query parameter
  std::string sign;       ///< DingTalk query parameter (decoded)
  std::string body;
};

/// A local HTTP server on 127.0.0.1 and a free port, answering every POST with `reply`
/// (default: 200 {"errcode":0,"errmsg":"ok"}) and recording what it got.
class FakeRobot {
public:
  using Reply = std::function<void(const httplib::Request&, httplib::Response&)>;

  FakeRobot() {
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      Reply reply;
      {
        std::lock_guard lock(mu_);
        ReceivedRequest r;
        r.path = req.path;
        r.timestamp = req.get_param_value("timestamp");
        r.sign = req.get_param_value("sign");
        r.body = req.body;
        received_.push_back(std::move(r));
        reply = reply_;
      }
      if (reply) {
        reply(req, res);
      } else {
        res.set_content(R"({"errcode":0,"errmsg":"ok"})", "application/json");
      }
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    waitFor([this] { return server_.is_running(); });
  }
  ~FakeRobot() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  std::string url(const std::string& path_query) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path_query;
  }
  void setReply(Reply r) {
    std::lock_guard lock(mu_);
    reply_ = std::move(r);
  }
  std::vector<ReceivedRequest> received() const {
    std::lock_guard lock(mu_);
    return received_;
  }
  size_t count() const {
    std::lock_guard lock(mu_);
    return received_.size();
  }

private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<ReceivedRequest> received_;  // guarded by mu_
  Reply reply_;                            // guarded by mu_
};

} // namespace hgj::alerts::testing
