// hgj_loadgen: publishes the compound load of docs/benchmarks.md (docs/benchmarks.md) to a loopback
// broker and prints one JSON line. Bounded by --count and --seconds; at QoS 1 at most --window
// messages are unacknowledged at any time.
#include "tools/bench/bench_util.h"
#include "tools/bench/raw_mqtt.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <sys/prctl.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace {

using hgj::bench::monoSeconds;
namespace mqtt = hgj::bench::mqtt;

constexpr const char* kUsage =
    "hgj_loadgen: publish the compound load (1,000 parking sensors, 370 e-bike ports, 65 EV piles)\n"
    "  --port P          broker port on 127.0.0.1 (required)\n"
    "  --count N         messages to publish (default 10000)\n"
    "  --rate R          messages per second, 0 = as fast as possible (default 0)\n"
    "  --qos Q           0 or 1 (default 1)\n"
    "  --seconds T       stop publishing after T seconds whatever the count (default 120)\n"
    "  --hot-every E     1 in E e-bike readings is over 60 C (default 1000)\n"
    "  --window W        at most W unacknowledged QoS 1 messages (default 1000)\n"
    "  --coalesce BYTES  batch messages into writes of up to BYTES when publishing as fast as\n"
    "                    possible (default 0: one write per message, like a device)\n"
    "  --seed S          payload randomness (default 1)\n"
    "  --client-id ID    (default hgj-loadgen-<pid>)\n"
    "  --list-hot        add the hot readings' [device, ts] pairs to the JSON line\n"
    "  --hot-file F      one line per hot reading: device ts publish_ms, where publish_ms is\n"
    "                    the wall time (fractional ms) its bytes were handed to the socket:\n"
    "                    `ts` is whole ms, so a latency taken from it carries +0..1 ms\n"
    "Mix by message index i: i%20 in 0..15 parking, 16..18 e-bike, 19 EV. The k-th e-bike\n"
    "reading goes to port k%370 and is hot when k%E == E-1, so a port is never hot twice in a\n"
    "row (unless 370 divides E) and every hot reading should raise exactly one alert.\n";

class Rng {
public:
  explicit Rng(uint64_t seed) : s_(0x9E3779B97F4A7C15ULL * (seed + 1)) {}
  uint64_t next() {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return s_;
  }

private:
  uint64_t s_;
};

const char* const kEvStates[] = {"charging", "charging", "charging", "idle", "finished"};

struct Counts {
  long parking = 0;
  long ebike = 0;
  long ev = 0;
  long hot = 0;
};

// Builds message i of the compound load into topic/payload.
void buildMessage(long i, long hot_every, int64_t ts, Rng& rng, Counts& c, std::string& topic,
                  std::string& payload,
                  std::vector<std::pair<std::string, int64_t>>* hot_list) {
  char t[96];
  char p[192];
  int slot = static_cast<int>(i % 20);
  if (slot < 16) {
    long j = c.parking++ % 1000;
    std::snprintf(t, sizeof t, "compound/parking/P-%s-%04ld/state", j < 500 ? "B1" : "B2",
                  j % 500 + 1);
    std::snprintf(p, sizeof p, "{\"occupied\":%s,\"ts\":%" PRId64 "}",
                  (rng.next() & 1) ? "true" : "false", ts);
  } else if (slot < 19) {
    long k = c.ebike++;
    long port = k % 370;
    bool hot = (k % hot_every) == hot_every - 1;
    double temp = hot ? 60.5 + static_cast<double>(rng.next() % 150) / 10.0
                      : 25.0 + static_cast<double>(rng.next() % 200) / 10.0;
    double cur = 0.5 + static_cast<double>(rng.next() % 30) / 10.0;
    std::snprintf(t, sizeof t, "compound/ebike/S%02ld/P%02ld/telemetry", port / 10 + 1,
                  port % 10 + 1);
    std::snprintf(p, sizeof p,
                  "{\"current_a\":%.1f,\"power_w\":%d,\"temp_c\":%.1f,\"ts\":%" PRId64 "}", cur,
                  static_cast<int>(cur * 230), temp, ts);
    if (hot) {
      ++c.hot;
      if (hot_list != nullptr) {
        char dev[16];
        std::snprintf(dev, sizeof dev, "S%02ld/P%02ld", port / 10 + 1, port % 10 + 1);
        hot_list->emplace_back(dev, ts);
      }
    }
  } else {
    long q = c.ev++;
    std::snprintf(t, sizeof t, "compound/ev/EV-%02ld/status", q % 65 + 1);
    std::snprintf(p, sizeof p,
                  "{\"state\":\"%s\",\"power_kw\":%.1f,\"energy_kwh\":%.1f,\"ts\":%" PRId64 "}",
                  kEvStates[rng.next() % 5], 3.0 + static_cast<double>(rng.next() % 80) / 10.0,
                  static_cast<double>(rng.next() % 600) / 10.0, ts);
  }
  topic = t;
  payload = p;
}

void sleepUntil(double t) {
  double d = t - monoSeconds();
  if (d <= 0) {
    return;
  }
  timespec ts{static_cast<time_t>(d), static_cast<long>((d - static_cast<double>(
                                                                static_cast<time_t>(d))) *
                                                        1e9)};
  nanosleep(&ts, nullptr);
}

} // namespace

int main(int argc, char** argv) {
  hgj::bench::Options opt(argc, argv, {"list-hot"},
                          {"host", "port", "count", "rate", "qos", "seconds", "hot-every",
                           "window", "coalesce", "seed", "client-id", "hot-file"},
                          kUsage);
  const std::string host = opt.str("host", "127.0.0.1");
  const int port = static_cast<int>(opt.integer("port", 0));
  const long total = static_cast<long>(opt.integer("count", 10000));
  const double rate = opt.real("rate", 0);
  const int qos = static_cast<int>(opt.integer("qos", 1));
  const double max_s = opt.real("seconds", 120);
  long hot_every = static_cast<long>(opt.integer("hot-every", 1000));
  long window = static_cast<long>(opt.integer("window", 1000));
  const size_t coalesce = static_cast<size_t>(opt.integer("coalesce", 0));
  const bool list_hot = opt.flag("list-hot");
  const std::string hot_file = opt.str("hot-file", "");
  if (port <= 0 || (qos != 0 && qos != 1) || total < 0 || max_s <= 0) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  hot_every = hot_every < 1 ? 1 : hot_every;
  window = window < 1 ? 1 : (window > 65000 ? 65000 : window);
  hgj::bench::requireLoopback(host);
  // Fine-grained pacing: the default 50 us timer slack would bunch paced messages.
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

  std::string cid = opt.str("client-id", "hgj-loadgen-" + std::to_string(getpid()));
  mqtt::Connection conn;
  if (!conn.open(host, port, cid, true, 60, 10)) {
    std::fprintf(stderr, "hgj_loadgen: %s\n", conn.error().c_str());
    return 2;
  }

  Rng rng(static_cast<uint64_t>(opt.integer("seed", 1)));
  Counts counts;
  std::vector<std::pair<std::string, int64_t>> hot_list;
  std::vector<double> hot_sent_ms;  // hot_list[k]'s handing to the socket (wall, fractional ms)
  long sent = 0;
  long acked = 0;
  uint16_t next_id = 1;
  bool broken = false;
  std::vector<uint8_t> out;
  out.reserve(coalesce + 4096);
  std::string topic;
  std::string payload;

  auto drainAcks = [&](int timeout_ms) {
    long r = conn.readSome(timeout_ms, 64 * 1024);
    if (r < 0) {
      broken = true;
      return;
    }
    size_t used = mqtt::scanPackets(conn.pendingData(), conn.pendingSize(),
                                    [&](const mqtt::Packet& pk) {
                                      if (pk.type() == mqtt::PacketType::kPuback) {
                                        ++acked;
                                      }
                                    });
    conn.consume(used);
  };
  auto flush = [&]() {
    if (!out.empty()) {
      if (!conn.writeAll(out)) {
        broken = true;
      }
      out.clear();
    }
  };

  const double t0 = monoSeconds();
  double t_ping = t0;
  int64_t first_ts = 0;
  int64_t last_ts = 0;
  for (long i = 0; i < total && !broken; ++i) {
    double now = monoSeconds();
    if (now - t0 > max_s) {
      break;
    }
    if (rate > 0) {
      double due = t0 + static_cast<double>(i) / rate;
      if (due - now > 0.0002) {
        flush();
        sleepUntil(due);
      }
    }
    if (now - t_ping > 20) {
      mqtt::appendPingreq(out);
      t_ping = now;
    }
    if (qos == 1) {
      while (sent - acked >= window && !broken) {
        flush();
        drainAcks(5);
        if (monoSeconds() - t0 > max_s + 60) {
          broken = true;
        }
      }
      if ((i & 63) == 0) {
        drainAcks(0);
      }
    }
    int64_t ts = hgj::bench::wallMsInt();
    if (first_ts == 0) {
      first_ts = ts;
    }
    last_ts = ts;
    const size_t hot_before = hot_list.size();
    buildMessage(i, hot_every, ts, rng, counts, topic, payload,
                 list_hot || !hot_file.empty() ? &hot_list : nullptr);
    mqtt::appendPublish(out, topic, payload, qos, next_id);
    next_id = static_cast<uint16_t>(next_id == 65535 ? 1 : next_id + 1);
    ++sent;
    // Paced messages go out at once so that `ts` is the publish time; unpaced ones may be
    // coalesced on request.
    const bool send_now = rate > 0 || out.size() >= coalesce;
    if (hot_list.size() > hot_before) {
      hot_sent_ms.push_back(hgj::bench::wallMsFrac());
    }
    if (send_now) {
      flush();
    }
  }
  flush();
  const double t_pub_end = monoSeconds();
  if (qos == 1) {
    while (acked < sent && !broken && monoSeconds() - t_pub_end < 60) {
      drainAcks(10);
    }
  } else {
    acked = sent;
  }
  const double t_done = monoSeconds();
  std::vector<uint8_t> bye;
  mqtt::appendDisconnect(bye);
  conn.writeAll(bye);
  conn.close();

  const double pub_s = t_pub_end - t0;
  if (!hot_file.empty()) {
    FILE* f = std::fopen(hot_file.c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "hgj_loadgen: cannot write %s\n", hot_file.c_str());
      return 2;
    }
    for (size_t k = 0; k < hot_list.size(); ++k) {
      std::fprintf(f, "%s %" PRId64 " %.3f\n", hot_list[k].first.c_str(), hot_list[k].second,
                   hot_sent_ms[k]);
    }
    std::fclose(f);
  }
  std::string hot_json;
  if (list_hot) {
    hot_json = ",\"hot_list\":[";
    for (size_t k = 0; k < hot_list.size(); ++k) {
      hot_json += (k ? ",[\"" : "[\"") + hot_list[k].first + "\"," +
                  std::to_string(hot_list[k].second) + "]";
    }
    hot_json += "]";
  }
  std::printf("{\"tool\":\"hgj_loadgen\",\"qos\":%d,\"target_rate\":%.0f,\"sent\":%ld,"
              "\"acked\":%ld,\"parking\":%ld,\"ebike\":%ld,\"ev\":%ld,\"hot\":%ld,"
              "\"expected_alerts\":%ld,\"seconds\":%.3f,\"complete_s\":%.3f,\"rate\":%.1f,"
              "\"cpu_s\":%.3f,\"first_ts\":%" PRId64 ",\"last_ts\":%" PRId64 ",\"broken\":%s%s}\n",
              qos, rate, sent, acked, counts.parking, counts.ebike, counts.ev, counts.hot,
              counts.hot, pub_s, t_done - t0, pub_s > 0 ? static_cast<double>(sent) / pub_s : 0.0,
              hgj::bench::processCpuSeconds(), first_ts, last_ts, broken ? "true" : "false",
              hot_json.c_str());
  return (acked == sent && !broken) ? 0 : 3;
}
