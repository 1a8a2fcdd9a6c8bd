// Fuzzes the MQTT client session (drivers/mqtt/mqtt_session.h) as the broker and the clock
// could drive it. The input is a script:
//   byte 0: options (max_publish_bytes, number of filters, keepalive)
//   then operations, each an op byte and its argument:
//     0 n <n bytes>  the broker sends n bytes
//     1 t            t * 100 ms pass, then tick()
//     2              the sink takes the offered message (or the next one)
//     3 n            n bytes of the output are sent
//     4              the connection drops; a new one is opened
//     5 <len> topic  the gateway publishes a command
// Checked on every step (abort() on a broken property, so the fuzzer reports it):
// - memory: the receive buffer stays within its bound whatever lengths the broker declares;
// - messages: topics are valid MQTT topic names; a delivered message's bytes do not change while
//   it is held (buffers still referenced are never reused), and stay readable (ASan);
// - a closed session offers nothing and runs no timer;
// - output holds only client packets, well formed;
// - splitting: the same bytes fed at once, or as the script cuts them, give the same messages,
//   the same output and the same end state (when no time passes).
// fuzz-iterations: 20000
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "drivers/mqtt/mqtt_session.h"

namespace mqtt = hgj::drivers::mqtt;
namespace wire = hgj::drivers::mqtt::wire;

namespace {

void require(bool ok) {
  if (!ok) {
    std::abort();
  }
}

struct Held {
  hgj::drivers::MqttMessage message;
  std::string topic;
  std::string payload;
};

mqtt::SessionOptions optionsFrom(uint8_t b) {
  mqtt::SessionOptions o;
  o.client_id = "fuzz";
  static const size_t kMax[] = {64, 1024, 64 * 1024 + 272, 200'000};
  o.max_publish_bytes = kMax[b & 3];
  static const char* kFilters[] = {"compound/#", "application/+/device/+/event/up", "a/b", "+"};
  for (int i = 0; i < 1 + ((b >> 2) & 3); ++i) {
    o.subscriptions.push_back(kFilters[i]);
  }
  o.keepalive_s = (b & 0x10) != 0 ? 0 : 5;
  o.packet_timeout_ms = 3'000;
  return o;
}

size_t bufferBound(const mqtt::SessionOptions& o) {
  // One read's worth beyond the longest packet kept whole (a PUBLISH up to max_publish_bytes, or
  // the head of a larger one), plus the room a read asks for.
  const size_t packet = std::max<size_t>(o.max_publish_bytes, 5 + 2 + 65535 + 2);
  return std::max<size_t>(64 * 1024, packet + 4 * 1024) + 64 * 1024;
}

/// Client packets only, each with its flags and a length that fits its type.
void checkOutput(const std::vector<uint8_t>& out) {
  size_t off = 0;
  while (off < out.size()) {
    wire::FixedHeader h;
    require(wire::readFixedHeader(out.data() + off, out.size() - off, h) ==
            wire::HeaderStatus::kComplete);
    require(out.size() - off >= h.total());
    switch (h.type()) {
    case wire::PacketType::kConnect:
    case wire::PacketType::kSubscribe:
      break;
    case wire::PacketType::kPublish:
      require(h.flags() == 0x02);  // our commands: QoS 1, no DUP, no retain
      break;
    case wire::PacketType::kPuback:
    case wire::PacketType::kPubrec:
    case wire::PacketType::kPubcomp:
      require(h.flags() == 0 && h.remaining == 2);
      require(out[off + 2] != 0 || out[off + 3] != 0);  // never packet id 0
      break;
    case wire::PacketType::kPingreq:
    case wire::PacketType::kDisconnect:
      require(h.flags() == 0 && h.remaining == 0);
      break;
    default:
      std::abort();
    }
    off += h.total();
  }
}

struct Run {
  explicit Run(const mqtt::SessionOptions& o) : options(o), s(o) {}
  mqtt::SessionOptions options;
  mqtt::Session s;
  int64_t now = 1'000'000;
  std::vector<Held> held;
  std::vector<uint8_t> output;

  void drainMessages(bool take_all) {
    hgj::drivers::MqttMessage m;
    while (s.nextMessage(m, now, 1)) {
      require(!m.topic.empty() && wire::validMqttString(m.topic));
      require(m.topic.find_first_of("+#") == std::string_view::npos);
      require(m.payload.size() + m.topic.size() <= options.max_publish_bytes);
      held.push_back({m, std::string(m.topic), std::string(m.payload)});
      if (!take_all) {
        return;
      }
      s.messageTaken(now);
    }
    require(!s.offering() || !take_all);
  }
  void sendAll() {
    output.insert(output.end(), s.output(), s.output() + s.outputSize());
    s.sent(s.outputSize(), now);
  }
  void feed(const uint8_t* p, size_t n) {
    s.feed(p, n, now);
  }
  void check() {
    require(s.bufferCapacity() <= bufferBound(options));
    if (s.closed()) {
      hgj::drivers::MqttMessage m;
      require(!s.nextMessage(m, now, 1));
      require(s.tick(now + 1'000'000'000) == -1);
    }
    // Keep the number of held views bounded (the pipeline queue is bounded too), dropping the
    // oldest after checking that its bytes never changed.
    while (held.size() > 64) {
      const Held& h = held.front();
      require(h.message.topic == h.topic && h.message.payload == h.payload);
      held.erase(held.begin());
    }
  }
  void finish() {
    for (const Held& h : held) {
      require(h.message.topic == h.topic && h.message.payload == h.payload);
    }
    sendAll();
    checkOutput(output);
  }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) {
    return 0;
  }
  const mqtt::SessionOptions options = optionsFrom(data[0]);

  // 1. The script as written.
  Run run(options);
  run.s.open(run.now);
  std::vector<uint8_t> fed;            // every byte the broker sent, in order
  std::vector<size_t> cuts;            // where the script cut them
  bool timeless = true;                // no time passed and no reconnect: the split check holds
  size_t i = 1;
  while (i < size) {
    const uint8_t op = data[i++] % 6;
    switch (op) {
    case 0: {
      if (i >= size) {
        break;
      }
      const size_t want = data[i++];
      const size_t n = std::min<size_t>(want, size - i);
      if (!run.s.closed()) {
        run.feed(data + i, n);
        fed.insert(fed.end(), data + i, data + i + n);
        cuts.push_back(fed.size());
      }
      i += n;
      run.drainMessages(false);
      break;
    }
    case 1: {
      const int64_t t = i < size ? data[i++] : 1;
      run.now += t * 100;
      run.s.tick(run.now);
      timeless = timeless && t == 0;
      break;
    }
    case 2:
      run.s.messageTaken(run.now);
      run.drainMessages(false);
      break;
    case 3: {
      const size_t n = i < size ? data[i++] : 0;
      const size_t k = std::min(n * 16, run.s.outputSize());
      run.output.insert(run.output.end(), run.s.output(), run.s.output() + k);
      run.s.sent(k, run.now);
      break;
    }
    case 4:
      run.sendAll();
      run.s.open(run.now);
      timeless = false;
      break;
    case 5: {
      size_t n = 0;
      if (i < size) {
        const size_t want = data[i++] % 64;
        n = std::min<size_t>(want, size - i);
      }
      std::string topic(reinterpret_cast<const char*>(data + i), n);
      i += n;
      const uint16_t id = run.s.publish(topic.empty() ? "t" : topic, "{\"relay\":false}");
      require(run.s.connected() == (id != 0));
      require(id != 1);
      timeless = false;  // changes the output relative to the split-free run
      break;
    }
    default:
      break;
    }
    run.check();
  }
  run.finish();

  // 2. The same bytes at once, every message taken at once: the same result as the script cut
  // them, when the script let no time pass and took every message (ops 2 only at the end).
  if (timeless) {
    Run whole(options);
    whole.s.open(whole.now);
    whole.feed(fed.data(), fed.size());
    whole.drainMessages(true);
    Run split(options);
    split.s.open(split.now);
    size_t at = 0;
    for (size_t cut : cuts) {
      split.feed(fed.data() + at, cut - at);
      split.drainMessages(true);
      at = cut;
      if (split.s.closed()) {
        break;
      }
    }
    whole.finish();
    split.finish();
    require(whole.s.closed() == split.s.closed());
    require(whole.s.violation() == split.s.violation());
    require(whole.held.size() == split.held.size());
    for (size_t k = 0; k < whole.held.size(); ++k) {
      require(whole.held[k].topic == split.held[k].topic);
      require(whole.held[k].payload == split.held[k].payload);
    }
    require(whole.output == split.output);
  }
  return 0;
}
