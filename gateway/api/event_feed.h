#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "gateway/api/http_listener.h"
#include "gateway/api/http_message.h"
#include "gateway/pipeline/read_model.h"

namespace hgj::api {

/// Server-sent events (`GET /api/v1/events`): one thread follows the read model's live events and
/// hands each, formatted once, to every open stream through HttpListener::broadcast; streams
/// hold no thread. Also sends a throttled `snapshot` event when the state version changes and a
/// `: ping` comment after `heartbeat` of silence. `read_model` and `listener` must outlive it.
class EventFeed {
public:
  EventFeed(const pipeline::ReadModel& read_model, HttpListener& listener,
            std::chrono::milliseconds heartbeat);
  ~EventFeed();
  EventFeed(const EventFeed&) = delete;
  EventFeed& operator=(const EventFeed&) = delete;

  /// Starts the thread. Everything the read model holds after this call (events, a new snapshot
  /// version) reaches the streams opened after it.
  void start();
  /// Ends the thread within about one step (400 ms). Idempotent.
  void stop();

  /// The response that opens a stream for `req`: the events after its Last-Event-ID (or
  /// `?after=`), or a `resync` event when those are gone or from an earlier run of the daemon.
  /// Runs on the network thread (it only copies from the read model), so that the stream is
  /// registered before the next broadcast.
  Response open(const Request& req) const;

  /// The text of one live event as sent on a stream (pure; a `spaces` event becomes one `space`
  /// event per id, with that space's state from `snapshot`).
  static std::string format(const pipeline::LiveEvent& e,
                            const std::shared_ptr<const pipeline::Snapshot>& snapshot);

private:
  void run(uint64_t after, uint64_t version);

  const pipeline::ReadModel& read_model_;
  HttpListener& listener_;
  const std::chrono::milliseconds heartbeat_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false; // guarded by mu_
};

} // namespace hgj::api
