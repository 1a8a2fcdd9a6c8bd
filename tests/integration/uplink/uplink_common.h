#pragma once

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "core/metrics.h"
#include "gateway/uplink/uplink.h"
#include "tests/integration/uplink/uplink_harness.h"

namespace hgj::uplink::testing {

/// An enabled uplink to `url` that reconnects quickly and sends no summaries by itself.
inline UplinkConfig testConfig(const std::string& url) {
  UplinkConfig c;
  c.enabled = true;
  c.url = url;
  c.client_id = "gw-test";
  c.backoff_min = std::chrono::milliseconds(50);
  c.backoff_max = std::chrono::milliseconds(300);
  c.keepalive = std::chrono::seconds(5);
  c.connect_timeout = std::chrono::seconds(5);
  c.replay.max_rate = 0;
  c.backoff_first = std::chrono::milliseconds(0);
  c.summaries.coalesce = false;  // these tests follow every summary; coalescing has its own
  c.summaries.parking = c.summaries.ev = c.summaries.ebike = c.summaries.health =
      std::chrono::milliseconds(0);
  c.summaries.on_change = false;
  // These tests exercise the command path itself: every point, overrides allowed.
  c.commands.enabled = true;
  c.commands.write_points = {"*.*"};
  c.commands.allow_override = true;
  return c;
}

/// What an uplink needs around it: the compound, a read model, a command sink, metrics.
struct World {
  std::shared_ptr<model::Compound> compound = makeCompound();
  pipeline::ReadModel read_model;
  FakeCommandSink sink{compound};
  core::MetricsRegistry metrics;
};

inline int64_t seqOf(const std::string& payload) {
  auto j = nlohmann::json::parse(payload, nullptr, false);
  if (!j.is_object() || !j.contains("msg_id") || !j["msg_id"].is_string()) {
    return -1;
  }
  std::string id = j["msg_id"].get<std::string>();
  return std::stoll(id.substr(id.find(':') + 1));
}

/// The msg_ids seen on `topic`, first occurrences only, in arrival order.
inline std::vector<int64_t> firstSeen(const Recorder& r, const std::string& topic) {
  std::vector<int64_t> out;
  std::set<int64_t> seen;
  for (const auto& m : r.on(topic)) {
    int64_t s = seqOf(m.payload);
    if (seen.insert(s).second) {
      out.push_back(s);
    }
  }
  return out;
}

/// The integer `field` of the messages on `topic` (the test's own numbering of what it
/// enqueued), first occurrences of each msg_id only, in arrival order. msg_ids themselves are
/// `epoch * 2^32 + n` (docs/uplink.md): a test compares its own numbers, and checks the msg_ids
/// only for their order.
inline std::vector<int64_t> firstSeenField(const Recorder& r, const std::string& topic,
                                           const std::string& field) {
  std::vector<int64_t> out;
  std::set<int64_t> seen;
  for (const auto& m : r.on(topic)) {
    if (!seen.insert(seqOf(m.payload)).second) {
      continue;
    }
    auto j = nlohmann::json::parse(m.payload, nullptr, false);
    out.push_back(j.is_object() && j.contains(field) && j[field].is_number_integer()
                      ? j[field].get<int64_t>()
                      : -1);
  }
  return out;
}

/// Whether the first occurrences of the msg_ids on `topic` strictly increase.
inline bool msgIdsIncrease(const Recorder& r, const std::string& topic) {
  auto seqs = firstSeen(r, topic);
  return std::adjacent_find(seqs.begin(), seqs.end(), [](int64_t a, int64_t b) {
           return a >= b;
         }) == seqs.end();
}

/// The payloads on `topic` parsed as JSON.
inline std::vector<nlohmann::json> jsonOn(const Recorder& r, const std::string& topic) {
  std::vector<nlohmann::json> out;
  for (const auto& m : r.on(topic)) {
    out.push_back(nlohmann::json::parse(m.payload, nullptr, false));
  }
  return out;
}

} // namespace hgj::uplink::testing
