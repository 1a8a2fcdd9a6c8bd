#include "drivers/modbus/modbus_line.h"

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>

#include "core/thread_name.h"
#include "drivers/modbus/modbus_decode.h"

namespace hgj::drivers::modbus {

namespace {

constexpr size_t kMaxRegisters = 125;
constexpr size_t kMaxBits = 2000;
const std::vector<double> kLatencyBounds{0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

bool isConfigException(ErrorKind k) {
  return k == ErrorKind::IllegalFunction || k == ErrorKind::IllegalAddress ||
         k == ErrorKind::IllegalValue;
}

} // namespace

ModbusLine::ModbusLine(const LineConfig& line, const ModbusConfig& config,
                       const model::Compound& compound,
                       const std::vector<const model::Device*>& devices, SampleSink& sink,
                       core::MetricsRegistry& metrics, const core::Clock& clock)
    : line_(line), config_(config), compound_(compound), sink_(sink), metrics_(metrics),
      clock_(clock), conn_(line_),
      reconnect_backoff_(std::chrono::milliseconds(line.reconnect_min_ms),
                         std::chrono::milliseconds(line.reconnect_max_ms)),
      reg_buf_(kMaxRegisters), bit_buf_(kMaxBits),
      polls_total_(metrics.counter("hgj_modbus_polls_total", "Device polls attempted per line",
                                   {{"line", line.id}})),
      writes_ok_(metrics.counter("hgj_modbus_writes_total", "Modbus writes by outcome",
                                 {{"line", line.id}, {"result", "ok"}})),
      writes_failed_(metrics.counter("hgj_modbus_writes_total", "Modbus writes by outcome",
                                     {{"line", line.id}, {"result", "failed"}})),
      reconnects_(metrics.counter("hgj_modbus_reconnects_total",
                                  "Connections (re)opened per line", {{"line", line.id}})),
      connected_gauge_(metrics.gauge("hgj_modbus_line_connected",
                                     "1 while the line's connection is open",
                                     {{"line", line.id}})) {
  int64_t t = now();
  for (const model::Device* dev : devices) {
    DeviceState d;
    d.device = dev;
    d.plan = buildDevicePlan(compound, *dev);
    d.interval_ms = std::max<int64_t>(dev->modbus.poll_interval_ms, 10);
    d.timeout_ms = dev->modbus.timeout_ms > 0 ? dev->modbus.timeout_ms : line_.timeout_ms;
    d.retries = std::max(dev->modbus.retries, 0);
    d.next_due_ms = t;
    d.cycle_ms = t;
    core::Labels labels{{"device", dev->id}};
    d.polls = &metrics.counter("hgj_modbus_device_polls_total", "Polls per Modbus device", labels);
    d.failed_polls = &metrics.counter("hgj_modbus_device_failed_polls_total",
                                      "Polls that failed after their retries", labels);
    d.latency = &metrics.histogram("hgj_modbus_poll_duration_seconds",
                                   "Time one successful poll of a device took", kLatencyBounds,
                                   labels);
    d.online = &metrics.gauge("hgj_modbus_device_online", "1 while the device answers", labels);
    size_t slot = devices_.size();
    for (model::DeviceIndex di : d.plan.devices) {
      device_slot_[di] = slot;
    }
    devices_.push_back(std::move(d));
  }
}

ModbusLine::~ModbusLine() { stop(); }

void ModbusLine::start(core::Liveness* liveness) {
  if (!thread_.joinable()) {
    if (liveness != nullptr) {
      liveness_ = liveness;
      heartbeat_ = &liveness->add("modbus line " + line_.id);
    }
    thread_ = std::thread([this] {
      core::nameThisThread("hgj-mb-" + line_.id);
      run();
    });
  }
}

void ModbusLine::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
  if (heartbeat_ != nullptr) {
    liveness_->retire(*heartbeat_);
  }
}

void ModbusLine::queueWrite(const WriteRequest& request) {
  PendingWrite w;
  w.request = request;
  {
    std::lock_guard lock(mu_);
    if (request.de_energize) {
      // A cut is never refused for a full queue, and jumps it.
      incoming_.push_front(std::move(w));
      urgent_waiting_.store(true, std::memory_order_relaxed);
    } else {
      if (incoming_.size() >= config_.write_queue) {
        w.rejected = true;
        w.reject_reason = "write queue of line " + line_.id + " full";
      }
      incoming_.push_back(std::move(w));
    }
  }
  cv_.notify_all();
}

void ModbusLine::queueRefresh(model::DeviceIndex device) {
  {
    std::lock_guard lock(mu_);
    // Bounded by the devices of the line: one entry per device is enough.
    if (std::find(refresh_incoming_.begin(), refresh_incoming_.end(), device) !=
            refresh_incoming_.end() ||
        refresh_incoming_.size() >= device_slot_.size()) {
      return;
    }
    refresh_incoming_.push_back(device);
  }
  cv_.notify_all();
}

void ModbusLine::rejectWrite(const WriteRequest& request, const std::string& reason) {
  PendingWrite w;
  w.request = request;
  w.rejected = true;
  w.reject_reason = reason;
  {
    std::lock_guard lock(mu_);
    incoming_.push_back(std::move(w));
  }
  cv_.notify_all();
}

std::string ModbusLine::health() const {
  if (thread_failed_) {
    return "line " + line_.id + ": poller thread stopped on an error";
  }
  if (!connected_) {
    std::lock_guard lock(mu_);
    return "line " + line_.id + " not connected" +
           (last_error_.empty() ? std::string() : ": " + last_error_);
  }
  int offline = offline_devices_.load();
  int faulted = faulted_devices_.load();
  if (offline > 0 || faulted > 0) {
    std::string h = "line " + line_.id + ":";
    if (faulted > 0) {
      h += " " + std::to_string(faulted) + " of " + std::to_string(devices_.size()) +
           " devices faulted (they refuse every read: see /api/v1/devices)";
    }
    if (offline > 0) {
      h += std::string(faulted > 0 ? "," : "") + " " + std::to_string(offline) + " of " +
           std::to_string(devices_.size()) + " devices offline";
    }
    return h;
  }
  return "ok";
}

void ModbusLine::run() {
  try {
    loop();
  } catch (const std::exception& e) {
    spdlog::error("modbus line {}: poller stopped: {}", line_.id, e.what());
    thread_failed_ = true;
  }
  conn_.close();
  connected_ = false;
  connected_gauge_.set(0);
  std::deque<PendingWrite> left;
  {
    std::lock_guard lock(mu_);
    left.swap(incoming_);
  }
  for (const auto& w : left) {
    failWrite(w.request, "modbus driver stopped", 0);
  }
  for (const auto& w : pending_) {
    failWrite(w.request, "modbus driver stopped", 0);
  }
  pending_.clear();
}

void ModbusLine::loop() {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) {
        return;
      }
    }
    if (heartbeat_ != nullptr) {
      heartbeat_->beat();
    }
    int64_t t = now();
    takeIncoming(t);
    if (!ensureConnected(t)) {
      for (const auto& w : pending_) {
        failWrite(w.request, "line " + line_.id + " not connected", 0);
      }
      pending_.clear();
      waitFor(std::min<int64_t>(reconnect_at_ms_ - t, 1000));
      continue;
    }
    if (runDueWrite(t)) {
      continue;
    }
    if (runRefresh()) {
      continue;
    }
    DeviceState* due = nullptr;
    for (auto& d : devices_) {
      if (due == nullptr || d.next_due_ms < due->next_due_ms) {
        due = &d;
      }
    }
    if (due != nullptr && due->next_due_ms <= t) {
      PollOutcome outcome = pollDevice(*due);
      afterPoll(*due, outcome, now());
      continue;
    }
    int64_t wait = 1000;
    if (due != nullptr) {
      wait = std::min(wait, due->next_due_ms - t);
    }
    for (const auto& w : pending_) {
      wait = std::min(wait, w.not_before_ms - t);
    }
    waitFor(wait);
  }
}

void ModbusLine::waitFor(int64_t ms) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(ms, 1)),
               [&] { return stopping_ || !incoming_.empty() || !refresh_incoming_.empty(); });
}

bool ModbusLine::ensureConnected(int64_t t) {
  if (conn_.isOpen()) {
    return true;
  }
  if (t < reconnect_at_ms_) {
    return false;
  }
  std::string error;
  if (conn_.open(error)) {
    connected_ = true;
    connected_gauge_.set(1);
    reconnects_.inc();
    spdlog::info("modbus line {}: connected", line_.id);
    return true;
  }
  countError(nullptr, ErrorKind::Connection);
  log_.warn("modbus line {}: {}", line_.id, error);
  reconnect_at_ms_ = t + reconnect_backoff_.next().count();
  {
    std::lock_guard lock(mu_);
    last_error_ = error;
  }
  for (auto& d : devices_) {
    setLink(d, Link::Offline, error);
  }
  return false;
}

void ModbusLine::takeIncoming(int64_t t) {
  std::deque<PendingWrite> in;
  std::vector<model::DeviceIndex> refresh;
  {
    std::lock_guard lock(mu_);
    in.swap(incoming_);
    refresh.swap(refresh_incoming_);
    urgent_waiting_.store(false, std::memory_order_relaxed);
  }
  for (model::DeviceIndex di : refresh) {
    if (DeviceState* d = stateOf(di)) {
      d->refresh = true;
    }
  }
  for (auto& w : in) {
    if (w.rejected) {
      failWrite(w.request, w.reject_reason, 0);
      continue;
    }
    auto key = std::make_pair(w.request.device, w.request.point);
    // A newer value for the same point replaces one still waiting for its turn: the display
    // gets the latest count, and a cut is never delayed behind a stale enable.
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->request.device == key.first && it->request.point == key.second) {
        failWrite(it->request, "superseded by write " + std::to_string(w.request.id), 0);
        pending_.erase(it);
        break;
      }
    }
    w.not_before_ms = t;
    auto last = last_write_ms_.find(key);
    // The pacing between writes to one relay never delays a cut.
    if (last != last_write_ms_.end() && !w.request.de_energize) {
      w.not_before_ms = std::max(t, last->second + config_.write_min_interval_ms);
    }
    pending_.push_back(std::move(w));
  }
}

bool ModbusLine::runDueWrite(int64_t t, bool urgent_only) {
  auto best = pending_.end();
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->not_before_ms > t || (urgent_only && !it->request.de_energize)) {
      continue;
    }
    // Cuts first, then the longest waiting.
    if (best == pending_.end() ||
        (it->request.de_energize && !best->request.de_energize) ||
        (it->request.de_energize == best->request.de_energize &&
         it->not_before_ms < best->not_before_ms)) {
      best = it;
    }
  }
  if (best == pending_.end()) {
    return false;
  }
  WriteRequest w = std::move(best->request);
  pending_.erase(best);
  last_write_ms_[{w.device, w.point}] = t;
  executeWrite(w);
  return true;
}

void ModbusLine::executeWrite(const WriteRequest& w) {
  DeviceState* d = stateOf(w.device);
  if (d == nullptr || w.device >= compound_.devices.size()) {
    failWrite(w, "device is not on modbus line " + line_.id, 0);
    return;
  }
  const model::Device& dev = compound_.devices[w.device];
  const std::string& point_name =
      w.point < compound_.pointCount() ? compound_.pointName(w.point) : std::string("?");
  const model::PointDef* pd = dev.profile != nullptr ? dev.profile->point(w.point) : nullptr;
  if (pd == nullptr || !pd->writable) {
    failWrite(w, "point " + point_name + " of " + dev.id + " is not writable", 0);
    return;
  }
  const profiles::ModbusSpec& spec = *profiles::modbusSpec(*d->device->profile);
  const profiles::RegisterDef* def = nullptr;
  uint32_t address = 0;
  if (w.device == d->device->index) {
    def = spec.reg(w.point);
    address = def != nullptr ? def->address : 0;
  } else {
    const profiles::RegisterBlock* block = nullptr;
    def = spec.blockReg(w.point, &block);
    address = def != nullptr ? profiles::blockAddress(*block, *def, dev.child_number) : 0;
  }
  if (def == nullptr || (def->table != profiles::RegisterTable::Coil &&
                         def->table != profiles::RegisterTable::Holding)) {
    failWrite(w, "point " + point_name + " has no coil or holding register in profile " +
                     d->device->profile->name,
              0);
    return;
  }
  auto value = model::coerce(w.value, pd->type);
  if (!value) {
    failWrite(w, "value " + model::toText(w.value) + " does not fit point " + point_name + " (" +
                     model::pointTypeName(pd->type) + ")",
              0);
    return;
  }
  if (auto num = model::asNumber(*value); num && pd->type == model::PointType::Number) {
    if ((pd->min && *num < *pd->min) || (pd->max && *num > *pd->max)) {
      failWrite(w, "value " + model::toText(*value) + " outside the range of point " + point_name,
                0);
      return;
    }
  }
  bool coil = def->table == profiles::RegisterTable::Coil;
  bool coil_value = coil && model::asBool(*value).value_or(false);
  std::vector<uint16_t> regs;
  if (!coil) {
    std::string error;
    auto enc = encodeRegisters(*def, *value, error);
    if (!enc) {
      failWrite(w, error, 0);
      return;
    }
    regs = std::move(*enc);
  }
  conn_.setUnit(d->device->modbus.unit_id);
  conn_.setTimeout(d->timeout_ms);
  std::string error;
  for (int attempt = 1; attempt <= 2; ++attempt) {
    TxResult tx = coil ? conn_.writeCoil(static_cast<uint16_t>(address), coil_value)
                       : conn_.writeRegisters(static_cast<uint16_t>(address), regs);
    if (tx.ok()) {
      tx = conn_.read(def->table, static_cast<uint16_t>(address), def->count, reg_buf_, bit_buf_);
      if (!tx.ok()) {
        error = "read-back failed: " + errorText(tx.error, tx.err);
      }
    } else {
      error = "write failed: " + errorText(tx.error, tx.err);
    }
    if (!tx.ok()) {
      countError(d, tx.error);
      if (tx.error == ErrorKind::Connection) {
        afterPoll(*d, {PollStatus::Connection, tx.error, error}, now());
        failWrite(w, error, attempt);
        return;
      }
      conn_.flush();
      continue;
    }
    model::Value read_back =
        coil ? decodeBit(bit_buf_[0])
             : decodeRegisters(*def, std::span<const uint16_t>(reg_buf_.data(), def->count))
                   .value_or(model::Value{});
    bool match = coil ? (bit_buf_[0] != 0) == coil_value
                      : std::equal(regs.begin(), regs.end(), reg_buf_.begin());
    if (match) {
      int64_t wall = clock_.wallMs();
      ReadingBatch batch;
      batch.device = w.device;
      batch.readings.push_back({w.device, w.point, model::Quality::Good, read_back, wall, wall});
      deliver(std::move(batch));
      WriteResult r;
      r.request_id = w.id;
      r.device = w.device;
      r.point = w.point;
      r.value = *value;
      r.ok = true;
      r.attempts = attempt;
      r.ts_ms = wall;
      writes_ok_.inc();
      sink_.deliverResult(std::make_shared<const WriteResult>(std::move(r)));
      return;
    }
    error = "read-back mismatch (wrote " + model::toText(*value) + ", read " +
            model::toText(read_back) + ")";
  }
  log_.warn("modbus line {}: write {} of {}.{} failed: {}", line_.id, w.id, dev.id, point_name,
            error);
  failWrite(w, error, 2);
}

bool ModbusLine::runUrgentWrites() {
  if (!urgent_waiting_.load(std::memory_order_relaxed)) {
    return false;
  }
  takeIncoming(now());
  bool any = false;
  while (conn_.isOpen() && runDueWrite(now(), true)) {
    any = true;
  }
  return any;
}

bool ModbusLine::runRefresh() {
  for (auto& d : devices_) {
    if (!d.refresh) {
      continue;
    }
    d.refresh = false;
    if (d.link == Link::Offline) {
      continue;  // backed off: its next probe is due on its own schedule
    }
    PollOutcome outcome = pollDevice(d);
    // A good refresh leaves the cadence alone; a failed one counts like any failed poll.
    if (outcome.status != PollStatus::Ok) {
      afterPoll(d, outcome, now());
    }
    return true;
  }
  return false;
}

ModbusLine::PollOutcome ModbusLine::pollDevice(DeviceState& d) {
  conn_.setUnit(d.device->modbus.unit_id);
  conn_.setTimeout(d.timeout_ms);
  polls_total_.inc();
  d.polls->inc();
  auto t0 = std::chrono::steady_clock::now();
  std::vector<model::Reading> readings;
  readings.reserve(d.plan.values.size());
  int bad = 0;
  bool resynced = false;
  size_t refused = 0;
  PollOutcome refusal;
  for (size_t i = 0; i < d.plan.reads.size(); ++i) {
    const PlannedRead& r = d.plan.reads[i];
    if (i > 0 && runUrgentWrites()) {
      // A cut went out between two requests of this poll; the poll goes on where it was.
      if (!conn_.isOpen()) {
        return {PollStatus::Connection, ErrorKind::Connection, "connection lost during a write"};
      }
      conn_.setUnit(d.device->modbus.unit_id);
      conn_.setTimeout(d.timeout_ms);
    }
    if (line_.kind == LineKind::Rtu && line_.turnaround_ms > 0) {
      // RS-485 transceivers need a quiet line before the next frame; not a synchronisation.
      std::this_thread::sleep_for(std::chrono::milliseconds(line_.turnaround_ms));
    }
    TxResult tx = conn_.read(r.table, r.address, r.count, reg_buf_, bit_buf_);
    if (tx.error == ErrorKind::BadFrame && line_.kind == LineKind::Tcp && !resynced) {
      // Usually a late reply to an earlier request that timed out (a slow device behind a
      // TCP gateway): the stream is out of step, and every later request would read the reply
      // meant for the one before it. A fresh connection drops whatever is still in flight.
      countError(&d, tx.error);
      resynced = true;
      log_.warn("modbus line {}: reply out of step while polling {}: reconnecting", line_.id,
                d.device->id);
      std::string error;
      if (!conn_.open(error)) {
        return {PollStatus::Connection, ErrorKind::Connection, error};
      }
      reconnects_.inc();
      conn_.setUnit(d.device->modbus.unit_id);
      conn_.setTimeout(d.timeout_ms);
      tx = conn_.read(r.table, r.address, r.count, reg_buf_, bit_buf_);
    }
    if (!tx.ok()) {
      countError(&d, tx.error);
      std::string text = errorText(tx.error, tx.err);
      if (isConfigException(tx.error)) {
        log_.warn("modbus line {}: {} unit {} refuses {} {}+{}: {} (check the profile {})",
                  line_.id, d.device->id, d.device->modbus.unit_id,
                  profiles::tableName(r.table), r.address, r.count, text,
                  d.device->profile->name);
        if (refused++ == 0) {
          refusal = {PollStatus::Refused, tx.error,
                     text + " for " + std::string(profiles::tableName(r.table)) + " " +
                         std::to_string(r.address) + "+" + std::to_string(r.count) +
                         " (check the profile " + d.device->profile->name + ")"};
        }
        continue;
      }
      if (tx.error == ErrorKind::Connection) {
        return {PollStatus::Connection, tx.error, text};
      }
      if (tx.error == ErrorKind::Busy || tx.error == ErrorKind::Acknowledge) {
        return {PollStatus::Retry, tx.error, text};
      }
      conn_.flush();
      return {PollStatus::Failed, tx.error, text};
    }
    decodeRead(d.plan, i, std::span<const uint16_t>(reg_buf_.data(), r.count),
               std::span<const uint8_t>(bit_buf_.data(), r.count), clock_.wallMs(), readings,
               bad);
  }
  if (bad > 0) {
    countError(&d, ErrorKind::Decode);
    log_.warn("modbus line {}: {}: {} values did not decode (NaN or infinite)", line_.id,
              d.device->id, bad);
  }
  d.latency->observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  if (refused > 0 && refused == d.plan.reads.size()) {
    // It answers, but nothing it says is a value: not a healthy device with stale points.
    return refusal;
  }
  // One batch per device: the polled device first, then each child port.
  for (model::DeviceIndex di : d.plan.devices) {
    ReadingBatch batch;
    batch.device = di;
    for (auto& rd : readings) {
      if (rd.device == di) {
        batch.readings.push_back(std::move(rd));
      }
    }
    if (!batch.readings.empty()) {
      deliver(std::move(batch));
    }
  }
  return {};
}

void ModbusLine::afterPoll(DeviceState& d, const PollOutcome& outcome, int64_t t) {
  switch (outcome.status) {
  case PollStatus::Ok:
    d.attempt = 0;
    d.failures = 0;
    reconnect_backoff_.reset();
    setLink(d, Link::Online, "");
    d.cycle_ms += d.interval_ms;
    if (d.cycle_ms <= t - d.interval_ms) {
      // Fell more than an interval behind (a slow line): restart the cadence from now rather
      // than polling in a burst to catch up.
      d.cycle_ms = t;
    }
    d.next_due_ms = d.cycle_ms;
    return;
  case PollStatus::Connection: {
    conn_.close();
    connected_ = false;
    connected_gauge_.set(0);
    log_.warn("modbus line {}: connection lost: {}", line_.id, outcome.reason);
    {
      std::lock_guard lock(mu_);
      last_error_ = outcome.reason;
    }
    // The first loss after good polls reconnects at once (a dropped TCP session is usually
    // gone for good, the server is still there); a line that keeps losing it backs off.
    reconnect_at_ms_ =
        reconnect_backoff_.attempts() == 0 ? t : t + reconnect_backoff_.next().count();
    return;
  }
  case PollStatus::Retry:
    if (d.attempt < d.retries) {
      ++d.attempt;
      // A busy device gets a moment before the retry; the line serves the others meanwhile.
      d.next_due_ms = t + std::min<int64_t>(d.timeout_ms, int64_t{50} << d.attempt);
      return;
    }
    break;
  case PollStatus::Refused:
    d.attempt = 0;
    ++d.failures;
    d.failed_polls->inc();
    setLink(d, Link::Faulted, outcome.reason);
    d.cycle_ms = t + std::min(d.interval_ms << std::min(d.failures - 1, 20),
                              std::max(line_.max_backoff_ms, d.interval_ms));
    d.next_due_ms = d.cycle_ms;
    return;
  case PollStatus::Failed:
    // While a device is offline a probe gets one attempt: retries are for a device that answers.
    if (d.attempt < d.retries && d.link != Link::Offline) {
      ++d.attempt;
      d.next_due_ms = t;
      return;
    }
    break;
  }
  d.attempt = 0;
  ++d.failures;
  d.failed_polls->inc();
  setLink(d, Link::Offline, outcome.reason);
  int shift = std::min(d.failures - 1, 20);
  int64_t backoff = std::min(d.interval_ms << shift, std::max(line_.max_backoff_ms, d.interval_ms));
  d.cycle_ms = t + backoff;
  d.next_due_ms = d.cycle_ms;
}

void ModbusLine::setLink(DeviceState& d, Link link, const std::string& reason) {
  if (d.link == link) {
    return;
  }
  if (d.link == Link::Offline) {
    --offline_devices_;
  } else if (d.link == Link::Faulted) {
    --faulted_devices_;
  }
  if (link == Link::Offline) {
    ++offline_devices_;
    log_.warn("modbus line {}: {} (unit {}) offline: {}", line_.id, d.device->id,
              d.device->modbus.unit_id, reason);
  } else if (link == Link::Faulted) {
    ++faulted_devices_;
    log_.warn("modbus line {}: {} (unit {}) faulted: {}", line_.id, d.device->id,
              d.device->modbus.unit_id, reason);
  } else if (d.link == Link::Offline || d.link == Link::Faulted) {
    spdlog::info("modbus line {}: {} back online", line_.id, d.device->id);
  }
  d.link = link;
  d.online->set(link == Link::Online ? 1 : 0);
  int64_t wall = clock_.wallMs();
  for (model::DeviceIndex di : d.plan.devices) {
    DeviceHealth h;
    h.device = di;
    h.online = link == Link::Online;
    h.reason = reason;
    if (link == Link::Faulted) {
      h.fault = reason;
    }
    h.ts_ms = wall;
    deliver(std::move(h));
  }
}

void ModbusLine::countError(DeviceState* d, ErrorKind kind) {
  auto& line_counter = line_errors_[kind];
  if (line_counter == nullptr) {
    line_counter = &metrics_.counter("hgj_modbus_errors_total", "Modbus errors by line and kind",
                                     {{"line", line_.id}, {"kind", errorKindName(kind)}});
  }
  line_counter->inc();
  if (d != nullptr) {
    auto& c = d->errors[kind];
    if (c == nullptr) {
      c = &metrics_.counter("hgj_modbus_device_errors_total", "Modbus errors by device and kind",
                            {{"device", d->device->id}, {"kind", errorKindName(kind)}});
    }
    c->inc();
  }
}

void ModbusLine::failWrite(const WriteRequest& w, const std::string& error, int attempts) {
  writes_failed_.inc();
  sink_.deliverResult(std::make_shared<const WriteResult>(
      WriteResult::failure(w, error, attempts, clock_.wallMs())));
}

void ModbusLine::deliver(Sample&& s) {
  // false only while the gateway shuts down, when the sample no longer matters.
  (void)sink_.deliver(std::move(s));
}

ModbusLine::DeviceState* ModbusLine::stateOf(model::DeviceIndex device) {
  auto it = device_slot_.find(device);
  return it == device_slot_.end() ? nullptr : &devices_[it->second];
}

} // namespace hgj::drivers::modbus
