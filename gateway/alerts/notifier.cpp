#include "gateway/alerts/notifier.h"

#include <algorithm>
#include <deque>
#include <filesystem>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/thread_name.h"
#include "gateway/alerts/message_format.h"

namespace hgj::alerts {

namespace {

constexpr int64_t kMinuteMs = 60'000;
// Robot errcodes that mean "too many messages": back off for a whole minute (DingTalk throttles
// for 10 minutes after its limit, so hammering it only makes it worse).
constexpr int kWeComTooFast = 45009;
constexpr int kDingTalkTooFast = 130101;
constexpr size_t kMentionReserve = 300;
constexpr int64_t kPlausibleWallMs = 1'577'836'800'000;  // 2020-01-01
constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";

std::vector<std::string> stringList(const nlohmann::json& j, const char* key) {
  std::vector<std::string> out;
  if (!j.is_object() || !j.contains(key) || !j[key].is_array()) {
    return out;
  }
  for (const auto& v : j[key]) {
    if (v.is_string()) {
      out.push_back(v.get<std::string>());
    }
  }
  return out;
}

} // namespace

struct Notifier::Worker {
  ChannelConfig cfg;
  ParsedUrl url;
  std::unique_ptr<httplib::Client> client;
  std::deque<int64_t> sent_ms;  // steady times of the requests of the last minute
  int64_t backoff_ms = 0;
  int64_t retry_at_ms = 0;      // steady; no request before
  int64_t wait_hint_ms = 0;     // steady time at which the next pass has something to do
  std::thread thread;
  core::Counter* messages = nullptr;
  core::Counter* delivered = nullptr;
  core::Counter* failures = nullptr;
  core::Counter* expired = nullptr;
  core::Gauge* pending = nullptr;
  mutable std::mutex status_mu;
  ChannelStatus status;  // guarded by status_mu
};

Notifier::Notifier(const AlertsConfig& config, DeliveryBook& book, storage::DurableSink& sink,
                   const core::Clock& clock, core::MetricsRegistry& metrics)
    : config_(config), book_(book), sink_(sink), clock_(clock) {
  for (const auto& c : config_.channels) {
    if (!c.enabled || c.type == ChannelType::Upstream) {
      continue;
    }
    auto url = parseUrl(c.url);
    if (!url) {
      throw std::invalid_argument("alerts channel " + c.id + ": bad url " + redactUrl(c.url));
    }
    auto w = std::make_unique<Worker>();
    w->cfg = c;
    w->url = *url;
    w->client = std::make_unique<httplib::Client>(url->scheme_host_port);
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(c.timeout);
    auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(c.timeout - secs);
    w->client->set_connection_timeout(secs.count(), usecs.count());
    w->client->set_read_timeout(secs.count(), usecs.count());
    w->client->set_write_timeout(secs.count(), usecs.count());
    w->client->set_keep_alive(true);
    if (url->https) {
      std::string ca = !c.ca_file.empty() ? c.ca_file
                       : std::filesystem::exists(kSystemCaBundle) ? kSystemCaBundle
                                                                  : "";
      if (!ca.empty()) {
        w->client->set_ca_cert_path(ca);
      }
      w->client->enable_server_certificate_verification(true);
    }
    core::Labels labels{{"channel", c.id}};
    w->messages = &metrics.counter("hgj_alert_messages_sent_total",
                                   "messages accepted by a channel", labels);
    w->delivered = &metrics.counter("hgj_alert_notifications_delivered_total",
                                    "notifications delivered (several per batched message)",
                                    labels);
    w->failures = &metrics.counter("hgj_alert_delivery_failures_total",
                                   "failed delivery attempts", labels);
    w->expired = &metrics.counter("hgj_alert_notifications_expired_total",
                                  "notifications given up after delivery.expire_after", labels);
    w->pending = &metrics.gauge("hgj_alert_notifications_pending",
                                "notifications waiting for delivery", labels);
    w->status.id = c.id;
    w->status.type = channelTypeName(c.type);
    workers_.push_back(std::move(w));
  }
}

Notifier::~Notifier() { stop(); }

void Notifier::start() {
  if (running_.exchange(true)) {
    return;
  }
  for (auto& w : workers_) {
    Worker* wp = w.get();
    wp->thread = std::thread([this, wp] {
      core::nameThisThread("hgj-notify");
      run(*wp);
    });
  }
}

void Notifier::stop() {
  if (!running_.exchange(false)) {
    return;
  }
  wake();
  for (auto& w : workers_) {
    if (w->thread.joinable()) {
      w->thread.join();
    }
  }
}

void Notifier::wake() {
  {
    std::lock_guard lock(wake_mu_);
    ++wake_gen_;
  }
  wake_cv_.notify_all();
}

PumpResult Notifier::pumpOnce(const std::string& channel_id) {
  for (auto& w : workers_) {
    if (w->cfg.id == channel_id) {
      return pump(*w);
    }
  }
  return {};
}

std::vector<ChannelStatus> Notifier::status() const {
  std::vector<ChannelStatus> out;
  for (const auto& w : workers_) {
    std::lock_guard lock(w->status_mu);
    out.push_back(w->status);
  }
  return out;
}

int64_t Notifier::nextWaitMs(const Worker& w) const {
  int64_t wait = config_.delivery.poll_interval.count();
  int64_t now = core::steadyMs(clock_);
  if (w.wait_hint_ms > now) {
    wait = std::min(wait, w.wait_hint_ms - now);
  }
  return std::max<int64_t>(wait, 1);
}

void Notifier::run(Worker& w) {
  uint64_t seen = 0;
  while (running_) {
    PumpResult r;
    try {
      r = pump(w);
    } catch (const std::exception& e) {
      // The top frame of the thread: a bug or an unexpected library error must not kill
      // delivery; log, back off a poll interval and try again.
      log_.warn("alerts: channel {} worker error: {}", w.cfg.id, e.what());
    }
    if (r.attempted && r.ok) {
      continue;  // more may be waiting; the rate limiter decides
    }
    std::unique_lock lock(wake_mu_);
    wake_cv_.wait_for(lock, std::chrono::milliseconds(nextWaitMs(w)),
                      [&] { return !running_ || wake_gen_ != seen; });
    seen = wake_gen_;
  }
}

void Notifier::refreshPending(Worker& w) {
  auto n = static_cast<int64_t>(book_.pendingCount(w.cfg.id));
  w.pending->set(static_cast<double>(n));
  std::lock_guard lock(w.status_mu);
  w.status.pending = n;
  w.status.backoff_ms = w.backoff_ms;
}

void Notifier::expireOld(Worker& w, int64_t now_wall) {
  // Rows stamped before kPlausibleWallMs were written while the wall clock was not set yet (a
  // box without RTC before NTP): their age is unknown, so they are never expired.
  std::vector<int64_t> expired =
      book_.expire(w.cfg.id, now_wall - config_.delivery.expire_after.count(), kPlausibleWallMs);
  if (expired.empty()) {
    return;
  }
  w.expired->inc(expired.size());
  spdlog::error("alerts: channel {}: {} notifications expired undelivered", w.cfg.id,
                expired.size());
  std::vector<storage::DurableWrite> out;
  out.push_back(DeliveryBook::expiredWrite(std::move(expired)));
  sink_.submit(std::move(out));
}

bool Notifier::heldBack(Worker& w, int64_t now) {
  if (now < w.retry_at_ms) {
    w.wait_hint_ms = w.retry_at_ms;
    return true;
  }
  while (!w.sent_ms.empty() && now - w.sent_ms.front() >= kMinuteMs) {
    w.sent_ms.pop_front();
  }
  if (w.cfg.rate_per_minute > 0 &&
      static_cast<int>(w.sent_ms.size()) >= w.cfg.rate_per_minute) {
    w.wait_hint_ms = w.sent_ms.front() + kMinuteMs;
    return true;
  }
  return false;
}

std::vector<OutgoingItem> Notifier::nextBatch(Worker& w, const std::string& title,
                                              int64_t& oldest_created) {
  std::vector<OutgoingItem> items;
  const size_t budget =
      static_cast<size_t>(w.cfg.max_bytes) > kMentionReserve + 64
          ? static_cast<size_t>(w.cfg.max_bytes) - kMentionReserve
          : static_cast<size_t>(w.cfg.max_bytes) / 2;
  for (auto& n : book_.pending(w.cfg.id, static_cast<size_t>(w.cfg.max_batch))) {
    OutgoingItem it;
    it.id = n.id;
    it.kind = n.kind;
    it.body = std::move(n.body);
    auto mentions = nlohmann::json::parse(n.mentions, nullptr, false);
    it.wecom_users = stringList(mentions, "wecom");
    it.mobiles = stringList(mentions, "mobiles");
    it.data = nlohmann::json::parse(n.data, nullptr, false);
    if (it.data.is_discarded()) {
      it.data = nlohmann::json::object();
    }
    if (items.empty()) {
      oldest_created = n.created_at;
    }
    // A message that was queued while the alert was open but goes out late (channel was down)
    // says what the alert's state is now, so nobody runs to a fire that is already out.
    if (it.kind == "raised" || it.kind == "escalated" || it.kind == "renotify") {
      if (n.alert_state == AlertState::Acked) {
        it.body += "\n> 当前状态：已确认";
      } else if (n.alert_state == AlertState::Cleared) {
        it.body += "\n> 当前状态：已恢复";
      }
    }
    if (items.empty()) {
      it.body = truncateUtf8(it.body, budget);
      items.push_back(std::move(it));
      continue;
    }
    items.push_back(std::move(it));
    if (batchText(title, items).size() > budget) {
      items.pop_back();
      break;
    }
  }
  return items;
}

std::string Notifier::post(Worker& w, const std::string& title,
                           const std::vector<OutgoingItem>& items, int64_t now, bool& too_fast) {
  std::string body;
  std::string path = w.url.path_query;
  switch (w.cfg.type) {
  case ChannelType::WeCom:
    body = buildWeComBody(title, items);
    break;
  case ChannelType::DingTalk:
    body = buildDingTalkBody(title, items);
    if (!w.cfg.secret.empty()) {
      int64_t ts = clock_.wallMs();
      path += (path.find('?') == std::string::npos ? "?" : "&");
      path += "timestamp=" + std::to_string(ts) + "&sign=" + dingTalkSign(w.cfg.secret, ts);
    }
    break;
  case ChannelType::Webhook:
  case ChannelType::Upstream:
    body = buildWebhookBody(config_.site_id, title, items);
    break;
  }
  auto res = w.client->Post(path, body, "application/json; charset=utf-8");
  if (!res) {
    return "request failed: " + httplib::to_string(res.error());
  }
  w.sent_ms.push_back(now);
  if (res->status < 200 || res->status >= 300) {
    too_fast = res->status == 429;
    return "http " + std::to_string(res->status);
  }
  if (w.cfg.type == ChannelType::WeCom || w.cfg.type == ChannelType::DingTalk) {
    auto j = nlohmann::json::parse(res->body, nullptr, false);
    if (!j.is_object() || !j.contains("errcode") || !j["errcode"].is_number_integer()) {
      return "unexpected reply: " + truncateUtf8(res->body, 200);
    }
    if (int code = j["errcode"].get<int>(); code != 0) {
      too_fast = code == kWeComTooFast || code == kDingTalkTooFast;
      return "errcode " + std::to_string(code) + ": " + j.value("errmsg", std::string());
    }
  }
  return {};
}

void Notifier::delivered(Worker& w, const std::vector<OutgoingItem>& items,
                         std::vector<int64_t> ids, int64_t now_wall) {
  book_.remove(w.cfg.id, ids);
  std::vector<storage::DurableWrite> record;
  record.push_back(DeliveryBook::sentWrite(ids, now_wall, items.front().id));
  sink_.submit(std::move(record));
  w.backoff_ms = 0;
  w.retry_at_ms = 0;
  w.messages->inc();
  w.delivered->inc(items.size());
  std::lock_guard lock(w.status_mu);
  ++w.status.messages_sent;
  w.status.last_error.clear();
}

void Notifier::failed(Worker& w, std::vector<int64_t> ids, const std::string& error,
                      bool too_fast, int64_t now, int64_t now_wall) {
  book_.failed(w.cfg.id, ids);
  std::vector<storage::DurableWrite> record;
  record.push_back(DeliveryBook::failedWrite(ids, now_wall, error));
  sink_.submit(std::move(record));
  int64_t initial = config_.delivery.retry_initial.count();
  w.backoff_ms = w.backoff_ms == 0 ? initial
                                   : std::min(w.backoff_ms * 2, config_.delivery.retry_max.count());
  if (too_fast) {
    w.backoff_ms = std::max(w.backoff_ms, kMinuteMs);
  }
  w.retry_at_ms = now + w.backoff_ms;
  w.wait_hint_ms = w.retry_at_ms;
  w.failures->inc();
  log_.warn("alerts: channel {}: delivery of {} notifications failed ({}), retry in {} ms",
            w.cfg.id, ids.size(), error, w.backoff_ms);
  std::lock_guard lock(w.status_mu);
  ++w.status.failures;
  w.status.last_error = error;
}

PumpResult Notifier::pump(Worker& w) {
  PumpResult result;
  const int64_t now = core::steadyMs(clock_);
  const int64_t now_wall = clock_.wallMs();
  w.wait_hint_ms = 0;
  expireOld(w, now_wall);
  if (heldBack(w, now)) {
    refreshPending(w);
    return result;
  }
  const std::string title = renderTemplate(config_.templates.title, {{"site", config_.site_name}});
  int64_t oldest_created = 0;
  std::vector<OutgoingItem> items = nextBatch(w, title, oldest_created);
  if (items.empty()) {
    refreshPending(w);
    return result;
  }
  // Wait a moment after the first notification of a burst so its siblings share the message.
  // (A row stamped in the future means the wall clock was set back: do not wait for it.)
  int64_t ready_at_wall = oldest_created + config_.delivery.batch_delay.count();
  if (now_wall < ready_at_wall &&
      ready_at_wall - now_wall <= config_.delivery.batch_delay.count()) {
    w.wait_hint_ms = now + (ready_at_wall - now_wall);
    refreshPending(w);
    return result;
  }
  result.attempted = true;
  bool too_fast = false;
  const std::string error = post(w, title, items, now, too_fast);
  std::vector<int64_t> ids;
  for (const auto& it : items) {
    ids.push_back(it.id);
  }
  if (error.empty()) {
    delivered(w, items, std::move(ids), now_wall);
    result.ok = true;
    result.delivered = static_cast<int>(items.size());
  } else {
    failed(w, std::move(ids), error, too_fast, now, now_wall);
  }
  refreshPending(w);
  return result;
}

} // namespace hgj::alerts
