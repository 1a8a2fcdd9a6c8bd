#include "gateway/pipeline/pipeline.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <thread>


#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/fault_hooks.h"
#include "core/thread_name.h"
#include "gateway/storage/sqlite.h"

namespace hgj::pipeline {

using drivers::profiles::DropReason;

namespace {
constexpr size_t kHandOverRows = 2048;
// Room for one more message's readings past kHandOverRows without growing the vector.
constexpr size_t kHandOverReserve = kHandOverRows + 64;
constexpr auto kHandOverDelay = std::chrono::milliseconds(20);
constexpr size_t kBusyBatch = 8;
constexpr auto kLinger = std::chrono::microseconds(300);
constexpr int64_t kHistoryQuietMs = 60'000;
constexpr int64_t kHistoryWriteMs = 60'000;
// How long an alert change waits for the readings writer to commit its open transaction before
// it queues for the write lock anyway (a stuck disk must not hold the rules up longer). Waiting
// for the commit to finish (rather than polling for the lock while it runs) keeps the alert's
// fsync clear of the writer's I/O; returning at once let the two writers fight over the lock
// and stalled the readings writer into dropping readings.
} // namespace

Pipeline::Pipeline(PipelineSettings cfg, std::shared_ptr<const model::Compound> compound,
                   const rules::RulesConfig& rules, storage::Store& store, ReadModel& read_model,
                   core::MetricsRegistry& metrics, const core::Clock& clock)
    : cfg_(std::move(cfg)), compound_(std::move(compound)), store_(store),
      read_model_(read_model), clock_(clock), queue_(cfg_.queue_capacity),
      decoder_(*compound_, cfg_.max_payload_bytes, cfg_.max_topic_length),
      state_(*compound_), rules_(std::make_shared<const rules::RulesConfig>(rules)),
      control_(*compound_, state_, rules_, *this, *this, metrics, clock,
               cfg_.allow_override),
      rule_visits_(metrics.counter("hgj_rule_evaluations_total",
                                   "rule instances evaluated for readings")),
      rule_raises_(metrics.counter("hgj_rule_alerts_total", "alerts the rules raised")),
      received_(metrics.counter("hgj_readings_received_total",
                                "readings decoded from device messages")),
      bad_fields_(metrics.counter("hgj_payload_bad_fields_total",
                                  "fields dropped for a value of the wrong type")),
      suspect_ts_(metrics.counter("hgj_payload_suspect_timestamps_total",
                                  "readings whose device clock was implausible (ingest time used)")),
      batches_(metrics.counter("hgj_pipeline_batches_total", "batches processed")),
      implausible_low_(metrics.counter("hgj_readings_implausible_total",
                                       "readings outside their point's plausibility range "
                                       "(stored as bad, never acted on), by reason",
                                       {{"reason", "below_range"}})),
      implausible_high_(metrics.counter("hgj_readings_implausible_total",
                                        "readings outside their point's plausibility range "
                                        "(stored as bad, never acted on), by reason",
                                        {{"reason", "above_range"}})) {
  for (int r = 0; r < static_cast<int>(DropReason::Count); ++r) {
    dropped_.push_back(&metrics.counter(
        "hgj_readings_dropped_total", "readings dropped, by reason",
        {{"reason", drivers::profiles::dropReasonName(static_cast<DropReason>(r))}}));
  }
  metrics.gaugeFn("hgj_pipeline_queue_depth", "samples waiting for the pipeline thread",
                  [this] { return static_cast<double>(queue_.size()); });
  uint32_t offset = 0;
  for (const auto& d : compound_->devices) {
    point_offset_.push_back(offset);
    offset += static_cast<uint32_t>(d.profile->points.size());
  }
  dirty_.assign(offset, 0);
  offline_reported_.assign(compound_->devices.size(), 0);
  device_fault_.assign(compound_->devices.size(), std::string());
  if (auto p = compound_->pointId("occupied")) {
    occupied_point_ = *p;
    has_occupied_ = true;
  }
  readings_.reserve(kHandOverReserve);
  if (cfg_.history.enabled) {
    history_ = std::make_unique<history::Rollups>(cfg_.history, compound_);
  }
}

Pipeline::~Pipeline() { stop(); }

void Pipeline::restoreHistory(storage::Database& db) {
  if (history_) {
    history_->restoreDays(db);
  }
}

void Pipeline::writeHistory() {
  if (!history_) {
    return;
  }
  if (auto w = history_->takeWrite()) {
    std::vector<storage::DurableWrite> writes;
    writes.push_back(std::move(*w));
    store_.submit(std::move(writes));
  }
}

void Pipeline::addDriver(drivers::Driver* driver) {
  drivers_.push_back(driver);
  control_.addDriver(driver);
}

void Pipeline::restore(const std::vector<storage::StoredPoint>& points,
                       const std::vector<storage::LatchRecord>& latches) {
  int64_t now_ms = clock_.wallMs();
  auto now = clock_.steadyNow();
  for (const auto& p : points) {
    state_.restore(p.device, p.point, p.value, model::Quality::Stale, p.source_ms, p.since_ms,
                   p.updated_ms, now_ms, now);
  }
  for (const auto& l : latches) {
    control_.restoreLatch({.device = l.device, .point = l.point, .value = l.value,
                           .rule = l.rule, .since_ms = l.since_ms});
  }
  spdlog::info("pipeline: restored {} point states and {} safety latches", points.size(),
               latches.size());
  restoreHolds();
}

void Pipeline::restoreHolds() {
  // A hold that was running when the gateway stopped (kill -9 during a 10 s over-temperature
  // hold) continues: the readings committed before the stop say since when the condition held.
  core::Millis window = control_.restorableHold();
  if (window.count() == 0) {
    return;
  }
  int64_t now_ms = clock_.wallMs();
  int64_t from_ms = now_ms - window.count() - 60'000;
  std::vector<model::Reading> recent;
  try {
    storage::OpenOptions options;
    options.read_only = true;
    options.busy_timeout_ms = cfg_.storage.busy_timeout_ms;
    storage::Database db(cfg_.storage.path, options);
    // Newest first, stopping at the window: rows are appended in ingest order.
    storage::Statement q = db.prepare(
        "SELECT device, point, value, quality, ts_ms, ingest_ms FROM readings ORDER BY id DESC");
    std::unordered_map<std::string, model::DeviceIndex> devices;
    size_t scanned = 0;
    while (q.step() && ++scanned <= 2'000'000) {
      int64_t ingest = q.columnInt(5);
      if (ingest < from_ms) {
        break;
      }
      model::DeviceIndex d = compound_->deviceIndex(q.columnText(0));
      auto p = compound_->pointId(q.columnText(1));
      if (d == model::kNoDevice || !p) {
        continue;
      }
      model::Reading r;
      r.device = d;
      r.point = *p;
      r.value = q.columnValue(2);
      r.quality = q.columnText(3) == "good" ? model::Quality::Good : model::Quality::Bad;
      r.source_ms = q.columnInt(4);
      r.ingest_ms = ingest;
      recent.push_back(std::move(r));
    }
  } catch (const std::exception& e) {
    spdlog::warn("pipeline: could not read recent readings to continue rule holds: {}", e.what());
    return;
  }
  std::reverse(recent.begin(), recent.end());
  control_.restoreHolds(recent, now_ms);
}

void Pipeline::start() {
  if (running_.exchange(true)) {
    return;
  }
  started_ = clock_.steadyNow();
  // After the alerts' restoreActive (setAlerts): rebuild latches lost with the last process.
  control_.beginRecovery();
  next_snapshot_ = started_;
  next_state_flush_ = started_ + core::Millis(cfg_.storage.state_flush_ms);
  next_offline_check_ = started_ + std::chrono::seconds(1);
  publishSnapshot();
  thread_ = std::thread([this] {
    core::nameThisThread("hgj-pipeline");
    try {
      run();
    } catch (const std::exception& e) {
      failed_ = true;
      spdlog::critical("pipeline thread stopped: {}", e.what());
    }
  });
}

void Pipeline::stop() {
  if (!running_.exchange(false)) {
    return;
  }
  queue_.close();
  if (thread_.joinable()) {
    thread_.join();
  }
}

bool Pipeline::deliver(drivers::Sample&& sample) { return queue_.push(Event(std::move(sample))); }

drivers::SampleSink::Delivery Pipeline::deliverFor(drivers::Sample& sample,
                                                   std::chrono::milliseconds timeout) {
  Event event(std::move(sample));
  if (queue_.pushFor(std::move(event), timeout)) {
    return Delivery::kTaken;
  }
  sample = std::move(std::get<drivers::Sample>(event));  // pushFor leaves a refused item as is
  return queue_.closed() ? Delivery::kClosed : Delivery::kFull;
}

void Pipeline::record(storage::ActuationRecord record) {
  store_.submitActuation(std::move(record), nullptr);
}

void Pipeline::recordFirst(storage::ActuationRecord record) {
  uint64_t id = record.request_id;
  store_.recordActuation(std::move(record), [this, id](bool durable) {
    queue_.pushUrgent(Event(Recorded{id, durable}));
  });
}

void Pipeline::update(uint64_t request_id, std::string state, std::string error) {
  store_.updateActuation(request_id, std::move(state), std::move(error));
}

void Pipeline::latchChanged(const rules::Latch& l, bool set) {
  store_.submitLatch({.device = l.device, .point = l.point, .rule = l.rule, .value = l.value,
                      .since_ms = l.since_ms, .set = set});
  changed_ = true;
}

void Pipeline::deliverResult(std::shared_ptr<const drivers::WriteResult> result) {
  queue_.pushUrgent(Event(drivers::Sample(std::move(result))));
}

std::future<CommandResult> Pipeline::submit(Command command) {
  auto promise = std::make_shared<std::promise<CommandResult>>();
  auto fut = promise->get_future();
  if (!queue_.pushFor(Event(std::make_unique<CommandEnvelope>(CommandEnvelope{std::move(command), promise})),
                      std::chrono::milliseconds(500))) {
    promise->set_value({false, 503, "gateway busy or shutting down; try again"});
  }
  return fut;
}

std::string Pipeline::health() const {
  if (failed_) {
    return "pipeline thread stopped";
  }
  if (queue_.size() >= queue_.capacity()) {
    return "queue full (backpressure on the local broker)";
  }
  return "ok";
}

void Pipeline::run() {
  std::vector<Event> events;
  events.reserve(cfg_.loop.batch_max);
  bool busy = false;
  // Test-only (HGJ_FAULTS, docs/reliability.md): the thread hangs for good after this long, as
  // a deadlock would, so the watchdog test can see the feed stop.
  std::optional<core::SteadyTime> wedge_at;
  if (auto ms = core::faultHook("wedge_pipeline_after_ms")) {
    wedge_at = clock_.steadyNow() + core::Millis(*ms);
  }
  while (true) {
    if (failed_.load()) {
      return;  // handling a message inline threw (handleNow logged it): stop, as on this thread
    }
    if (heartbeat_ != nullptr) {
      heartbeat_->beat();
    }
    if (wedge_at && clock_.steadyNow() >= *wedge_at) {
      spdlog::critical("pipeline: wedged on purpose (fault hook wedge_pipeline_after_ms)");
      std::lock_guard work(work_mu_);  // as a deadlock would: inline work stops too
      while (!queue_.closed()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      wedge_at.reset();
    }
    events.clear();
    if (busy) {
      // Under load, let a batch gather instead of being woken for every message: a wake-up costs
      // more than handling a message. At low rates (busy == false) each message is handled at
      // once, so alert latency stays low when it matters.
      std::this_thread::sleep_for(kLinger);
    } else {
      queue_.waitForItems(core::Millis(cfg_.loop.tick_interval_ms));
    }
    std::lock_guard work(work_mu_);
    size_t n = queue_.popAll(events, cfg_.loop.batch_max, core::Millis(0));
    busy = n >= kBusyBatch;
    busy_.store(busy, std::memory_order_relaxed);
    handleEvents(events);
    tick();
    if (n == 0 && queue_.closed()) {
      handOverReadings();
      flushStore(true);
      writeHistory();
      publishSnapshot();
      finished_ = true;
      break;
    }
  }
}

void Pipeline::handleEvents(std::vector<Event>& events) {
  // Alerts raised by one batch share one durable commit (one fsync for a storm).
  if (alerts_ != nullptr) {
    alerts_->beginBatch();
  }
  for (auto& ev : events) {
    if (auto* s = std::get_if<drivers::Sample>(&ev)) {
      handleSample(*s);
    } else if (auto* c = std::get_if<std::unique_ptr<CommandEnvelope>>(&ev)) {
      handleCommand(**c);
    } else if (auto* rec = std::get_if<Recorded>(&ev)) {
      control_.onRecorded(rec->request_id, rec->durable);
    } else {
      handleReload(*std::get<std::unique_ptr<RulesReload>>(ev));
    }
  }
  if (alerts_ != nullptr) {
    alerts_->commitBatch();
  }
  // Hand readings to the writer in batches of a good size: fewer hand-overs, larger inserts.
  // The writer commits on its own tick, so holding them up to 20 ms adds no loss window.
  // Never inside the loop above: an alert change there holds the database's write lock until
  // commitBatch(), and waiting for the writer's room while holding it would stall both.
  if (!readings_.empty()) {
    auto now = clock_.steadyNow();
    if (!pending_since_) {
      pending_since_ = now;
    }
    if (readings_.size() >= kHandOverRows || now - *pending_since_ >= kHandOverDelay ||
        queue_.closed()) {
      handOverReadings();
    }
  }
}

bool Pipeline::handleNow(drivers::Sample& sample) {
  if (busy_.load(std::memory_order_relaxed) || failed_.load() ||
      !std::holds_alternative<drivers::MqttMessage>(sample)) {
    return false;
  }
  std::unique_lock work(work_mu_, std::try_to_lock);
  // Only with nothing queued: a queued message came first and must be handled first.
  if (!work.owns_lock() || finished_ || queue_.size() > 0 || queue_.closed()) {
    return false;
  }
  inline_events_.clear();
  inline_events_.emplace_back(std::move(sample));
  try {
    handleEvents(inline_events_);
  } catch (const std::exception& e) {
    failed_ = true;
    spdlog::critical("pipeline: handling a message stopped on {}", e.what());
  }
  inline_events_.clear();
  return true;
}

void Pipeline::handOverReadings() {
  pending_since_.reset();
  if (readings_.empty()) {
    return;
  }
  batches_.inc();
  std::vector<model::Reading> batch;
  batch.reserve(kHandOverReserve);
  batch.swap(readings_);
  store_.submitReadings(std::move(batch));
}

void Pipeline::handleSample(drivers::Sample& sample) {
  if (auto* m = std::get_if<drivers::MqttMessage>(&sample)) {
    handleMessage(*m);
  } else if (auto* b = std::get_if<drivers::ReadingBatch>(&sample)) {
    for (auto& r : b->readings) {
      received_.inc();
      applyReading(r);
      readings_.push_back(std::move(r));
    }
  } else if (auto* h = std::get_if<drivers::DeviceHealth>(&sample)) {
    if (h->device < compound_->devices.size()) {
      device_fault_[h->device] = h->fault;
      if (h->online) {
        if (state_.markOnline(h->device, h->ts_ms, clock_.steadyNow())) {
          control_.onDeviceOnline(h->device);
        }
        offline_reported_[h->device] = 0;
      } else if (!offline_reported_[h->device]) {
        spdlog::warn("device {} offline: {}", compound_->devices[h->device].id, h->reason);
        deviceOffline(h->device);
      }
      changed_ = true;
    }
  } else if (auto* w = std::get_if<std::shared_ptr<const drivers::WriteResult>>(&sample)) {
    control_.onResult(**w);
  }
}

void Pipeline::noteDrop(DropReason reason, std::string_view topic) {
  dropped_[static_cast<size_t>(reason)]->inc();
  std::string_view shown = topic.substr(0, 120);
  drop_log_.warn("ingest: dropped a message on \"{}\": {}", shown,
                 drivers::profiles::dropReasonName(reason));
}

void Pipeline::handleMessage(const drivers::MqttMessage& m) {
  size_t first = readings_.size();
  auto res = decoder_.decode(m.topic, m.payload, m.rx_ms, readings_);
  if (res.bad_fields > 0) {
    bad_fields_.inc(res.bad_fields);
    if (res.drop == DropReason::None) {
      drop_log_.warn("ingest: {} field(s) of a message on \"{}\" had the wrong type",
                     res.bad_fields, std::string_view(m.topic).substr(0, 120));
    }
  }
  if (res.drop != DropReason::None) {
    noteDrop(res.drop, m.topic);
    return;
  }
  if (res.suspect_ts) {
    suspect_ts_.inc();
  }
  received_.inc(res.readings);
  for (size_t i = first; i < readings_.size(); ++i) {
    applyReading(readings_[i]);
  }
}

void Pipeline::checkPlausible(model::Reading& r, const model::PointDef& def) {
  auto n = model::asNumber(r.value);
  if (!n || std::holds_alternative<bool>(r.value)) {
    return;
  }
  bool low = *n < *def.range_lo;
  bool high = *n > *def.range_hi;
  if (!low && !high) {
    return;
  }
  r.quality = model::Quality::Bad;
  (low ? implausible_low_ : implausible_high_).inc();
  implausible_log_.warn("ingest: {}.{} = {} is outside its plausible range [{}, {}]: stored as "
                        "bad, not acted on",
                        compound_->devices[r.device].id, def.name, *n, *def.range_lo,
                        *def.range_hi);
}

void Pipeline::applyReading(model::Reading& r) {
  auto now = clock_.steadyNow();
  if (r.device < compound_->devices.size()) {
    const model::Profile& prof = *compound_->devices[r.device].profile;
    int slot = prof.slot(r.point);
    if (slot >= 0 && prof.points[static_cast<size_t>(slot)].range_lo &&
        r.quality == model::Quality::Good) {
      checkPlausible(r, prof.points[static_cast<size_t>(slot)]);
    }
  }
  model::ApplyResult res = state_.apply(r, now);
  if (!res.known) {
    return;
  }
  offline_reported_[r.device] = 0;
  int slot = compound_->devices[r.device].profile->slot(r.point);
  uint32_t flat = point_offset_[r.device] + static_cast<uint32_t>(slot);
  if (!dirty_[flat]) {
    dirty_[flat] = 1;
    dirty_list_.emplace_back(r.device, slot);
  }
  if (res.came_online) {
    control_.onDeviceOnline(r.device);
  }
  control_.onReading(r, res);
  if (history_) {
    history_->onReading(r);
    last_ingest_ms_ = r.ingest_ms;
  }
  if (res.value_changed || res.came_online) {
    changed_ = true;
    if (has_occupied_ && r.point == occupied_point_ && changed_spaces_.size() < 256) {
      changed_spaces_.push_back(compound_->devices[r.device].id);
    }
  }
}

std::future<std::string> Pipeline::reloadRules(rules::RulesConfig rules) {
  auto promise = std::make_shared<std::promise<std::string>>();
  auto fut = promise->get_future();
  auto r = std::make_unique<RulesReload>(
      RulesReload{std::make_shared<rules::RulesConfig>(std::move(rules)), promise});
  if (!queue_.pushFor(Event(std::move(r)), std::chrono::seconds(2))) {
    promise->set_value("the pipeline is busy or stopping; rules not reloaded");
  }
  return fut;
}

void Pipeline::handleReload(RulesReload& r) {
  // The new engine takes over the old one's latches and active alerts; alerts of rules that
  // are gone are cleared through us. The old config must outlive the adopt() call.
  if (alerts_ != nullptr) {
    alerts_->beginBatch();
  }
  control_.reload(r.rules);
  if (alerts_ != nullptr) {
    alerts_->commitBatch();
  }
  rules_ = std::move(r.rules);
  visits_seen_ = 0;
  changed_ = true;
  spdlog::info("rules reloaded: {} rules, {} instances", rules_->rules.size(),
               control_.engine().instanceCount());
  r.done->set_value("ok");
}

void Pipeline::handleCommand(CommandEnvelope& env) {
  const Command& c = env.command;
  auto reply = [&](bool ok, int status, std::string msg) {
    env.promise->set_value({ok, status, std::move(msg)});
  };
  switch (c.kind) {
  case Command::Kind::WritePoint: {
    model::DeviceIndex d = compound_->deviceIndex(c.device);
    if (d == model::kNoDevice) {
      reply(false, 404, "unknown device " + c.device);
      return;
    }
    auto p = compound_->pointId(c.point);
    if (!p || compound_->devices[d].profile->point(*p) == nullptr) {
      reply(false, 404, "device " + c.device + " has no point " + c.point);
      return;
    }
    rules::Writer writer =
        c.origin == "upstream" ? rules::Writer::Upstream : rules::Writer::Operator;
    std::string err;
    if (!control_.admissible(d, *p, c.value, writer, c.override_safety, &err)) {
      reply(false, 409, err);
      return;
    }
    // The audit trail names the authenticated identity; the sender's own words are a note.
    std::string origin = c.identity.empty() ? c.origin : c.identity;
    if (!c.by.empty()) {
      origin += " note=\"" + core::printable(c.by.substr(0, 64)) + "\"";
    }
    auto promise = env.promise;
    control_.write(d, *p, c.value, writer, std::move(origin), c.override_safety,
                   [promise](const ActuationOutcome& o) {
                     switch (o.status) {
                     case ActuationStatus::Confirmed:
                       promise->set_value({true, 200, "written and confirmed by the device"});
                       return;
                     case ActuationStatus::Failed:
                       promise->set_value({false, 502, "write failed: " + o.error});
                       return;
                     case ActuationStatus::Refused:
                       promise->set_value(
                           {false, o.error.find("not writable") != std::string::npos ? 403 : 409,
                            o.error});
                       return;
                     case ActuationStatus::Superseded:
                       promise->set_value({false, 409, o.error});
                       return;
                     }
                   });
    return;
  }
  case Command::Kind::AckAlert: {
    if (alerts_ == nullptr) {
      reply(false, 503, "alerts are not available");
      return;
    }
    auto res = alerts_->ack(c.alert_id, c.by.empty() ? c.origin : c.by, c.note);
    switch (res.status) {
    case alerts::AckStatus::Ok:
      reply(true, 200, "acknowledged");
      return;
    case alerts::AckStatus::AlreadyAcked:
      reply(true, 200, "already acknowledged");
      return;
    case alerts::AckStatus::UnknownId:
      reply(false, 404, "no alert " + std::to_string(c.alert_id));
      return;
    case alerts::AckStatus::AlreadyCleared:
      reply(false, 409, "alert " + std::to_string(c.alert_id) + " is already cleared");
      return;
    case alerts::AckStatus::Error:
      reply(false, 500, "the acknowledgement could not be recorded");
      return;
    }
    return;
  }
  case Command::Kind::SummaryNow:
    changed_ = true;
    reply(true, 200, "summary requested");
    return;
  }
}

void Pipeline::tick() {
  auto now = clock_.steadyNow();
  if (now < next_tick_) {
    return;
  }
  next_tick_ = now + core::Millis(cfg_.loop.tick_interval_ms);
  if (alerts_ != nullptr) {
    alerts_->beginBatch();
  }
  control_.tick();
  // A debounced space change moves the counts without a reading of its own.
  if (control_.engine().occupancy().version() != occupancy_version_) {
    occupancy_version_ = control_.engine().occupancy().version();
    changed_ = true;
  }
  handleStorageEvents();
  if (alerts_ != nullptr) {
    if (now >= next_alert_tick_) {
      alerts_->tick();
      next_alert_tick_ = now + std::chrono::seconds(1);
    }
    alerts_->commitBatch();
  }
  rule_visits_.inc(control_.engine().stats().visits - visits_seen_);
  visits_seen_ = control_.engine().stats().visits;
  if (now >= next_offline_check_) {
    checkOffline();
    next_offline_check_ = now + std::chrono::seconds(1);
    // History time is the readings' source time; a quiet minute lets the wall clock close the
    // buckets nobody reported in (while readings flow, even a backlog hours old, they drive it).
    const int64_t wall = clock_.wallMs();
    if (history_ && wall - last_ingest_ms_ >= kHistoryQuietMs) {
      history_->advanceTo(wall);
    }
  }
  if (history_ && now >= next_history_write_) {
    // Rows go to the writer once a minute (with the durable work: one fsync), not per reading.
    writeHistory();
    next_history_write_ = now + core::Millis(kHistoryWriteMs);
  }
  if (now >= next_state_flush_) {
    flushStore(false);
    next_state_flush_ = now + core::Millis(cfg_.storage.state_flush_ms);
  }
  if (now >= next_snapshot_) {
    if (changed_) {
      publishSnapshot();
    }
    next_snapshot_ = now + core::Millis(cfg_.loop.snapshot_interval_ms);
  }
}

void Pipeline::checkOffline() {
  auto now = clock_.steadyNow();
  for (const auto& d : compound_->devices) {
    if (offline_reported_[d.index]) {
      continue;
    }
    const model::DeviceState& ds = state_.device(d.index);
    // A Modbus device's reachability is the poller's business (it knows timeouts and back-off),
    // and so is its ports': a child reports through its parent's polls. With modbus.enabled
    // false nothing polls them, and nothing is offline for it.
    if (!d.modbus.line.empty() ||
        (d.parent != model::kNoDevice && !compound_->devices[d.parent].modbus.line.empty())) {
      continue;
    }
    auto last = ds.online ? ds.last_seen_steady : std::max(ds.last_seen_steady, started_);
    if (now - last > core::Millis(d.expectedIntervalMs())) {
      deviceOffline(d.index);
    }
  }
}

void Pipeline::deviceOffline(model::DeviceIndex device) {
  state_.markOffline(device);
  offline_reported_[device] = 1;
  changed_ = true;
  control_.onDeviceOffline(device);
}

void Pipeline::raiseAlert(const rules::AlertRaise& a) {
  rule_raises_.inc();
  const std::string& dev = a.device != model::kNoDevice ? compound_->devices[a.device].id : a.scope;
  // Logged after the alert is on its way (the log's write to journald must not delay it).
  auto log = [&] {
    spdlog::warn("alert {} [{}] {}: {}{}", a.rule, rules::severityName(a.severity), dev,
                 a.message, a.actions_taken.empty() ? "" : " (" + a.actions_taken + ")");
  };
  changed_ = true;
  if (alerts_ == nullptr) {
    log();
    return;
  }
  alerts::AlertRaise r;
  r.rule = std::string(a.rule);
  r.device = a.device;
  r.device_id = a.device == model::kNoDevice ? a.scope : std::string();
  r.severity = a.severity;
  r.message = a.message;
  char* end = nullptr;
  double num = std::strtod(a.value.c_str(), &end);
  if (!a.value.empty() && end == a.value.c_str() + a.value.size()) {
    r.value = num;
  } else if (!a.value.empty()) {
    r.value = a.value;
  }
  r.source_ms = a.source_ms;
  r.actions = a.actions_taken;
  r.escalate_now = a.escalate_now;
  auto res = alerts_->raise(r);
  log();
  if (!res.ok) {
    spdlog::error("alert {} {} could not be recorded: {}", a.rule, dev, res.error);
  }
}

void Pipeline::clearAlert(const rules::AlertClear& c) {
  const std::string dev = c.device != model::kNoDevice ? compound_->devices[c.device].id : "";
  spdlog::info("alert {} {} cleared: {}", c.rule, dev, c.reason);
  changed_ = true;
  if (alerts_ == nullptr) {
    return;
  }
  if (c.device != model::kNoDevice) {
    alerts_->clear(std::string(c.rule), c.device);
  } else {
    // Occupancy alerts name their scope in the rule ("level_full:B1").
    std::string rule(c.rule);
    auto colon = rule.find(':');
    alerts_->clear(rule, colon == std::string::npos ? std::string() : rule.substr(colon + 1));
  }
}

void Pipeline::setAlerts(alerts::AlertManager* alerts) {
  alerts_ = alerts;
  if (alerts_ == nullptr) {
    return;
  }
  // An alert's value is in the unit of the point its rule watches (rules_ is replaced on this
  // thread only, where the manager renders its messages).
  alerts_->setUnitResolver([this](const alerts::AlertRecord& a) -> std::string {
    const model::Device* d = compound_->device(a.device);
    if (d == nullptr || !rules_) {
      return {};
    }
    for (const auto& r : rules_->rules) {
      if (r.name != a.rule) {
        continue;
      }
      if (r.when.empty() || r.expr || r.when.front().on != rules::Relation::Self) {
        return {};
      }
      const model::PointDef* p = d->profile->point(r.when.front().point);
      return p != nullptr ? p->unit : std::string();
    }
    return {};
  });
  // Alerts still active in the store are the rules' business again: they clear them when the
  // condition ends (the rules' own state does not survive a restart, the alerts do).
  for (const auto& a : alerts_->openAlerts()) {
    model::DeviceIndex d = compound_->deviceIndex(a.device);
    if (d != model::kNoDevice) {
      control_.restoreActive(a.rule, d);
    }
  }
}

void Pipeline::onAlertEvent(const alerts::AlertEvent& event) {
  if (history_ && event.kind == alerts::AlertEventKind::Raised) {
    history_->onAlertRaised(event.alert.rule, event.alert.device, event.alert.grid,
                            event.alert.raised_at);
  }
  nlohmann::json j = alerts::toJson(event);
  read_model_.pushEvent("alert", j.dump());
  if (alert_forward_) {
    alert_forward_(event);
  }
  changed_ = true;
}

void Pipeline::noteOutboxDrop(const std::string& kind, uint64_t total) {
  (void)kind;
  uint64_t cur = outbox_dropped_.load();
  while (total > cur && !outbox_dropped_.compare_exchange_weak(cur, total)) {
  }
}

void Pipeline::handleStorageEvents() {
  uint64_t dropped = outbox_dropped_.load();
  if (dropped > outbox_dropped_alerted_ && alerts_ != nullptr) {
    outbox_dropped_alerted_ = dropped;
    alerts::AlertRaise r;
    r.rule = "uplink_outbox_full";
    r.device_id = "uplink";
    r.severity = alerts::Severity::Warning;
    r.message = "上行链路中断过久，发件箱已满：已丢弃最早的 " + std::to_string(dropped) +
                " 条汇总消息（告警消息全部保留）";
    r.value = static_cast<double>(dropped);
    r.source_ms = clock_.wallMs();
    alerts_->raise(r);
  }
  for (auto& e : store_.takeEvents()) {
    spdlog::error("storage: {}: {}", e.kind, e.message);
    if (alerts_ == nullptr) {
      continue;
    }
    alerts::AlertRaise r;
    r.rule = "storage_" + e.kind;
    r.device_id = "storage";
    r.severity = e.kind == "retention" ? alerts::Severity::Info : alerts::Severity::Critical;
    r.message = "网关存储: " + e.message;
    r.source_ms = clock_.wallMs();
    alerts_->raise(r);
  }
}

void Pipeline::flushStore(bool /*all_state*/) {
  if (dirty_list_.empty()) {
    return;
  }
  std::vector<storage::StoredPoint> out;
  out.reserve(dirty_list_.size());
  for (auto [d, slot] : dirty_list_) {
    const model::PointState& ps = state_.device(d).points[static_cast<size_t>(slot)];
    storage::StoredPoint sp;
    sp.device = d;
    sp.point = compound_->devices[d].profile->points[static_cast<size_t>(slot)].id;
    sp.value = ps.value;
    sp.quality = ps.quality;
    sp.source_ms = ps.source_ms;
    sp.since_ms = ps.since_ms;
    sp.updated_ms = ps.updated_ms;
    out.push_back(std::move(sp));
    dirty_[point_offset_[d] + static_cast<uint32_t>(slot)] = 0;
  }
  dirty_list_.clear();
  store_.submitState(std::move(out));
}

void Pipeline::publishSnapshot() {
  auto snap = std::make_shared<Snapshot>();
  snap->version = ++snapshot_version_;
  snap->updated_ms = clock_.wallMs();
  snap->compound = compound_;
  snap->devices.resize(compound_->devices.size());
  const rules::occupancy::Tracker& occupancy = control_.engine().occupancy();
  const bool first = counted_space_.empty();
  if (first) {
    counted_space_.assign(compound_->devices.size(), rules::occupancy::SpaceState::Unknown);
  }
  for (const auto& d : compound_->devices) {
    const model::DeviceState& ds = state_.device(d.index);
    DeviceView& v = snap->devices[d.index];
    v.online = ds.online;
    v.safety_cut = control_.engine().safetyCut(d.index);
    v.fault = device_fault_[d.index];
    v.last_seen_ms = ds.ever_seen ? ds.last_seen_ms : 0;
    v.points.resize(ds.points.size());
    for (size_t i = 0; i < ds.points.size(); ++i) {
      const auto& ps = ds.points[i];
      v.points[i] = {d.profile->points[i].id, ps.value, ps.quality, ps.since_ms, ps.updated_ms};
    }
    if (occupancy.isSpace(d.index)) {
      rules::occupancy::SpaceView sv = occupancy.space(d.index);
      v.space = sv.state;
      v.space_since_ms = sv.since_ms;
      if (counted_space_[d.index] != sv.state) {
        counted_space_[d.index] = sv.state;
        // Counted differently than in the last snapshot, most often because the debounce passed
        // with no reading of its own: announced like a sensor change, so that a dashboard shows
        // the count now instead of at the feed's next throttled snapshot event (up to 1.5 s
        // later under load). Not at the first snapshot: there is nothing to differ from.
        if (!first && changed_spaces_.size() < 256 &&
            std::find(changed_spaces_.begin(), changed_spaces_.end(), d.id) ==
                changed_spaces_.end()) {
          changed_spaces_.push_back(d.id);
        }
      }
    }
  }
  snap->parking = occupancy.total();
  snap->levels = occupancy.levels();
  snap->categories = occupancy.categories();
  snap->parking_pending = static_cast<int>(occupancy.pending());
  read_model_.publish(std::move(snap));
  changed_ = false;
  if (!changed_spaces_.empty()) {
    nlohmann::json spaces = changed_spaces_;
    read_model_.pushEvent("spaces", spaces.dump());
    changed_spaces_.clear();
  }
  read_model_.pushEvent("snapshot", "{\"version\":" + std::to_string(snapshot_version_) + "}");
}

} // namespace hgj::pipeline
