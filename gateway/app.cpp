#include "gateway/app.h"

#include <cerrno>
#include <cstring>
#include <thread>

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "drivers/modbus/modbus_driver.h"
#include "drivers/mqtt/mqtt_ingest.h"
#include "gateway/alerts/alert_manager.h"
#include "gateway/alerts/notifier.h"
#include "gateway/api/http_server.h"
#include "gateway/config_push/remote_config.h"
#include "gateway/pipeline/pipeline.h"
#include "gateway/uplink/uplink.h"
#include "gateway/pipeline/read_model.h"
#include "gateway/startup_error.h"
#include "gateway/storage/sqlite.h"
#include "gateway/storage/store.h"

namespace hgj {

App::App(config::GatewayConfig cfg, const core::Clock& clock)
    : cfg_(std::move(cfg)), clock_(clock) {
  if (!cfg_.modbus.enabled) {
    // Commissioning the MQTT devices first: the Modbus devices and their ports are configured
    // but nobody polls them, so none of them is reported offline.
    for (auto& d : cfg_.compound->devices) {
      const bool on_modbus =
          !d.modbus.line.empty() ||
          (d.parent != model::kNoDevice && !cfg_.compound->devices[d.parent].modbus.line.empty());
      d.monitored = !on_modbus;
    }
  }
  metrics_.gaugeFn("process_resident_memory_bytes", "resident memory of the gateway process",
                   [] { return core::processResidentBytes(); });
  metrics_.gaugeFn("hgj_heap_in_use_bytes",
                   "bytes the allocator has handed out and not had back (mallinfo2)",
                   [] { return core::heapInUseBytes(); });
  metrics_.gaugeFn("hgj_sqlite_memory_bytes",
                   "memory SQLite holds in this process (page caches, statements)",
                   [] { return static_cast<double>(storage::memoryUsed()); });
  store_ = std::make_unique<storage::Store>(cfg_.storage, cfg_.compound, metrics_, clock_);
  store_->setLiveness(&liveness_);
  read_model_ = std::make_unique<pipeline::ReadModel>(4096, std::chrono::seconds(60), clock_);
  pipeline::PipelineSettings settings;
  settings.loop = cfg_.pipeline;
  settings.storage = cfg_.storage;
  settings.history = cfg_.history;
  settings.queue_capacity = cfg_.mqtt.queue_capacity;
  settings.max_payload_bytes = cfg_.mqtt.max_payload_bytes;
  settings.max_topic_length = cfg_.mqtt.max_topic_length;
  settings.allow_override = cfg_.uplink.commands.allow_override;
  pipeline_ = std::make_unique<pipeline::Pipeline>(std::move(settings), cfg_.compound, cfg_.rules,
                                                   *store_, *read_model_, metrics_, clock_);
  pipeline_->setLiveness(liveness_);
  mqtt_ = drivers::mqtt::makeMqttIngest(cfg_.mqtt, pipeline_->subscriptions(), *cfg_.compound,
                                         *pipeline_, metrics_, clock_);
  mqtt_->setLiveness(liveness_);
  pipeline_->addDriver(mqtt_.get());
  if (cfg_.modbus.enabled && !cfg_.modbus.lines.empty()) {
    modbus_ = std::make_unique<drivers::modbus::ModbusDriver>(
        cfg_.modbus, *cfg_.compound, *pipeline_, metrics_, clock_, &liveness_);
    pipeline_->addDriver(modbus_.get());
  }
}

App::~App() { stop(); }

void App::start() {
  if (started_) {
    return;
  }
  // Whatever fails below leaves nothing running: each stage started is undone by stop(), in
  // reverse, before the error reaches main (a stage torn down under a running thread crashed
  // the daemon when its HTTP port was taken).
  try {
    startStages();
  } catch (...) {
    stop();
    throw;
  }
}

void App::checkSerialPorts() const {
  if (!modbus_) {
    return;
  }
  for (const auto& line : cfg_.modbus.lines) {
    // A missing device node at start is a wrong path or an adapter not plugged in; an adapter
    // that goes away later is retried by the line like any other broken link.
    if (line.kind == drivers::modbus::LineKind::Rtu && ::access(line.device.c_str(), F_OK) != 0) {
      throw StartupError(ExitCode::SerialPort,
                         "modbus line " + line.id + ": serial port " + line.device + ": " +
                             std::strerror(errno) + " (see modbus.lines, " + line.source + ")");
    }
  }
}

void App::startStages() {
  // Everything that can fail without a thread running comes first: the serial ports, the
  // database files (the store moves a corrupt database aside before anyone else opens it).
  checkSerialPorts();
  try {
    store_->open();
    pipeline_->restore(store_->loadState(), store_->loadLatches());
    if (cfg_.history.enabled) {
      // The history tables on a connection of our own, before the writer starts (as the
      // alerts do); rows are written later through the storage writer.
      storage::Database db(cfg_.storage.path);
      history::createHistorySchema(db, clock_.wallMs());
      pipeline_->restoreHistory(db);
    }
    // Alerts and their deliveries are written behind by the storage writer (one writer, one
    // fsync per batch); nothing on the pipeline thread waits for the disk.
    alerts_ = std::make_unique<alerts::AlertManager>(cfg_.alerts, cfg_.compound,
                                                     cfg_.storage.path, *store_, clock_, metrics_,
                                                     *pipeline_);
    notifier_ = std::make_unique<alerts::Notifier>(cfg_.alerts, alerts_->deliveries(), *store_,
                                                   clock_, metrics_);
    uplink_ = std::make_unique<uplink::Uplink>(cfg_.uplink, cfg_.compound->site_id,
                                               cfg_.storage.path, *read_model_, *pipeline_,
                                               clock_, metrics_);
  } catch (const StartupError&) {
    throw;
  } catch (const std::exception& e) {
    throw StartupError(ExitCode::Database, "storage: " + cfg_.storage.path + ": " + e.what() +
                                               " (see storage.path)");
  }
  alerts_->setWakeCallback([this] { notifier_->wake(); });
  pipeline_->setAlerts(alerts_.get());
  http_ = std::make_unique<api::HttpServer>(cfg_.http, *read_model_, *pipeline_, metrics_,
                                            cfg_.storage.path, [this] { return health(); });
  // Alert events go to the platform at once; their outbox rows ride in the alert's own
  // transaction (committed and sent concurrently, docs/storage.md "Durability").
  alerts_->setUpstream([this](const alerts::AlertEvent& event) {
    return uplink_->stage(uplink::Kind::Alert, "alerts", alerts::toJson(event));
  });
  // docs/reliability.md row 4: an outage longer than the outbox holds drops the oldest summaries,
  // and the people responsible must know. Runs on the thread that enqueued (the pipeline's own).
  uplink_->setDropHandler([this](uplink::Kind kind, uint64_t total) {
    pipeline_->noteOutboxDrop(uplink::kindName(kind), total);
  });

  if (remote_ != nullptr) {
    // Each step of a config push goes upstream as a message that is never dropped, and into
    // the audit table through the storage writer.
    remote_->setReporter([this](nlohmann::json event) {
      uplink_->enqueue(uplink::Kind::CmdResult, "config", std::move(event));
    });
    remote_->setAudit(store_.get());
    remote_->setHealth([this] { return health(); });
    uplink_->setConfigPushHandler(
        {[this](config_push::ConfigBundle bundle, std::string id, std::string identity) {
           return remote_->push(std::move(bundle), std::move(id), std::move(identity));
         },
         [this] { remote_->answered(); }});
    http_->setConfigControl([this] { return remote_->versions(); },
                            [this](const std::string& by, const std::string& identity) {
                              return remote_->rollback(by, identity);
                            });
  }

  // Consumers before producers, so that stop() (the reverse) stops every producer before what
  // it feeds: the store, the notifier and the uplink outlive the pipeline that hands them work,
  // and the pipeline outlives the drivers that deliver to it. The HTTP port is taken before the
  // pipeline runs its first rule, so a port in use stops the start before anything is actuated;
  // requests that reach a stopping pipeline are refused (its queue is closed).
  store_->start();
  stops_.emplace_back([this] { store_->stop(); });
  notifier_->start();
  stops_.emplace_back([this] { notifier_->stop(); });
  uplink_->start();
  stops_.emplace_back([this] { uplink_->stop(); });
  try {
    http_->start();
  } catch (const std::exception& e) {
    throw StartupError(ExitCode::HttpPort, e.what());
  }
  stops_.emplace_back([this] { http_->stop(); });
  pipeline_->start();
  stops_.emplace_back([this] { pipeline_->stop(); });
  // Southbound last: nothing arrives before it can be handled.
  mqtt_->start();
  stops_.emplace_back([this] { mqtt_->stop(); });
  if (modbus_) {
    modbus_->start();
    stops_.emplace_back([this] { modbus_->stop(); });
  }
  if (remote_ != nullptr) {
    remote_->start();
    stops_.emplace_back([this] { remote_->stop(); });
  }
  started_ = true;
  // "Ready" means subscribed, so a device's first message is not missed on a fresh session; a
  // broker that is down does not hold the gateway back (it keeps retrying on its own).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!mqtt_->subscribed() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!mqtt_->subscribed()) {
    spdlog::warn("mqtt: not subscribed yet ({}); continuing, it keeps retrying", mqtt_->health());
  }
}

void App::stop() {
  // Every stage that was started is stopped, newest first, also after a failed start(): the
  // drivers and the HTTP API (nothing new arrives), the pipeline (drains what is queued into
  // the store and the outbox), then the uplink, the notifier and the store (commits the rest).
  while (!stops_.empty()) {
    auto stop_stage = std::move(stops_.back());
    stops_.pop_back();
    stop_stage();
  }
  if (started_) {
    read_model_->close();
  }
  started_ = false;
}

std::string App::reload(config::GatewayConfig fresh) {
  // Rule point and device references are indexes into the compound: the rules can be swapped
  // only while devices and profiles are the same. Anything else needs a restart.
  const model::Compound& a = *cfg_.compound;
  const model::Compound& b = *fresh.compound;
  bool same = a.devices.size() == b.devices.size() && a.pointCount() == b.pointCount() &&
              a.profiles.size() == b.profiles.size();
  for (size_t i = 0; same && i < a.devices.size(); ++i) {
    same = a.devices[i].id == b.devices[i].id &&
           a.devices[i].profile->name == b.devices[i].profile->name &&
           a.devices[i].linked_id == b.devices[i].linked_id &&
           a.devices[i].location.level == b.devices[i].location.level &&
           a.devices[i].location.zone == b.devices[i].location.zone &&
           a.devices[i].grid == b.devices[i].grid && a.devices[i].tags == b.devices[i].tags;
  }
  for (size_t i = 0; same && i < a.pointCount(); ++i) {
    same = a.pointName(static_cast<model::PointId>(i)) ==
           b.pointName(static_cast<model::PointId>(i));
  }
  if (!same) {
    return "devices or profiles changed: restart the gateway to apply them (rules not reloaded)";
  }
  auto fut = pipeline_->reloadRules(std::move(fresh.rules));
  if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    return "the pipeline did not take the new rules in time";
  }
  std::string r = fut.get();
  return r == "ok" ? "rules reloaded; other changes apply at the next restart" : r;
}

nlohmann::json App::health() const {
  nlohmann::json h;
  h["ingest"] = mqtt_->health();
  if (modbus_) {
    h["modbus"] = modbus_->health();
  }
  h["pipeline"] = pipeline_->health();
  h["storage"] = store_->health();
  if (!cfg_.uplink.enabled) {
    h["uplink"] = "disabled";
  } else {
    h["uplink"] = uplink_ && uplink_->connected() ? "ok" : (uplink_ ? uplink_->health() : "off");
  }
  if (notifier_) {
    nlohmann::json channels = nlohmann::json::object();
    bool channels_ok = true;
    for (const auto& c : notifier_->status()) {
      nlohmann::json cj = {{"pending", c.pending}, {"last_error", c.last_error}};
      channels[c.id] = cj;
      channels_ok = channels_ok && c.last_error.empty();
    }
    h["channels"] = channels_ok ? "ok" : "delivery errors (see channel_status)";
    h["channel_status"] = channels;
  }
  bool ok = true;
  for (const auto& [k, v] : h.items()) {
    if (v.is_string()) {
      ok = ok && (v == "ok" || v == "disabled");
    }
  }
  h["status"] = ok ? "ok" : "degraded";
  return h;
}

} // namespace hgj
