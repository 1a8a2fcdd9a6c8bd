// hgj_alert_listener: end-to-end alert latency as the district platform sees it. Subscribes to
// hgj/{site}/alerts and hgj/{site}/summary/parking on the upstream broker; for every "raised"
// alert event, latency = arrival wall time (fractional ms) - the event's source_ts (unix ms of
// the reading that triggered it, whole ms, so latencies carry a +0..1 ms bias). With --hot-file
// (the generator's record of when each hot reading was handed to its socket) it also reports
// the exact latency, arrival - publish, free of that bias; with --peer it listens to the peers'
// alert topic (compound/alerts/ebike: shed, port, ts), so every system is timed the same way.
#include "tools/bench/bench_util.h"

#include <mqtt/async_client.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using hgj::bench::monoSeconds;

constexpr const char* kUsage =
    "hgj_alert_listener: alert latency and summary rate on the upstream broker\n"
    "  --port P          upstream broker port on 127.0.0.1 (required)\n"
    "  --site ID         site id in the topics (default bench)\n"
    "  --expect N        stop (after --grace-s) once N raised alerts arrived (default 0)\n"
    "  --stop-file F     stop --grace-s after this file appears\n"
    "  --grace-s S       linger after the stop condition (default 1)\n"
    "  --seconds T       stop after T seconds in any case (default 120)\n"
    "  --ready-file F    written once both subscriptions are acknowledged\n"
    "  --lat-file F      one line per raised alert: device source_ts latency_ms\n"
    "  --cut-file F      also subscribe to the e-bike ports' relay commands on this broker\n"
    "                    (compound/ebike/+/+/set) and write one line per command: device\n"
    "                    arrival_ms (fractional) relay, for the hazard-to-cut latency\n"
    "  --hot-file F      hgj_loadgen's --hot-file (device ts publish_ms), read at the end:\n"
    "                    adds exact_p50/p99/max_ms (arrival - publish) and ts_bias_ms (mean\n"
    "                    publish - ts, what the whole-ms ts adds to the other figures)\n"
    "  --peer            the peers' topics: compound/alerts/ebike ({shed, port, ts}) and\n"
    "                    compound/summary/parking\n"
    "Prints one JSON line: received, p50/p99/max/mean latency in ms (nearest rank), other\n"
    "events, summaries and summaries per second.\n";

struct AlertSample {
  std::string device;
  long long source_ts = 0;
  double latency_ms = 0;
};

// Finds a field at the top level or inside a nested "alert" object, whichever has it.
const nlohmann::json* findField(const nlohmann::json& j, const char* key) {
  if (auto it = j.find(key); it != j.end()) {
    return &*it;
  }
  if (auto a = j.find("alert"); a != j.end() && a->is_object()) {
    if (auto it = a->find(key); it != a->end()) {
      return &*it;
    }
  }
  return nullptr;
}

class Listener final : public mqtt::callback {
public:
  Listener(const std::string& site, bool peer)
      : peer_(peer),
        alerts_topic_(peer ? "compound/alerts/ebike" : "hgj/" + site + "/alerts"),
        summary_topic_(peer ? "compound/summary/parking" : "hgj/" + site + "/summary/parking") {}

  void message_arrived(mqtt::const_message_ptr msg) override {
    const double arrive = hgj::bench::wallMsFrac();
    const double mono = monoSeconds();
    std::lock_guard lock(mu_);
    if (const std::string& t = msg->get_topic(); t.rfind("compound/ebike/", 0) == 0 &&
                                                 t.size() > 19 &&
                                                 t.compare(t.size() - 4, 4, "/set") == 0) {
      // compound/ebike/{shed}/{port}/set: the gateway's relay command for that port.
      std::string device = t.substr(15, t.size() - 15 - 4);
      bool off = msg->get_payload_str().find("\"relay\":false") != std::string::npos;
      cuts_.push_back({std::move(device), arrive, !off});
      return;
    }
    if (msg->get_topic() == summary_topic_) {
      if (summaries_ == 0) {
        first_summary_ = mono;
      }
      last_summary_ = mono;
      ++summaries_;
      return;
    }
    if (msg->get_topic() != alerts_topic_) {
      return;
    }
    auto j = nlohmann::json::parse(msg->get_payload_str(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      ++bad_;
      return;
    }
    if (peer_) {
      // The peers' alert: {"alert", "shed", "port", "temp_c", "ts"}, one per hot reading.
      auto shed = j.find("shed");
      auto port = j.find("port");
      auto ts = j.find("ts");
      if (shed == j.end() || port == j.end() || ts == j.end() || !shed->is_string() ||
          !port->is_string() || !ts->is_number()) {
        ++bad_;
        return;
      }
      AlertSample s;
      s.device = shed->get<std::string>() + "/" + port->get<std::string>();
      s.source_ts = ts->get<long long>();
      s.latency_ms = arrive - static_cast<double>(s.source_ts);
      samples_.push_back(std::move(s));
      return;
    }
    // Only the raised event measures latency; acked/cleared/escalated events are counted apart.
    std::string kind;
    for (const char* key : {"event", "type", "kind"}) {
      if (const auto* f = findField(j, key); f != nullptr && f->is_string()) {
        kind = f->get<std::string>();
        break;
      }
    }
    if (!kind.empty() && kind != "raised" && kind != "raise" && kind != "alert_raised") {
      ++other_events_;
      return;
    }
    if (kind.empty()) {
      if (const auto* st = findField(j, "state"); st != nullptr && st->is_string() &&
                                                  st->get<std::string>() != "active") {
        ++other_events_;
        return;
      }
    }
    if (const auto* id = findField(j, "msg_id"); id != nullptr && id->is_string()) {
      if (!seen_ids_.insert(id->get<std::string>()).second) {
        ++duplicates_;
        return;
      }
    }
    const auto* ts = findField(j, "source_ts");
    if (ts == nullptr || !ts->is_number()) {
      ++bad_;
      return;
    }
    AlertSample s;
    s.source_ts = ts->get<long long>();
    s.latency_ms = arrive - static_cast<double>(s.source_ts);
    if (const auto* d = findField(j, "device"); d != nullptr && d->is_string()) {
      s.device = d->get<std::string>();
    }
    samples_.push_back(std::move(s));
  }

  long raised() {
    std::lock_guard lock(mu_);
    return static_cast<long>(samples_.size());
  }

  void report(const std::string& lat_file, const std::string& cut_file,
              const std::string& hot_file) {
    std::lock_guard lock(mu_);
    std::string exact = exactFigures(hot_file);
    if (!cut_file.empty()) {
      if (FILE* f = std::fopen(cut_file.c_str(), "w")) {
        for (const auto& c : cuts_) {
          std::fprintf(f, "%s %.3f %d\n", c.device.c_str(), c.arrive_ms, c.relay ? 1 : 0);
        }
        std::fclose(f);
      }
    }
    if (!lat_file.empty()) {
      if (FILE* f = std::fopen(lat_file.c_str(), "w")) {
        for (const auto& s : samples_) {
          std::fprintf(f, "%s %lld %.3f\n", s.device.empty() ? "-" : s.device.c_str(),
                       s.source_ts, s.latency_ms);
        }
        std::fclose(f);
      }
    }
    std::vector<double> lat;
    double sum = 0;
    for (const auto& s : samples_) {
      lat.push_back(s.latency_ms);
      sum += s.latency_ms;
    }
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double p) {
      if (lat.empty()) {
        return -1.0;
      }
      long k = static_cast<long>(p / 100.0 * static_cast<double>(lat.size()) + 0.999999) - 1;
      k = std::clamp(k, 0L, static_cast<long>(lat.size()) - 1);
      return lat[static_cast<size_t>(k)];
    };
    double sum_span = last_summary_ - first_summary_;
    std::printf("{\"tool\":\"hgj_alert_listener\",\"received\":%zu,\"other_events\":%ld,"
                "\"duplicates\":%ld,\"bad\":%ld,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
                "\"max_ms\":%.3f,\"mean_ms\":%.3f,\"summaries\":%ld,\"summary_rate\":%.3f%s}\n",
                lat.size(), other_events_, duplicates_, bad_, pct(50), pct(99),
                lat.empty() ? -1.0 : lat.back(),
                lat.empty() ? -1.0 : sum / static_cast<double>(lat.size()), summaries_,
                (summaries_ > 1 && sum_span > 0) ? static_cast<double>(summaries_ - 1) / sum_span
                                                 : 0.0,
                exact.c_str());
  }

  /// `,"exact_n":..,"exact_p50_ms":..` from the generator's hot file: each alert's arrival
  /// (source_ts + latency) minus the publish time of the reading it names. Empty without a file.
  std::string exactFigures(const std::string& hot_file) const {
    if (hot_file.empty()) {
      return {};
    }
    std::map<std::pair<std::string, long long>, double> published;
    if (FILE* f = std::fopen(hot_file.c_str(), "r")) {
      char dev[64];
      long long ts = 0;
      double pub = 0;
      while (std::fscanf(f, "%63s %lld %lf", dev, &ts, &pub) == 3) {
        published[{dev, ts}] = pub;
      }
      std::fclose(f);
    }
    std::vector<double> lat;
    double bias = 0;
    for (const auto& s : samples_) {
      auto it = published.find({s.device, s.source_ts});
      if (it == published.end()) {
        continue;
      }
      lat.push_back(static_cast<double>(s.source_ts) + s.latency_ms - it->second);
      bias += it->second - static_cast<double>(s.source_ts);
    }
    if (lat.empty()) {
      return ",\"exact_n\":0";
    }
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double p) {
      long k = static_cast<long>(p / 100.0 * static_cast<double>(lat.size()) + 0.999999) - 1;
      return lat[static_cast<size_t>(std::clamp(k, 0L, static_cast<long>(lat.size()) - 1))];
    };
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  ",\"exact_n\":%zu,\"exact_p50_ms\":%.3f,\"exact_p99_ms\":%.3f,"
                  "\"exact_max_ms\":%.3f,\"ts_bias_ms\":%.3f",
                  lat.size(), pct(50), pct(99), lat.back(),
                  bias / static_cast<double>(lat.size()));
    return buf;
  }

  const std::string& alertsTopic() const { return alerts_topic_; }
  const std::string& summaryTopic() const { return summary_topic_; }

private:
  bool peer_ = false;
  std::string alerts_topic_;
  std::string summary_topic_;
  std::mutex mu_;
  std::vector<AlertSample> samples_;
  struct Cut {
    std::string device;
    double arrive_ms = 0;
    bool relay = false;
  };
  std::vector<Cut> cuts_;
  std::set<std::string> seen_ids_;
  long other_events_ = 0;
  long duplicates_ = 0;
  long bad_ = 0;
  long summaries_ = 0;
  double first_summary_ = 0;
  double last_summary_ = 0;
};

} // namespace

int main(int argc, char** argv) {
  hgj::bench::Options opt(argc, argv, {"peer"},
                          {"host", "port", "site", "expect", "stop-file", "grace-s", "seconds",
                           "ready-file", "lat-file", "cut-file", "hot-file"},
                          kUsage);
  const std::string host = opt.str("host", "127.0.0.1");
  const int port = static_cast<int>(opt.integer("port", 0));
  const long expect = static_cast<long>(opt.integer("expect", 0));
  const std::string stop_file = opt.str("stop-file", "");
  const double grace_s = opt.real("grace-s", 1);
  const double max_s = opt.real("seconds", 120);
  if (port <= 0) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  hgj::bench::requireLoopback(host);

  mqtt::async_client client("tcp://127.0.0.1:" + std::to_string(port),
                            "hgj-alert-listener-" + std::to_string(getpid()));
  Listener listener(opt.str("site", "bench"), opt.flag("peer"));
  client.set_callback(listener);
  try {
    auto conn_opts = mqtt::connect_options_builder().clean_session(true).finalize();
    client.connect(conn_opts)->wait_for(std::chrono::seconds(10));
    client.subscribe(listener.alertsTopic(), 1)->wait_for(std::chrono::seconds(10));
    client.subscribe(listener.summaryTopic(), 1)->wait_for(std::chrono::seconds(10));
    if (!opt.str("cut-file", "").empty()) {
      client.subscribe("compound/ebike/+/+/set", 1)->wait_for(std::chrono::seconds(10));
    }
  } catch (const mqtt::exception& e) {
    std::fprintf(stderr, "hgj_alert_listener: %s\n", e.what());
    return 2;
  }
  hgj::bench::touchFile(opt.str("ready-file", ""), "ready\n");

  const double t0 = monoSeconds();
  double t_stop = 0;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    double t = monoSeconds();
    if (t - t0 > max_s) {
      break;
    }
    if (t_stop == 0 && expect > 0 && listener.raised() >= expect) {
      t_stop = t;
    }
    if (t_stop == 0 && !stop_file.empty() && access(stop_file.c_str(), F_OK) == 0) {
      t_stop = t;
    }
    if (t_stop > 0 && t - t_stop >= grace_s) {
      break;
    }
  }
  try {
    client.disconnect()->wait_for(std::chrono::seconds(5));
  } catch (const mqtt::exception&) {
    // Reporting what arrived matters more than a clean goodbye.
  }
  listener.report(opt.str("lat-file", ""), opt.str("cut-file", ""), opt.str("hot-file", ""));
  return 0;
}
