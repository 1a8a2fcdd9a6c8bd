#include "gateway/api/event_feed.h"

#include "core/log.h"
#include "core/thread_name.h"
#include "gateway/api/views.h"

namespace hgj::api {

namespace {

using Clock = std::chrono::steady_clock;

// How long one step waits for new events before looking at snapshots, the heartbeat and stop.
constexpr auto kStep = std::chrono::milliseconds(400);
// Snapshot-changed events are sent at most this often.
constexpr auto kSnapshotEvery = std::chrono::milliseconds(1000);

std::string singleLine(std::string data) {
  for (char& c : data) {
    if (c == '\n' || c == '\r') {
      c = ' ';
    }
  }
  return data;
}

const std::string kResync = "event: resync\ndata: {}\n\n";

} // namespace

EventFeed::EventFeed(const pipeline::ReadModel& read_model, HttpListener& listener,
                     std::chrono::milliseconds heartbeat)
    : read_model_(read_model), listener_(listener), heartbeat_(heartbeat) {}

EventFeed::~EventFeed() {
  stop();
}

void EventFeed::start() {
  if (thread_.joinable()) {
    return;
  }
  {
    std::lock_guard lock(mu_);
    stop_ = false;
  }
  // Where the feed starts is read here, not on the new thread: a stream opened after start()
  // returns has events up to its own head, and the feed must broadcast everything after that
  // however late the thread first runs (it once read them there and, started late under load,
  // skipped what was pushed in between).
  uint64_t after = read_model_.lastSeq();
  uint64_t version = 0;
  if (auto s = read_model_.current()) {
    version = s->version;
  }
  thread_ = std::thread([this, after, version] {
    core::nameThisThread("hgj-events");
    run(after, version);
  });
}

void EventFeed::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

std::string EventFeed::format(const pipeline::LiveEvent& e,
                              const std::shared_ptr<const pipeline::Snapshot>& snap) {
  std::string id = "id: " + std::to_string(e.seq) + "\n";
  if (e.type != "spaces") {
    return id + "event: " + singleLine(e.type) + "\ndata: " + singleLine(e.json) + "\n\n";
  }
  // The pipeline names the spaces that changed; clients get each one's new state from the
  // snapshot published with the event.
  auto ids = nlohmann::json::parse(e.json, nullptr, false);
  if (!snap || !snap->compound || !ids.is_array()) {
    return id + "event: spaces\ndata: " + singleLine(e.json) + "\n\n";
  }
  std::string out;
  for (const auto& space : ids) {
    if (!space.is_string()) {
      continue;
    }
    const model::Device* d = snap->compound->device(space.get<std::string>());
    if (d == nullptr) {
      continue;
    }
    Json j{{"id", d->id},
           {"level", d->location.level},
           {"zone", d->location.zone},
                      {"state", spaceState(*snap, *d)},
           {"since", timeOrNull(d->index < snap->devices.size()
                                    ? snap->devices[d->index].space_since_ms
                                    : 0)},
           {"sensor", sensorState(*snap, *d)},
           {"category", d->category}};
    out += id + "event: space\ndata: " + j.dump() + "\n\n";
  }
  return out;
}

Response EventFeed::open(const Request& req) const {
  Response res;
  res.status = 200;
  res.stream = true;
  res.content_type = "text/event-stream";
  res.setHeader("Cache-Control", "no-store");
  res.setHeader("X-Accel-Buffering", "no");
  std::string last = req.header("last-event-id");
  if (last.empty()) {
    last = req.paramOr("after");
  }
  uint64_t head = read_model_.lastSeq();
  uint64_t after = head;
  std::string body = "retry: 2000\n: connected\n\n";
  if (auto n = parseUnsigned(last)) {
    if (*n > head) {
      // From an earlier run of the daemon (sequence restarted): the client must refetch.
      body += kResync;
    } else {
      bool gap = false;
      auto events = read_model_.eventsAfter(*n, std::chrono::milliseconds(0), &gap);
      if (gap) {
        body += kResync;
      }
      std::shared_ptr<const pipeline::Snapshot> snap;
      for (const auto& e : events) {
        if (e.type == "snapshot") {
          continue; // replaced by the feed's throttled snapshot events
        }
        if (e.type == "spaces" && !snap) {
          snap = read_model_.current();
        }
        body += format(e, snap);
      }
      after = events.empty() ? *n : events.back().seq;
    }
  }
  res.body = std::move(body);
  res.stream_after = after;
  return res;
}

void EventFeed::run(uint64_t after, uint64_t version) {
  auto last_write = Clock::now();
  auto last_snapshot = Clock::time_point{};
  bool caught_up = true;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stop_) {
        return;
      }
    }
    if (listener_.streams() == 0) {
      // Nobody listens: no event is formatted or posted to the network thread. The read model
      // keeps the recent events; once a stream opens (it got the state so far in open()), the
      // feed catches up from `after`, and streams skip what they already have (by seq).
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, kStep, [this] { return stop_; });
      caught_up = false;
      continue;
    }
    bool gap = false;
    auto asked = Clock::now();
    auto events = read_model_.eventsAfter(after, kStep, &gap);
    if (!caught_up) {
      // The first look after nobody listened: events lost from the read model's ring are older
      // than every open stream's start (open() gave each the state at its start), so they need
      // no resync.
      gap = false;
      caught_up = true;
    }
    if (events.empty() && Clock::now() - asked < kStep / 2) {
      // An early return without events: the read model is closed (shutting down). Wait for
      // stop() instead of spinning.
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, kStep, [this] { return stop_; });
    }
    if (gap) {
      listener_.broadcast(0, kResync);
      last_write = Clock::now();
      if (events.empty()) {
        // Everything missed has aged out of the ring: the resync stands for it all.
        after = read_model_.lastSeq();
      }
    }
    std::shared_ptr<const pipeline::Snapshot> snap;
    for (const auto& e : events) {
      after = e.seq;
      if (e.type == "snapshot") {
        continue;
      }
      if (e.type == "spaces" && !snap) {
        snap = read_model_.current();
      }
      listener_.broadcast(e.seq, format(e, snap));
      last_write = Clock::now();
    }
    auto now = Clock::now();
    if (now - last_snapshot >= kSnapshotEvery) {
      if (auto s = read_model_.current(); s && s->version != version) {
        version = s->version;
        last_snapshot = now;
        listener_.broadcast(
            0, "event: snapshot\ndata: " +
                   Json{{"version", s->version}, {"updated_at", timeOrNull(s->updated_ms)}}.dump() +
                   "\n\n");
        last_write = now;
      }
    }
    if (now - last_write >= heartbeat_) {
      listener_.broadcast(0, ": ping\n\n");
      last_write = now;
    }
  }
}

} // namespace hgj::api
