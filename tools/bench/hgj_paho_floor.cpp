// hgj_paho_floor: the MQTT client's floor. A bare Paho MQTT C++ async client on a persistent
// session whose callback only counts; run once with --register to create the session, queue a
// backlog, then run again to drain it. Prints msg/s and CPU microseconds per message (getrusage
// of the whole process, Paho's threads included).
#include "tools/bench/bench_util.h"

#include <mqtt/async_client.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

namespace {

using hgj::bench::monoSeconds;

constexpr const char* kUsage =
    "hgj_paho_floor: bare Paho MQTT C++ receive loop that only counts (QoS 1, persistent session)\n"
    "  --port P          broker port on 127.0.0.1 (required)\n"
    "  --client-id ID    persistent session id (default hgj-paho-floor)\n"
    "  --filter F        (default compound/#)\n"
    "  --register        connect, subscribe, disconnect (registers the session)\n"
    "  --count N         stop after N messages (default 0: until idle)\n"
    "  --idle-s S        stop S seconds after the last message (default 3)\n"
    "  --seconds T       stop after T seconds in any case (default 120)\n"
    "  --ready-file F    written once connected and subscribed\n";

class CountingCallback final : public mqtt::callback {
public:
  void message_arrived(mqtt::const_message_ptr /*msg*/) override {
    double t = monoSeconds();
    if (count_.load(std::memory_order_relaxed) == 0) {
      first_.store(t, std::memory_order_relaxed);
    }
    last_.store(t, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_release);
  }
  void connection_lost(const std::string& /*cause*/) override { lost_ = true; }

  long count() const { return count_.load(std::memory_order_acquire); }
  double first() const { return first_.load(std::memory_order_relaxed); }
  double last() const { return last_.load(std::memory_order_relaxed); }
  bool lost() const { return lost_; }

private:
  std::atomic<long> count_{0};
  std::atomic<double> first_{0};
  std::atomic<double> last_{0};
  std::atomic<bool> lost_{false};
};

} // namespace

int main(int argc, char** argv) {
  hgj::bench::Options opt(argc, argv, {"register"},
                          {"host", "port", "client-id", "filter", "count", "idle-s", "seconds",
                           "ready-file"},
                          kUsage);
  const std::string host = opt.str("host", "127.0.0.1");
  const int port = static_cast<int>(opt.integer("port", 0));
  const long expect = static_cast<long>(opt.integer("count", 0));
  const double idle_s = opt.real("idle-s", 3);
  const double max_s = opt.real("seconds", 120);
  if (port <= 0) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  hgj::bench::requireLoopback(host);

  const double cpu0 = hgj::bench::processCpuSeconds();
  const double t0 = monoSeconds();
  mqtt::async_client client("tcp://127.0.0.1:" + std::to_string(port),
                            opt.str("client-id", "hgj-paho-floor"));
  CountingCallback cb;
  client.set_callback(cb);
  auto conn_opts = mqtt::connect_options_builder()
                       .clean_session(false)
                       .keep_alive_interval(std::chrono::seconds(30))
                       .finalize();
  try {
    client.connect(conn_opts)->wait_for(std::chrono::seconds(10));
    client.subscribe(opt.str("filter", "compound/#"), 1)->wait_for(std::chrono::seconds(10));
  } catch (const mqtt::exception& e) {
    std::fprintf(stderr, "hgj_paho_floor: %s\n", e.what());
    return 2;
  }
  hgj::bench::touchFile(opt.str("ready-file", ""), "ready\n");
  if (opt.flag("register")) {
    client.disconnect()->wait_for(std::chrono::seconds(10));
    std::printf("{\"tool\":\"hgj_paho_floor\",\"registered\":true}\n");
    return 0;
  }
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    double t = monoSeconds();
    long n = cb.count();
    if (expect > 0 && n >= expect) {
      break;
    }
    if (t - t0 > max_s || cb.lost()) {
      break;
    }
    if (n > 0 && t - cb.last() > idle_s) {
      break;
    }
  }
  const double cpu = hgj::bench::processCpuSeconds() - cpu0;
  const long n = cb.count();
  const double span = cb.last() - cb.first();
  try {
    client.disconnect()->wait_for(std::chrono::seconds(10));
  } catch (const mqtt::exception&) {
    // The counts are already taken; a failed disconnect does not change them.
  }
  std::printf("{\"tool\":\"hgj_paho_floor\",\"received\":%ld,\"span_s\":%.3f,\"rate\":%.1f,"
              "\"cpu_s\":%.3f,\"cpu_us_per_msg\":%.3f,\"lost_connection\":%s}\n",
              n, span, span > 0 ? static_cast<double>(n - 1) / span : 0.0, cpu,
              n > 0 ? 1e6 * cpu / static_cast<double>(n) : 0.0, cb.lost() ? "true" : "false");
  return n > 0 ? 0 : 1;
}
