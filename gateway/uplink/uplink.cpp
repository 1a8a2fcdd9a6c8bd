#include "gateway/uplink/uplink.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include "core/thread_name.h"
#include "drivers/mqtt/paho_tls.h"
#include "gateway/uplink/tls_probe.h"

namespace hgj::uplink {

namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr size_t kFetchBatch = 512;
constexpr size_t kMaxIncoming = 256;
// Commands waiting for the uplink thread, in payload bytes: a flood of large config pushes is
// dropped (counted) instead of held.
constexpr size_t kMaxIncomingBytes = 8 * 1024 * 1024;
constexpr size_t kMaxPendingCommands = 64;
constexpr size_t kRecentResults = 256;
constexpr size_t kAttributesPerMessage = 100;
// The loop wakes at least this often (to refresh gauges and notice a ManualClock moving).
constexpr milliseconds kMaxIdle(200);
// A connection that lasted this long resets the backoff; a flapping one keeps backing off.
constexpr milliseconds kStableConnection(30'000);
constexpr milliseconds kSummaryCheckEvery(500);
constexpr size_t kDeleteBatch = 512;
constexpr milliseconds kDeleteDelay(20);

std::string normaliseUrl(const std::string& url) {
  if (url.rfind("mqtts://", 0) == 0) {
    return "ssl://" + url.substr(8);
  }
  if (url.rfind("mqtt://", 0) == 0) {
    return "tcp://" + url.substr(7);
  }
  return url;
}

std::string ageText(int64_t ms) {
  if (ms < 120'000) {
    return std::to_string(ms / 1000) + "s";
  }
  if (ms < 7'200'000) {
    return std::to_string(ms / 60'000) + "m";
  }
  return std::to_string(ms / 3'600'000) + "h";
}

} // namespace

/// One connection attempt's Paho client and its callbacks. Destroyed on the uplink thread (never
/// from a callback), so no callback of it can run afterwards.
struct Uplink::Link : public mqtt::iaction_listener {
  Link(Uplink& owner, const std::string& url, const std::string& client_id, int window)
      : owner(owner),
        // Paho queues every publish as a command and refuses more than maxBufferedMessages of
        // them (default 100), even while connected: size it to the window.
        client(url, client_id, mqtt::create_options(MQTTVERSION_3_1_1, window + 64),
               static_cast<mqtt::iclient_persistence*>(nullptr)) {
    client.set_connection_lost_handler([this](const std::string& cause) {
      std::lock_guard lock(this->owner.mu_);
      this->owner.lost_ = true;
      this->owner.lost_cause_ = cause.empty() ? "connection lost" : cause;
      this->owner.work_ = true;
      this->owner.wake_.notify_one();
    });
    client.set_message_callback([this](mqtt::const_message_ptr msg) {
      std::lock_guard lock(this->owner.mu_);
      const size_t bytes = msg->get_payload_ref().size();
      if (this->owner.incoming_.size() >= kMaxIncoming ||
          this->owner.incoming_bytes_ + bytes > kMaxIncomingBytes) {
        this->owner.incoming_dropped_.inc();
        return;
      }
      this->owner.incoming_bytes_ += bytes;
      this->owner.incoming_.emplace_back(msg->get_topic(), msg->get_payload_str());
      this->owner.work_ = true;
      this->owner.wake_.notify_one();
    });
  }

  // Publish acknowledged (PUBACK): the user context carries the outbox seq (> 0), or a
  // negative serial for session messages that are not in the outbox.
  void on_success(const mqtt::token& tok) override {
    auto seq = static_cast<int64_t>(reinterpret_cast<intptr_t>(tok.get_user_context()));
    std::lock_guard lock(owner.mu_);
    owner.acked_.push_back(seq);
    // One wake-up per batch of acks: the uplink thread takes all of them at once.
    if (!owner.work_) {
      owner.work_ = true;
      owner.wake_.notify_one();
    }
  }
  void on_failure(const mqtt::token& tok) override {
    std::lock_guard lock(owner.mu_);
    owner.lost_ = true;
    owner.lost_cause_ = "publish failed (rc " + std::to_string(tok.get_return_code()) + ")";
    owner.work_ = true;
    owner.wake_.notify_one();
  }

  Uplink& owner;
  mqtt::async_client client;
};

Uplink::Uplink(const UplinkConfig& config, const std::string& site_id, const std::string& db_path,
               const pipeline::ReadModel& read_model, pipeline::CommandSink& commands,
               const core::Clock& clock, core::MetricsRegistry& metrics)
    : config_(config),
      site_id_(site_id),
      read_model_(read_model),
      commands_(commands),
      clock_(clock),
      format_(config.mode, site_id),
      published_(metrics.counter("hgj_uplink_published_total", "upstream publishes sent")),
      published_at_once_(metrics.counter(
          "hgj_uplink_published_at_once_total",
          "upstream publishes made by the thread that raised the alert, not the uplink thread")),
      acked_total_(metrics.counter("hgj_uplink_acked_total",
                                   "upstream publishes acknowledged by the broker")),
      connects_(metrics.counter("hgj_uplink_connects_total", "upstream connections made")),
      connect_failures_(metrics.counter("hgj_uplink_connect_failures_total",
                                        "failed upstream connection attempts")),
      commands_ok_(metrics.counter("hgj_uplink_commands_total", "upstream commands by result",
                                   {{"result", "ok"}})),
      commands_failed_(metrics.counter("hgj_uplink_commands_total", "upstream commands by result",
                                       {{"result", "failed"}})),
      commands_refused_(metrics.counter("hgj_uplink_commands_total",
                                        "upstream commands by result", {{"result", "refused"}})),
      incoming_dropped_(metrics.counter("hgj_uplink_commands_dropped_total",
                                        "upstream commands dropped because too many queued")),
      connected_gauge_(metrics.gauge("hgj_uplink_connected", "1 when the upstream link is up")),
      oldest_age_gauge_(metrics.gauge("hgj_outbox_oldest_age_seconds",
                                      "age of the oldest message waiting in the outbox")),
      replay_rate_gauge_(metrics.gauge("hgj_uplink_replay_rate",
                                       "messages/s the uplink may send now (replay pacing)")),
      ack_rtt_gauge_(metrics.gauge("hgj_uplink_ack_rtt_seconds",
                                   "smoothed PUBACK round trip of the upstream connection")),
      replay_backoffs_(metrics.counter("hgj_uplink_replay_backoffs_total",
                                       "times slow PUBACKs halved the replay rate")),
      backoff_(config.backoff_min, config.backoff_max), pacer_(config.replay),
      summaries_(config.summaries) {
  if (config_.enabled) {
    outbox_ = std::make_unique<Outbox>(
        db_path, site_id,
        Outbox::Limits{config_.outbox.max_rows, config_.outbox.max_bytes,
                       config_.summaries.coalesce, config_.mode == Mode::Native},
        clock_, metrics);
    outbox_->setWakeHandler([this] {
      {
        std::lock_guard lock(mu_);
        work_ = true;
      }
      wake_.notify_one();
    });
  }
}

Uplink::~Uplink() {
  stop();
}

void Uplink::setDropHandler(Outbox::DropHandler handler) {
  if (outbox_) {
    outbox_->setDropHandler(std::move(handler));
  }
}

OutboxStats Uplink::outboxStats() const {
  return outbox_ ? outbox_->stats() : OutboxStats{};
}

void Uplink::start() {
  if (!outbox_ || thread_.joinable()) {
    return;
  }
  {
    std::lock_guard lock(mu_);
    stop_requested_ = false;
    next_attempt_ = clock_.steadyNow();
  }
  {
    std::lock_guard lock(writer_mu_);
    writer_stop_ = false;
  }
  writer_ = std::thread([this] {
    core::nameThisThread("hgj-outbox");
    runWriter();
  });
  thread_ = std::thread([this] {
    core::nameThisThread("hgj-uplink");
    run();
  });
}

void Uplink::stop() {
  if (!thread_.joinable()) {
    return;
  }
  {
    std::lock_guard lock(mu_);
    stop_requested_ = true;
    work_ = true;
  }
  wake_.notify_one();
  thread_.join();
  // The uplink thread handed its last acks over on the way out: the writer deletes them first.
  {
    std::lock_guard lock(writer_mu_);
    writer_stop_ = true;
  }
  writer_wake_.notify_one();
  writer_.join();
}

void Uplink::wakeWriter() {
  {
    std::lock_guard lock(writer_mu_);
    writer_work_ = true;
  }
  writer_wake_.notify_one();
}

void Uplink::waitForDeletes(milliseconds timeout) {
  std::unique_lock lock(writer_mu_);
  const uint64_t target = deletes_queued_;
  deletes_done_.wait_for(lock, timeout, [&] { return deletes_done_count_ >= target; });
}

void Uplink::runWriter() {
  while (true) {
    std::vector<int64_t> deletes;
    uint64_t batches = 0;
    bool stop = false;
    {
      std::unique_lock lock(writer_mu_);
      if (!writer_work_ && !writer_stop_) {
        writer_wake_.wait_for(lock, kMaxIdle, [this] { return writer_work_ || writer_stop_; });
      }
      writer_work_ = false;
      stop = writer_stop_;
      deletes.swap(to_delete_);
      batches = deletes_queued_;
    }
    if (!deletes.empty()) {
      // A failed delete is tried again by persist(); the rows are not sent again meanwhile
      // (a crash before the delete sends them once more, with the same msg_id).
      outbox_->remove(deletes);
    }
    // Command results posted by the uplink thread, messages whose commit failed (full disk),
    // rows acknowledged before their commit: all written here, off the publishing path.
    outbox_->persist();
    {
      std::lock_guard lock(writer_mu_);
      deletes_done_count_ = batches;
    }
    deletes_done_.notify_all();
    if (stop) {
      break;
    }
    try {
      runSummaries();
      runTelemetry();
    } catch (const std::exception& e) {
      spdlog::error("uplink: summaries: {}", e.what());
    }
  }
}

bool Uplink::enqueue(Kind kind, const std::string& subtopic, json body) {
  std::vector<Message> one;
  one.push_back({kind, subtopic, std::move(body)});
  return enqueueMany(std::move(one));
}

bool Uplink::enqueueMany(std::vector<Message> messages) {
  if (!outbox_) {
    return true;
  }
  const int64_t ts = clock_.wallMs();
  std::vector<Outbox::Entry> entries;
  entries.reserve(messages.size());
  for (auto& m : messages) {
    // A summary replaces an unsent one of its own type only: in ThingsBoard mode every summary
    // goes to one topic, so the key is the type (native mode: its topic, as stored on disk).
    std::string key;
    if (m.kind == Kind::Summary) {
      key = config_.mode == Mode::Native ? format_.nativeTopic(m.subtopic) : m.subtopic;
    }
    entries.push_back({m.kind,
                       [this, &m, ts](const std::string& msg_id, std::string& topic,
                                      std::string& payload) {
                         format_.render(m.kind, m.subtopic, std::move(m.body), msg_id, ts, topic,
                                        payload);
                       },
                       std::move(key)});
  }
  auto seqs = outbox_->append(std::move(entries));
  if (!seqs) {
    return false;
  }
  return std::none_of(seqs->begin(), seqs->end(), [](int64_t s) { return s == 0; });
}

std::optional<storage::DurableWrite> Uplink::stage(Kind kind, const std::string& subtopic,
                                                   json body) {
  if (!outbox_) {
    return std::nullopt;
  }
  const int64_t ts = clock_.wallMs();
  std::vector<Outbox::Entry> entries;
  entries.push_back({kind, [this, kind, &subtopic, &body, ts](const std::string& msg_id,
                                                            std::string& topic,
                                                            std::string& payload) {
                       format_.render(kind, subtopic, std::move(body), msg_id, ts, topic,
                                      payload);
                     }});
  auto write = outbox_->stage(std::move(entries));
  publishStagedNow();
  return write;
}

void Uplink::publishStagedNow() {
  // The uplink thread itself (an alert raised from its own work) publishes on its turn; a
  // std::mutex must not be tried by its owner.
  if (std::this_thread::get_id() == uplink_tid_.load()) {
    return;
  }
  std::unique_lock send(send_mu_, std::try_to_lock);
  if (!send.owns_lock() || !link_ || !connected_.load()) {
    return;  // the uplink thread, woken by the stage, publishes it
  }
  fillWindow(false);
}

void Uplink::requestSummaries() {
  {
    std::lock_guard lock(mu_);
    summaries_requested_ = true;
  }
  wakeWriter();
}

std::string Uplink::health() const {
  if (!outbox_) {
    return "disabled";
  }
  OutboxStats s = outbox_->stats();
  std::string out;
  if (connected_.load()) {
    out = "connected to " + config_.url;
  } else {
    std::lock_guard lock(mu_);
    out = "disconnected from " + config_.url;
    if (!last_error_.empty()) {
      out += " (" + last_error_ + ")";
    }
    auto wait = std::chrono::duration_cast<milliseconds>(next_attempt_ - clock_.steadyNow());
    out += "; retry in " + ageText(std::max<int64_t>(0, wait.count()));
  }
  out += "; outbox " + std::to_string(s.rows);
  if (s.rows > 0 && s.oldest_created_ms > 0) {
    out += " (oldest " + ageText(std::max<int64_t>(0, clock_.wallMs() - s.oldest_created_ms)) +
           ")";
  }
  uint64_t dropped = 0;
  for (auto d : s.dropped) {
    dropped += d;
  }
  if (dropped > 0) {
    out += "; dropped " + std::to_string(dropped) + " while full";
  }
  return out;
}

void Uplink::run() {
  spdlog::info("uplink: {} mode, {} ({} messages waiting)", modeName(config_.mode), config_.url,
               outbox_->stats().rows);
  uplink_tid_ = std::this_thread::get_id();
  while (true) {
    {
      std::unique_lock lock(mu_);
      if (stop_requested_) {
        break;
      }
    }
    std::unique_lock send(send_mu_);
    try {
      loopOnce();
    } catch (const std::exception& e) {
      // One bad turn must not end the link: drop the connection and retry after a backoff.
      spdlog::error("uplink: {}", e.what());
      dropLink(e.what());
    }
    std::unique_lock lock(mu_);
    if (!work_ && !stop_requested_) {
      auto until = nextWake();
      send.unlock();
      auto wait = std::clamp(std::chrono::duration_cast<milliseconds>(until - clock_.steadyNow()),
                             milliseconds(0), kMaxIdle);
      wake_.wait_for(lock, wait, [this] { return work_ || stop_requested_; });
    }
    work_ = false;
  }
  // Orderly shutdown: say we are leaving, keep what is unacknowledged for the next start.
  std::lock_guard send(send_mu_);
  processAcks(true);
  if (link_) {
    try {
      if (config_.mode == Mode::Native && link_->client.is_connected()) {
        link_->client.publish(format_.statusTopic(), "offline", 7, 1, true)
            ->wait_for(milliseconds(1000));
      }
      link_->client.disconnect(milliseconds(500))->wait_for(milliseconds(1000));
    } catch (const std::exception& e) {
      spdlog::debug("uplink: disconnect: {}", e.what());
    }
    processAcks(true);
    link_.reset();
  }
  connected_ = false;
  connected_gauge_.set(0);
}

core::SteadyTime Uplink::nextWake() const {
  auto now = clock_.steadyNow();
  auto next = now + kMaxIdle;
  if (!connected_.load()) {
    next = std::min(next, next_attempt_);
  } else if (!pacer_.unlimited() && (!rows_.empty() || !session_.empty())) {
    next = std::min(next, now + std::max(milliseconds(1), pacer_.untilNext(now)));
  }
  if (!pending_.empty()) {
    next = std::min(next, now + milliseconds(20));
  }
  if (!acked_rows_.empty()) {
    next = std::min(next, acked_rows_since_ + kDeleteDelay);
  }
  return next;
}

void Uplink::loopOnce() {
  bool lost = false;
  std::string cause;
  {
    std::lock_guard lock(mu_);
    std::swap(lost, lost_);
    cause = lost_cause_;
  }
  processAcks();
  if (lost && link_) {
    dropLink(cause);
  }
  if (!link_) {
    bool due;
    {
      std::lock_guard lock(mu_);
      due = clock_.steadyNow() >= next_attempt_;
    }
    if (due) {
      tryConnect();
    }
  }
  handleIncoming();
  pollCommands();
  if (link_) {
    if (!announced_) {
      announceDevices();
    }
    fillWindow();
  }
  auto s = outbox_->stats();
  oldest_age_gauge_.set(s.rows > 0 && s.oldest_created_ms > 0
                            ? static_cast<double>(clock_.wallMs() - s.oldest_created_ms) / 1000.0
                            : 0.0);
}

void Uplink::dropLink(const std::string& why) {
  if (link_) {
    spdlog::warn("uplink: connection to {} lost: {}", config_.url, why);
    link_.reset();
  }
  connected_ = false;
  connected_gauge_.set(0);
  const bool was_stable = clock_.steadyNow() - connected_at_ >= kStableConnection;
  if (was_stable) {
    backoff_.reset();
  }
  processAcks(true);
  sent_at_.clear();
  waitForDeletes(milliseconds(1000));
  // Everything unacknowledged is sent again from the oldest row on the next connection.
  inflight_ = 0;
  rows_.clear();
  session_.clear();
  cursor_ = 0;
  announced_ = false;
  auto delay = backoff_.next();
  if (was_stable && config_.backoff_first > delay) {
    // Every gateway of a district lost this broker at the same instant: spread the first
    // attempt over backoff.first instead of [min/4, min], or they all return within a second.
    const int64_t hi = std::min(config_.backoff_first, config_.backoff_max).count();
    const int64_t lo = std::min<int64_t>(hi, std::max<int64_t>(1, config_.backoff_min.count() / 4));
    delay = milliseconds(std::uniform_int_distribution<int64_t>(lo, hi)(rng_));
  }
  std::lock_guard lock(mu_);
  lost_ = false;
  last_error_ = why;
  next_attempt_ = clock_.steadyNow() + delay;
}

namespace {

// The upstream connection's options, from the uplink's configuration.
mqtt::connect_options connectOptions(const UplinkConfig& config, const WireFormat& format) {
  mqtt::connect_options opts;
  opts.set_mqtt_version(MQTTVERSION_3_1_1);
  // A clean session: the outbox, not the broker's session, is the source of truth, and after
  // a reconnect the uplink sends again from its oldest unacknowledged row, in order.
  opts.set_clean_session(true);
  opts.set_keep_alive_interval(
      std::chrono::duration_cast<std::chrono::seconds>(config.keepalive));
  opts.set_connect_timeout(std::max<int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(config.connect_timeout).count()));
  opts.set_automatic_reconnect(false);
  opts.set_max_inflight(config.inflight + 8);
  std::string user = config.username;
  if (config.mode == Mode::ThingsBoard && !config.thingsboard_access_token.empty()) {
    user = config.thingsboard_access_token;
  }
  if (!user.empty()) {
    opts.set_user_name(user);
  }
  if (!config.password.empty()) {
    opts.set_password(config.password);
  }
  if (config.mode == Mode::Native) {
    opts.set_will(mqtt::will_options(format.statusTopic(), std::string("offline"), 1, true));
  }
  if (config.usesTls()) {
    opts.set_ssl(drivers::mqtt::pahoSslOptions(config.tls));
  }
  return opts;
}

} // namespace

void Uplink::tryConnect() {
  const std::string url = normaliseUrl(config_.url);
  const std::string client_id = config_.client_id.empty() ? "hgj-" + site_id_ : config_.client_id;
  std::string error;
  std::unique_ptr<Link> link;
  try {
    link = std::make_unique<Link>(*this, url, client_id, config_.inflight);
    auto tok = link->client.connect(connectOptions(config_, format_));
    const auto give_up = clock_.steadyNow() + config_.connect_timeout + milliseconds(1000);
    while (!tok->wait_for(milliseconds(50))) {
      std::lock_guard lock(mu_);
      if (stop_requested_) {
        return;
      }
      if (clock_.steadyNow() > give_up) {
        throw std::runtime_error("connect timed out");
      }
    }
    for (const auto& t : format_.commandTopics()) {
      link->client.subscribe(t, 1);
    }
    link_ = std::move(link);
  } catch (const std::exception& e) {
    error = e.what();
    if (config_.usesTls()) {
      // Paho cannot say why a handshake failed (see tls_probe.h): ask OpenSSL directly.
      std::string why = probeTls(config_.url, config_.tls,
                                 std::min<milliseconds>(config_.connect_timeout, std::chrono::seconds(5)));
      if (!why.empty()) {
        error += " (tls: " + why + ")";
      }
    }
  }
  if (!error.empty()) {
    link.reset();
    connect_failures_.inc();
    auto delay = backoff_.next();
    std::lock_guard lock(mu_);
    last_error_ = error;
    next_attempt_ = clock_.steadyNow() + delay;
    spdlog::warn("uplink: cannot connect to {}: {}; retry in {} ms", config_.url, error,
                 delay.count());
    return;
  }
  onConnected();
}

void Uplink::onConnected() {
  connects_.inc();
  connected_ = true;
  connected_gauge_.set(1);
  connected_at_ = clock_.steadyNow();
  {
    std::lock_guard lock(mu_);
    last_error_.clear();
  }
  inflight_ = 0;
  cursor_ = 0;
  rows_.clear();
  session_.clear();
  announced_ = false;
  pacer_.reset(clock_.steadyNow());
  sent_at_.clear();
  if (config_.mode == Mode::Native) {
    session_.push_back({format_.statusTopic(), "online", true});
  }
  spdlog::info("uplink: connected to {} ({} messages waiting)", config_.url,
               outbox_->stats().rows);
}

void Uplink::announceDevices() {
  if (config_.mode != Mode::ThingsBoard) {
    announced_ = true;
    return;
  }
  auto snap = read_model_.current();
  if (!snap || !snap->compound) {
    return;
  }
  announced_ = true;
  json attrs = json::object();
  for (const auto& d : snap->compound->devices) {
    if (d.profile == nullptr) {
      continue;
    }
    session_.push_back(
        {"v1/gateway/connect", json{{"device", d.id}, {"type", d.type()}}.dump(), false});
    json a = {{"type", d.type()}, {"profile", d.profile->name}, {"grid", d.grid}};
    for (const auto& [k, v] : {std::pair{"building", &d.location.building},
                               {"level", &d.location.level}, {"zone", &d.location.zone},
                               {"space", &d.location.space}}) {
      if (!v->empty()) {
        a[k] = *v;
      }
    }
    if (d.type() == "parking_sensor" && !d.category.empty()) {
      a["category"] = d.category;
      int at = snap->compound->categoryIndex(d.category);
      if (at >= 0) {
        a["category_name"] = snap->compound->space_categories[static_cast<size_t>(at)].name;
      }
    }
    attrs[d.id] = std::move(a);
    if (attrs.size() >= kAttributesPerMessage) {
      session_.push_back({"v1/gateway/attributes", attrs.dump(), false});
      attrs = json::object();
    }
  }
  if (!attrs.empty()) {
    session_.push_back({"v1/gateway/attributes", attrs.dump(), false});
  }
}

void Uplink::processAcks(bool force) {
  std::vector<int64_t> acked;
  {
    std::lock_guard lock(mu_);
    acked.swap(acked_);
  }
  const auto now = clock_.steadyNow();
  if (!acked.empty()) {
    inflight_ = std::max(0, inflight_ - static_cast<int>(acked.size()));
    acked_total_.inc(acked.size());
    if (acked_rows_.empty()) {
      acked_rows_since_ = now;
    }
    for (int64_t seq : acked) {
      if (seq > 0) {
        acked_rows_.push_back(seq);
      }
      // Session messages (a ThingsBoard gateway announces every device on connect) are paced
      // like outbox rows, so their PUBACKs must raise the rate too, or a compound's hundreds
      // of announcements crawl at start_rate ahead of everything else.
      if (auto it = sent_at_.find(seq); it != sent_at_.end()) {
        pacer_.onAck(std::chrono::duration_cast<milliseconds>(now - it->second), now);
        sent_at_.erase(it);
      }
    }
    replay_rate_gauge_.set(pacer_.rate());
    ack_rtt_gauge_.set(pacer_.smoothedRttMs() / 1000.0);
    if (pacer_.backoffs() > backoffs_reported_) {
      replay_backoffs_.inc(pacer_.backoffs() - backoffs_reported_);
      backoffs_reported_ = pacer_.backoffs();
    }
  }
  // Deleting is one durable transaction (an fsync): batch it while a backlog drains. A crash
  // before the delete only means those rows are sent again, with the same msg_id. The writer
  // thread deletes, so this thread never waits for the write lock.
  if (acked_rows_.empty() || !(force || inflight_ == 0 || acked_rows_.size() >= kDeleteBatch ||
                               now - acked_rows_since_ >= kDeleteDelay)) {
    return;
  }
  {
    std::lock_guard lock(writer_mu_);
    to_delete_.insert(to_delete_.end(), acked_rows_.begin(), acked_rows_.end());
    deletes_queued_ += 1;
    writer_work_ = true;
  }
  writer_wake_.notify_one();
  acked_rows_.clear();
}

void Uplink::fillWindow(bool from_uplink) {
  const auto now = clock_.steadyNow();
  while (inflight_ < config_.inflight && pacer_.untilNext(now).count() == 0) {
    std::string topic;
    std::string payload;
    bool retained = false;
    int64_t seq = 0;  // the outbox row's; 0 for a session message
    if (!session_.empty()) {
      SessionMessage& m = session_.front();
      topic = std::move(m.topic);
      payload = std::move(m.payload);
      retained = m.retained;
      session_.pop_front();
    } else {
      if (rows_.empty()) {
        auto rows = outbox_->fetchAfter(cursor_, kFetchBatch, !from_uplink);
        if (rows.empty()) {
          return;
        }
        cursor_ = rows.back().seq;
        rows_.assign(std::make_move_iterator(rows.begin()), std::make_move_iterator(rows.end()));
      }
      OutboxRow& r = rows_.front();
      seq = r.seq;
      topic = std::move(r.topic);
      payload = std::move(r.payload);
      retained = r.kind == Kind::Status;
      rows_.pop_front();
    }
    auto msg = mqtt::make_message(std::move(topic), std::move(payload), 1, retained);
    const int64_t context = seq != 0 ? seq : -(++session_serial_);
    // Not published: the message goes back to the head of its queue, to be sent first.
    auto put_back = [&] {
      if (seq != 0) {
        OutboxRow back;
        back.seq = seq;
        back.topic = msg->get_topic();
        back.payload = msg->get_payload_str();
        back.kind = retained ? Kind::Status : Kind::Alert;
        rows_.push_front(std::move(back));
      } else {
        session_.push_front({msg->get_topic(), msg->get_payload_str(), retained});
      }
    };
    try {
      link_->client.publish(msg, reinterpret_cast<void*>(static_cast<intptr_t>(context)), *link_);
    } catch (const std::exception& e) {
      const auto* me = dynamic_cast<const mqtt::exception*>(&e);
      if ((me != nullptr && me->get_return_code() == MQTTASYNC_MAX_BUFFERED_MESSAGES) ||
          !from_uplink) {
        // Paho's queue is full (sent again once acks have drained it), or the fast path
        // failed: the uplink thread, woken by the stage, tries again and owns dropping the link.
        put_back();
        return;
      }
      dropLink(std::string("publish: ") + e.what());
      return;
    }
    inflight_ += 1;
    published_.inc();
    if (!from_uplink) {
      published_at_once_.inc();
    }
    pacer_.tryTake(now);
    sent_at_[context] = now;
  }
}

void Uplink::handleIncoming() {
  std::deque<std::pair<std::string, std::string>> incoming;
  {
    std::lock_guard lock(mu_);
    incoming.swap(incoming_);
    incoming_bytes_ = 0;
  }
  const bool push_enabled = config_.config_push.enabled;
  for (auto& [topic, payload] : incoming) {
    std::vector<std::string> allowed = config_.commands.enabled ? config_.commands.allow
                                                                : std::vector<std::string>{};
    if (push_enabled) {
      allowed.emplace_back("config_push");
    }
    ParsedCommand p = parseCommand(format_, topic, payload, allowed,
                                   push_enabled ? &config_.config_push.limits : nullptr);
    payload.clear();
    payload.shrink_to_fit();
    if (p.is_response) {
      continue;
    }
    if (p.ok) {
      authorize(p);
    }
    if (!p.ok) {
      commands_refused_.inc();
      refused_log_.warn("uplink: refused command {} on {}: {}", p.id.empty() ? "(no id)" : p.id,
                        core::printable(topic, 200), core::printable(p.reason));
      answer(p, false, p.status, p.reason);
      continue;
    }
    // The platform may send a command again (QoS 1 redelivery, its own retry): answer it with
    // the first result instead of executing it twice.
    auto seen = std::find_if(recent_results_.begin(), recent_results_.end(),
                             [&](const auto& r) { return r.first == p.id; });
    if (seen != recent_results_.end()) {
      answer(p, seen->second.ok, seen->second.http_status, seen->second.message);
      continue;
    }
    if (std::any_of(pending_.begin(), pending_.end(),
                    [&](const PendingCommand& c) { return c.parsed.id == p.id; })) {
      continue;
    }
    if (p.command.kind == pipeline::Command::Kind::SummaryNow) {
      // Summaries are built here from the read model; nothing for the pipeline to do.
      {
        std::lock_guard lock(mu_);
        summaries_requested_ = true;
      }
      wakeWriter();
      commands_ok_.inc();
      recent_results_.emplace_back(p.id, pipeline::CommandResult{true, 200, "summaries queued"});
      answer(p, true, 200, "summaries queued");
      continue;
    }
    if (pending_.size() >= kMaxPendingCommands) {
      commands_refused_.inc();
      answer(p, false, 503, "busy: too many commands in progress");
      continue;
    }
    spdlog::info("uplink: command {} {} from upstream", p.id, p.method);
    if (p.bundle) {
      if (!config_push_.submit) {
        commands_refused_.inc();
        answer(p, false, 503, "config push is not available");
        continue;
      }
      auto bundle = std::move(*p.bundle);
      p.bundle.reset();
      auto future = config_push_.submit(std::move(bundle), p.id, p.command.identity);
      pending_.push_back({std::move(p), std::move(future),
                          clock_.steadyNow() + config_.commands.timeout, true});
      continue;
    }
    auto future = commands_.submit(p.command);
    pending_.push_back({std::move(p), std::move(future),
                        clock_.steadyNow() + config_.commands.timeout});
  }
}

namespace {

// The broker is on this box: nothing on the way to spoof.
bool loopbackUrl(const std::string& url) {
  size_t at = url.find("://");
  std::string_view host = std::string_view(url).substr(at == std::string::npos ? 0 : at + 3);
  if (!host.empty() && host.front() == '[') {
    return host.substr(1, host.find(']') - 1) == "::1";
  }
  host = host.substr(0, host.find(':'));
  return host == "localhost" || host.rfind("127.", 0) == 0;
}

} // namespace

void Uplink::authorize(ParsedCommand& p) const {
  const CommandConfig& cc = config_.commands;
  // Who sent it, as far as this gateway can vouch: its own authenticated uplink connection
  // and the command's id. The payload's "by" is the sender's claim, kept as a note.
  p.command.identity = "upstream:" +
                       (config_.client_id.empty() ? "hgj-" + site_id_ : config_.client_id) +
                       "#" + core::printable(p.id, 128);
  auto refuse = [&](std::string why) {
    p.ok = false;
    p.status = 403;
    p.reason = "unauthorized: " + std::move(why);
  };
  if (p.bundle) {
    // A new configuration can change every rule and every write allowance: at least the
    // protection writes get.
    if (cc.require_tls && !config_.usesTls() && !loopbackUrl(config_.url)) {
      refuse("config push needs a TLS uplink (uplink.commands.require_tls)");
    }
    return;
  }
  if (p.command.kind != pipeline::Command::Kind::WritePoint) {
    return;
  }
  if (!cc.writeAllowed(p.command.device, p.command.point)) {
    refuse("writing " + p.command.device + "." + p.command.point +
           " from upstream is not allowed on this gateway (uplink.commands.write_points)");
  } else if (cc.require_tls && !config_.usesTls() && !loopbackUrl(config_.url)) {
    refuse("writes from upstream need a TLS uplink (uplink.commands.require_tls)");
  } else if (p.command.override_safety && !cc.allow_override) {
    refuse("overriding a safety cut from upstream is not allowed on this gateway "
           "(uplink.commands.allow_override)");
  }
}

void Uplink::pollCommands() {
  const auto now = clock_.steadyNow();
  for (auto it = pending_.begin(); it != pending_.end();) {
    pipeline::CommandResult result;
    bool done = false;
    if (!it->future.valid()) {
      result = {false, 500, "command sink returned no result"};
      done = true;
    } else if (it->future.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      try {
        result = it->future.get();
      } catch (const std::exception& e) {
        result = {false, 500, std::string("command failed: ") + e.what()};
      }
      done = true;
    } else if (now >= it->deadline) {
      result = {false, 504,
                "timed out after " +
                    std::to_string(std::chrono::duration_cast<milliseconds>(
                                       config_.commands.timeout)
                                       .count()) +
                    " ms"};
      done = true;
    }
    if (!done) {
      ++it;
      continue;
    }
    (result.ok ? commands_ok_ : commands_failed_).inc();
    spdlog::info("uplink: command {} {}: {} {}", it->parsed.id, it->parsed.method,
                 result.ok ? "ok" : "failed", result.message);
    answer(it->parsed, result.ok, result.http_status, result.message);
    if (it->config_push && config_push_.answered) {
      config_push_.answered();
    }
    recent_results_.emplace_back(it->parsed.id, result);
    while (recent_results_.size() > kRecentResults) {
      recent_results_.pop_front();
    }
    it = pending_.erase(it);
  }
}

void Uplink::answer(const ParsedCommand& cmd, bool ok, int status, const std::string& message) {
  if ((cmd.route == ParsedCommand::Route::TbGatewayRpc && cmd.tb_device.empty()) ||
      (cmd.route == ParsedCommand::Route::TbDeviceRpc && cmd.tb_request_id.empty())) {
    return;  // nowhere to answer
  }

  const int64_t ts = clock_.wallMs();
  std::vector<Outbox::Entry> entries;
  entries.push_back({Kind::CmdResult, [&](const std::string& msg_id, std::string& topic,
                                          std::string& payload) {
                       renderCommandResult(format_, cmd, ok, status, message, msg_id, ts, topic,
                                           payload);
                     }});
  // Posted, not committed here: the uplink thread never waits for the disk. The writer thread
  // commits it.
  outbox_->post(std::move(entries));
  wakeWriter();
}

void Uplink::runSummaries() {
  const auto now = clock_.steadyNow();
  bool forced;
  {
    std::lock_guard lock(mu_);
    forced = summaries_requested_;
    summaries_requested_ = false;
  }
  auto snap = read_model_.current();
  if (!snap || !snap->compound) {
    if (forced) {
      std::lock_guard lock(mu_);
      summaries_requested_ = true;  // keep the request until there is something to summarise
    }
    return;
  }
  const auto& sc = config_.summaries;
  const std::array<milliseconds, kSummaryTypeCount> periods = {sc.parking, sc.ev, sc.ebike,
                                                               sc.health};
  bool periodic_due = false;
  for (int i = 0; i < kSummaryTypeCount; ++i) {
    if (periods[i].count() > 0 &&
        (summary_sent_[i] == core::SteadyTime{} || now - summary_sent_[i] >= periods[i])) {
      periodic_due = true;
    }
  }
  const bool changed = sc.on_change && snap->version != summary_version_ &&
                       now - summary_checked_ >= kSummaryCheckEvery;
  if (!forced && !periodic_due && !changed) {
    return;
  }
  summary_version_ = snap->version;
  summary_checked_ = now;
  const int64_t now_ms = clock_.wallMs();
  std::vector<Message> out;
  for (int i = 0; i < kSummaryTypeCount; ++i) {
    auto type = static_cast<SummaryType>(i);
    json body = summaries_.build(type, *snap, now_ms);
    json sig = SummaryBuilder::signature(type, body);
    const bool never = summary_sent_[i] == core::SteadyTime{};
    const bool due = periods[i].count() > 0 && (never || now - summary_sent_[i] >= periods[i]);
    const bool significant = sc.on_change && sig != summary_sig_[i] &&
                             (never || now - summary_sent_[i] >= sc.min_interval);
    if (forced || due || significant) {
      summary_sent_[i] = now;
      summary_sig_[i] = std::move(sig);
      out.push_back({Kind::Summary, summarySubtopic(type), std::move(body)});
    }
  }
  if (!out.empty()) {
    enqueueMany(std::move(out));
  }
}

void Uplink::runTelemetry() {
  if (!config_.telemetry.enabled) {
    return;
  }
  const auto now = clock_.steadyNow();
  if (telemetry_at_ != core::SteadyTime{} && now - telemetry_at_ < config_.telemetry.period) {
    return;
  }
  telemetry_at_ = now;
  auto snap = read_model_.current();
  if (!snap || !snap->compound) {
    return;
  }
  std::vector<Message> out;
  json readings = json::array();
  int64_t newest = telemetry_after_ms_;
  auto flush = [&] {
    if (!readings.empty()) {
      out.push_back({Kind::Telemetry, "telemetry", json{{"readings", std::move(readings)}}});
      readings = json::array();
    }
  };
  const auto& compound = *snap->compound;
  for (const auto& d : compound.devices) {
    if (d.profile == nullptr || d.index >= snap->devices.size()) {
      continue;
    }
    const auto& points = snap->devices[d.index].points;
    for (size_t slot = 0; slot < points.size() && slot < d.profile->points.size(); ++slot) {
      const auto& p = points[slot];
      if (p.updated_ms <= telemetry_after_ms_ || model::isEmpty(p.value)) {
        continue;
      }
      newest = std::max(newest, p.updated_ms);
      readings.push_back({{"device", d.id},
                          {"point", d.profile->points[slot].name},
                          {"value", model::toJson(p.value)},
                          {"quality", model::qualityName(p.quality)},
                          {"ts", p.updated_ms}});
      if (static_cast<int>(readings.size()) >= config_.telemetry.max_batch) {
        flush();
      }
    }
  }
  flush();
  telemetry_after_ms_ = newest;
  if (!out.empty()) {
    enqueueMany(std::move(out));
  }
}

} // namespace hgj::uplink
