// hgj_count_sub: the broker's pass-through limit. A subscriber that only counts the PUBLISH
// packets on a filter (no payload parsing), reading big chunks and acknowledging a whole chunk's
// QoS 1 messages with one write. With --session it uses a persistent session, so it can also
// drain a queued backlog next to the Paho floor; --ack-each and --paho-like switch to the
// packet-by-packet pattern of a typical client library, to measure what batching saves.
#include "tools/bench/bench_util.h"
#include "tools/bench/raw_mqtt.h"

#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using hgj::bench::monoSeconds;
namespace mqtt = hgj::bench::mqtt;

constexpr const char* kUsage =
    "hgj_count_sub: count messages on a filter (the broker's pass-through limit)\n"
    "  --port P          broker port on 127.0.0.1 (required)\n"
    "  --filter F        (default compound/#)\n"
    "  --qos Q           subscription QoS 0 or 1 (default 1)\n"
    "  --count N         stop after N messages (default 0: no count bound)\n"
    "  --idle-s S        stop S seconds after the last message (default 3)\n"
    "  --seconds T       stop after T seconds in any case (default 120)\n"
    "  --ready-file F    written once the subscription is acknowledged\n"
    "  --session ID      persistent session (clean session off) with this client id\n"
    "  --register        subscribe, wait for the SUBACK and disconnect (registers the session)\n"
    "  --read-size B     bytes per read() (default 262144)\n"
    "  --ack-each        one write() per PUBACK instead of one per read chunk\n"
    "  --paho-like       read packet by packet (poll, header byte, length, body) and ack each\n"
    "Prints one JSON line: received, rate = (received-1)/(t_last-t_first), cpu_us_per_msg.\n";

} // namespace

int main(int argc, char** argv) {
  hgj::bench::Options opt(argc, argv, {"register", "ack-each", "paho-like"},
                          {"host", "port", "filter", "qos", "count", "idle-s", "seconds",
                           "ready-file", "session", "read-size"},
                          kUsage);
  const std::string host = opt.str("host", "127.0.0.1");
  const int port = static_cast<int>(opt.integer("port", 0));
  const std::string filter = opt.str("filter", "compound/#");
  const int qos = static_cast<int>(opt.integer("qos", 1));
  const long expect = static_cast<long>(opt.integer("count", 0));
  const double idle_s = opt.real("idle-s", 3);
  const double max_s = opt.real("seconds", 120);
  const std::string ready_file = opt.str("ready-file", "");
  const std::string session = opt.str("session", "");
  const bool register_only = opt.flag("register");
  const bool paho_like = opt.flag("paho-like");
  const bool ack_each = opt.flag("ack-each") || paho_like;
  size_t read_size = static_cast<size_t>(opt.integer("read-size", 256 * 1024));
  read_size = read_size < 64 ? 64 : read_size;
  if (port <= 0 || (qos != 0 && qos != 1)) {
    std::fputs(kUsage, stderr);
    return 2;
  }

  const double t_start = monoSeconds();
  const double cpu_start = hgj::bench::processCpuSeconds();
  const bool persistent = !session.empty();
  std::string cid = persistent ? session : "hgj-count-sub-" + std::to_string(getpid());
  mqtt::Connection conn;
  if (!conn.open(host, port, cid, !persistent, 60, 10, 4 << 20)) {
    std::fprintf(stderr, "hgj_count_sub: %s\n", conn.error().c_str());
    return 2;
  }
  std::vector<uint8_t> out;
  mqtt::appendSubscribe(out, 1, filter, qos);
  conn.writeAll(out);
  out.clear();

  long count = 0;
  long bytes = 0;
  long reads = 0;
  long writes = 0;
  bool subscribed = false;
  bool closed = false;
  double t_first = 0;
  double t_last = 0;
  double t_ping = t_start;

  auto onPacket = [&](const mqtt::Packet& pk, double t_read) {
    if (pk.type() == mqtt::PacketType::kSuback) {
      subscribed = true;
      hgj::bench::touchFile(ready_file, "ready\n");
      return;
    }
    if (pk.type() != mqtt::PacketType::kPublish) {
      return;
    }
    ++count;
    if (t_first == 0) {
      t_first = t_read;
    }
    t_last = t_read;
    if (pk.publishQos() == 1) {
      mqtt::appendPuback(out, pk.packetId());
      if (ack_each) {
        conn.writeAll(out);
        ++writes;
        out.clear();
      }
    }
  };

  for (;;) {
    double t = monoSeconds();
    if (expect > 0 && count >= expect) {
      break;
    }
    if (t - t_start > max_s) {
      break;
    }
    if (count > 0 && t - t_last > idle_s) {
      break;
    }
    if (register_only && subscribed) {
      break;
    }
    if (t - t_ping > 30) {
      mqtt::appendPingreq(out);
      conn.writeAll(out);
      out.clear();
      t_ping = t;
    }
    if (paho_like) {
      // Header byte after a poll, then the remaining length byte by byte, then the body: the
      // read pattern of a client that parses straight from the socket.
      long r = conn.readSome(100, 1);
      if (r == 0) {
        continue;
      }
      if (r < 0) {
        closed = true;
        break;
      }
      ++reads;
      size_t len = 0;
      size_t mul = 1;
      for (int k = 0; k < 4; ++k) {
        if (conn.readExact(1, -1) < 0) {
          closed = true;
          break;
        }
        ++reads;
        uint8_t b = conn.pendingData()[conn.pendingSize() - 1];
        len += static_cast<size_t>(b & 0x7F) * mul;
        mul *= 128;
        if ((b & 0x80) == 0) {
          break;
        }
      }
      if (closed || (len > 0 && conn.readExact(len, -1) < 0)) {
        closed = true;
        break;
      }
      reads += len > 0 ? 1 : 0;
    } else {
      long r = conn.readSome(100, read_size);
      if (r == 0) {
        continue;
      }
      if (r < 0) {
        closed = true;
        break;
      }
      ++reads;
    }
    double tr = monoSeconds();
    size_t used = mqtt::scanPackets(conn.pendingData(), conn.pendingSize(),
                                    [&](const mqtt::Packet& pk) { onPacket(pk, tr); });
    bytes += static_cast<long>(used);
    conn.consume(used);
    if (!out.empty()) {
      conn.writeAll(out);
      ++writes;
      out.clear();
    }
  }
  if (!closed) {
    mqtt::appendDisconnect(out);
    conn.writeAll(out);
  }
  conn.close();
  double span = t_last - t_first;
  double cpu = hgj::bench::processCpuSeconds() - cpu_start;
  std::printf("{\"tool\":\"hgj_count_sub\",\"qos\":%d,\"filter\":\"%s\",\"mode\":\"%s\","
              "\"subscribed\":%s,\"received\":%ld,\"bytes\":%ld,\"reads\":%ld,\"writes\":%ld,"
              "\"span_s\":%.3f,\"rate\":%.1f,\"cpu_s\":%.3f,\"cpu_us_per_msg\":%.3f,"
              "\"closed\":%s}\n",
              qos, hgj::bench::jsonEscape(filter).c_str(),
              paho_like ? "paho-like" : (ack_each ? "ack-each" : "batched"),
              subscribed ? "true" : "false", count, bytes, reads, writes, span,
              span > 0 ? static_cast<double>(count - 1) / span : 0.0, cpu,
              count > 0 ? 1e6 * cpu / static_cast<double>(count) : 0.0,
              closed ? "true" : "false");
  return subscribed ? 0 : 2;
}
