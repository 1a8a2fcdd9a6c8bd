#include "tools/sim/simulator.h"

#include <spdlog/spdlog.h>

#include "core/log.h"

namespace hgj::sim {

namespace {

constexpr size_t kInboxLimit = 10'000;
constexpr auto kConnectWait = std::chrono::seconds(5);

} // namespace

Simulator::Simulator(Scenario scenario, std::shared_ptr<const model::Compound> compound,
                     core::Clock& clock)
    : scenario_(std::move(scenario)), compound_(std::move(compound)), clock_(clock) {
  ModbusServers servers;
  for (const auto& [line, port] : scenario_.modbus.lines) {
    auto srv = std::make_unique<ModbusTcpServer>(line, scenario_.modbus.bind, port);
    srv->setWriteNotify([this] { wake(); });
    servers[line] = srv.get();
    servers_[line] = std::move(srv);
  }
  start_ms_ = scenario_.start_ms.value_or(clock_.wallMs());
  link_ = std::make_unique<MqttLink>(scenario_.mqtt, std::vector<std::string>{},
                                     [this](std::string topic, std::string payload) {
                                       {
                                         std::lock_guard lock(inbox_mu_);
                                         if (inbox_.size() >= kInboxLimit) {
                                           ++dropped_commands_;
                                           return;
                                         }
                                         inbox_.emplace_back(std::move(topic), std::move(payload));
                                       }
                                       inbox_cv_.notify_one();
                                     });
  world_ = std::make_unique<World>(scenario_, compound_, *link_, servers, start_ms_);
  link_->setSubscriptions(world_->subscriptions());
  if (!world_->unplayed().empty()) {
    spdlog::info("{} devices are not played (type or transport the simulator does not know), "
                 "e.g. {}", world_->unplayed().size(), world_->unplayed().front());
  }
  spdlog::info("playing {} devices of {}", world_->playedCount(), compound_->site_id);
}

Simulator::~Simulator() { stop(); }

void Simulator::start() {
  if (running_) {
    return;
  }
  for (auto& [line, srv] : servers_) {
    srv->start();
    spdlog::info("modbus line {} listening on {}:{}", line, scenario_.modbus.bind, srv->port());
  }
  link_->start();
  // The scenario clock starts once the broker hears the devices (or after a few seconds without
  // one, while Paho keeps retrying), so early events are not played to nobody.
  auto deadline = std::chrono::steady_clock::now() + kConnectWait;
  while (!link_->connected() && std::chrono::steady_clock::now() < deadline) {
    link_->maintain();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!link_->connected()) {
    spdlog::warn("mqtt: {} not reachable yet; starting anyway and retrying", scenario_.mqtt.url);
  }
  steady0_ = clock_.steadyNow();
  running_ = true;
  thread_ = std::thread([this] { run(); });
}

void Simulator::stop() {
  if (running_.exchange(false)) {
    wake();
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  if (link_) {
    link_->stop();
  }
  for (auto& [line, srv] : servers_) {
    srv->stop();
  }
}

void Simulator::wake() {
  {
    std::lock_guard lock(inbox_mu_);
    wake_ = true;
  }
  inbox_cv_.notify_one();
}

int Simulator::modbusPort(const std::string& line) const {
  auto it = servers_.find(line);
  return it == servers_.end() ? -1 : it->second->port();
}

bool Simulator::mqttConnected() const { return link_ && link_->connected(); }

WorldStats Simulator::stats() const {
  std::lock_guard lock(world_mu_);
  return world_->stats();
}

int64_t Simulator::scenarioNowMs() const {
  std::lock_guard lock(world_mu_);
  return world_->nowMs();
}

void Simulator::inspect(const std::function<void(const World&)>& f) const {
  std::lock_guard lock(world_mu_);
  f(*world_);
}

void Simulator::run() {
  try {
    while (running_) {
      loopOnce();
      std::unique_lock lock(inbox_mu_);
      // The loop's pace: a tick of wall time, cut short by an incoming command or a Modbus
      // write so the closed loop answers within milliseconds.
      inbox_cv_.wait_for(lock, scenario_.tick,
                         [this] { return wake_ || !inbox_.empty() || !running_; });
      wake_ = false;
    }
  } catch (const std::exception& e) {
    spdlog::critical("simulation thread stopped: {}", e.what());
    running_ = false;
  }
}

void Simulator::loopOnce() {
  link_->maintain();
  std::deque<std::pair<std::string, std::string>> inbox;
  {
    std::lock_guard lock(inbox_mu_);
    inbox.swap(inbox_);
  }
  auto elapsed = clock_.steadyNow() - steady0_;
  double elapsed_ms = std::chrono::duration<double, std::milli>(elapsed).count();
  int64_t now = start_ms_ + static_cast<int64_t>(elapsed_ms * scenario_.speed);
  double tick_s = std::chrono::duration<double>(scenario_.tick).count();
  int budget = std::max(1, static_cast<int>(scenario_.mqtt.max_rate * tick_s));
  std::lock_guard lock(world_mu_);
  for (auto& [topic, payload] : inbox) {
    world_->handleMessage(topic, payload);
  }
  world_->step(now, clock_.wallMs(), budget);
}

} // namespace hgj::sim
