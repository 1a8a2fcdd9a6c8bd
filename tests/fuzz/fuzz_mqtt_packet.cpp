// Fuzzes the strict MQTT 3.1.1 packet decoder (drivers/mqtt/mqtt_wire.h) on bytes a broker could
// send: every packet of the input goes through readFixedHeader, checkHeader and the decoder of
// its type, with the body arriving in every prefix length for PUBLISH, and the results are held
// to the decoder's contract (abort() on a broken one, so the fuzzer reports it).
// fuzz-iterations: 50000
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "drivers/mqtt/mqtt_wire.h"

namespace wire = hgj::drivers::mqtt::wire;

namespace {

void require(bool ok) {
  if (!ok) {
    std::abort();
  }
}

void checkPacket(const wire::FixedHeader& h, const uint8_t* body, size_t filters) {
  const wire::Violation v = wire::checkHeader(h, filters);
  if (v != wire::Violation::kNone) {
    return;
  }
  switch (h.type()) {
  case wire::PacketType::kPublish: {
    // The head decodes the same from any prefix that holds it.
    wire::PublishHead whole;
    bool incomplete = false;
    const wire::Violation vw = wire::decodePublishHead(h, body, h.remaining, whole, incomplete);
    require(!incomplete);
    if (vw == wire::Violation::kNone) {
      require(whole.size <= h.remaining);
      require(!whole.topic.empty());
      require(whole.topic.data() == reinterpret_cast<const char*>(body + 2));
      require(wire::validMqttString(whole.topic));
      require(whole.topic.find_first_of("+#") == std::string_view::npos);
      require(whole.qos >= 0 && whole.qos <= 2);
      require((whole.qos == 0) == (whole.packet_id == 0));
    }
    for (size_t avail = 0; avail <= h.remaining && avail <= 64; ++avail) {
      wire::PublishHead part;
      const std::vector<uint8_t> prefix(body, body + avail);  // ASan sees reads past `avail`
      const wire::Violation vp =
          wire::decodePublishHead(h, prefix.data(), avail, part, incomplete);
      if (!incomplete) {
        require(vp == vw);
        if (vp == wire::Violation::kNone) {
          require(part.size == whole.size && part.topic.size() == whole.topic.size() &&
                  part.packet_id == whole.packet_id);
        }
      }
    }
    break;
  }
  case wire::PacketType::kConnack: {
    require(h.remaining == 2);
    wire::Connack c;
    if (wire::decodeConnack(body, c) == wire::Violation::kNone) {
      require(c.return_code <= 5 && !(c.session_present && c.return_code != 0));
    }
    break;
  }
  case wire::PacketType::kSuback: {
    require(h.remaining >= 3 && h.remaining <= 2 + filters);
    uint16_t id = 0;
    std::vector<size_t> refused;
    if (wire::decodeSuback(h, body, filters, id, refused) == wire::Violation::kNone) {
      require(id != 0 && h.remaining == 2 + filters && refused.size() <= filters);
    }
    break;
  }
  case wire::PacketType::kPingresp:
    require(h.remaining == 0);
    break;
  default: {
    require(h.remaining == 2);
    uint16_t id = 0;
    require((wire::decodeAckId(body, id) == wire::Violation::kNone) == (id != 0));
    break;
  }
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  // The first byte is the number of filters our SUBSCRIBE had (what a SUBACK must answer).
  const size_t filters = data[0] % 8;
  size_t off = 1;
  while (off < size) {
    wire::FixedHeader h;
    const wire::HeaderStatus st = wire::readFixedHeader(data + off, size - off, h);
    if (st != wire::HeaderStatus::kComplete) {
      require(st == wire::HeaderStatus::kMalformed ? size - off >= 5 : size - off < 5);
      break;
    }
    require(h.size >= 2 && h.size <= 5 && h.remaining <= 268'435'455);
    if (size - off - h.size < h.remaining) {
      // Cut short: only what the header alone decides.
      (void)wire::checkHeader(h, filters);
      break;
    }
    // Copy the body so that ASan sees reads past its end.
    std::vector<uint8_t> body(data + off + h.size, data + off + h.size + h.remaining);
    checkPacket(h, body.data(), filters);
    off += h.total();
  }
  // The lenient scanner of the tools never reads past the input either.
  size_t seen = 0;
  wire::scanPackets(data, size, [&](const wire::Packet& p) {
    seen += p.body_len;
    (void)p.packetId();
    (void)p.publishTopic();
    (void)p.publishPayload();
  });
  require(seen <= size);
  return 0;
}
