#include "gateway/api/http_listener.h"

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include "core/log.h"
#include "core/thread_name.h"
#include "gateway/api/request_reader.h"

namespace hgj::api {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

namespace {

// Bytes asked of the socket per read.
constexpr size_t kReadChunk = 16 * 1024;
// File descriptors kept for the rest of the daemon (database, broker, log, devices) beyond the
// connection limit.
constexpr rlim_t kReservedFds = 128;
// How long to pause accepting when the process is out of file descriptors.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);

std::string chunk(const std::string& data) {
  char size[20];
  std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  return size + data + "\r\n";
}

} // namespace

struct HttpListener::Impl : std::enable_shared_from_this<HttpListener::Impl> {
  enum class Phase {
    Idle,      ///< waiting for the first byte of a request
    Head,      ///< part of a request head arrived
    Body,      ///< head complete, body arriving
    Handling,  ///< the handler has the request
    Writing,   ///< writing a response
    Streaming, ///< an event stream
    Closed,
  };

  struct Conn : std::enable_shared_from_this<Conn> {
    Conn(Impl& owner, tcp::socket s, std::string peer_ip)
        : impl(owner), sock(std::move(s)), timer(sock.get_executor()), peer(std::move(peer_ip)) {}
    Impl& impl;
    tcp::socket sock;
    asio::steady_timer timer;
    std::string peer;
    Phase phase = Phase::Idle;
    Clock::time_point waiting_since = Clock::now();
    boost::beast::flat_buffer buffer;
    std::unique_ptr<RequestReader> reader;
    uint64_t timer_generation = 0;
    bool keep_alive = true;
    bool head_request = false;
    bool reading = false;
    // Event streams: what waits to be written, and the last event sequence it holds.
    std::deque<std::string> out;
    size_t out_bytes = 0;
    bool writing = false;
    uint64_t stream_after = 0;
    std::list<std::shared_ptr<Conn>>::iterator self_it;
    char scratch[256];
  };

  Impl(const HttpConfig& c, core::MetricsRegistry& m, RequestHandler h,
       std::function<void(int)> seen)
      : config(c), metrics(m), handler(std::move(h)), status_seen(std::move(seen)),
        acceptor(io), accept_pause(io), max_connections(c.max_connections) {
    connections_gauge = &m.gauge("hgj_http_connections", "Open HTTP connections.");
    evicted = &m.counter("hgj_http_connections_evicted_total",
                         "Idle or unfinished connections closed to make room for a new one.");
    refused = &m.counter("hgj_http_connections_refused_total",
                         "Connections closed at once: the limits were reached and no connection "
                         "could make room.");
    for (const char* phase : {"idle", "header", "body", "write"}) {
      timeouts[phase] = &m.counter("hgj_http_timeouts_total",
                                   "Connections closed because a phase took too long.",
                                   {{"phase", phase}});
    }
  }

  HttpConfig config;
  core::MetricsRegistry& metrics;
  RequestHandler handler;
  std::function<void(int)> status_seen;
  asio::io_context io;
  tcp::acceptor acceptor;
  asio::steady_timer accept_pause;
  std::thread thread;
  std::atomic<std::thread::id> net_thread{};
  int bound_port = 0;
  int max_connections;
  std::atomic<bool> stopped{false};
  std::atomic<int> open_connections{0};
  std::atomic<int> open_streams{0};
  // Network thread only:
  std::list<std::shared_ptr<Conn>> conns;
  std::map<std::string, int> per_client;
  core::Gauge* connections_gauge = nullptr;
  core::Counter* evicted = nullptr;
  core::Counter* refused = nullptr;
  std::map<std::string, core::Counter*> timeouts;
  core::RateLimitedLog log;

  // ---- accepting and the connection limits

  void accept() {
    acceptor.async_accept([self = shared_from_this()](error_code ec, tcp::socket s) {
      self->onAccept(ec, std::move(s));
    });
  }

  void onAccept(error_code ec, tcp::socket s) {
    if (stopped || !acceptor.is_open()) {
      return;
    }
    if (ec) {
      if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
          ec == asio::error::no_memory) {
        // Out of descriptors: accepting again at once would spin; the limits below normally
        // keep this from happening.
        log.warn("http: cannot accept connections: {}", ec.message());
        accept_pause.expires_after(kAcceptPause);
        accept_pause.async_wait([self = shared_from_this()](error_code e) {
          if (!e) {
            self->accept();
          }
        });
        return;
      }
      accept();
      return;
    }
    error_code addr_ec;
    auto ep = s.remote_endpoint(addr_ec);
    std::string peer = addr_ec ? "?" : ep.address().to_string();
    if (!makeRoom(peer)) {
      refused->inc();
      log.warn("http: refused a connection from {}: {} connections open, {} from this client",
               peer, conns.size(), per_client[peer]);
      error_code ignored;
      s.close(ignored);
      accept();
      return;
    }
    s.set_option(tcp::no_delay(true), addr_ec);
    auto c = std::make_shared<Conn>(*this, std::move(s), peer);
    c->buffer.max_size(config.max_header_bytes + kReadChunk);
    conns.push_front(c);
    c->self_it = conns.begin();
    ++per_client[peer];
    open_connections = static_cast<int>(conns.size());
    connections_gauge->set(static_cast<double>(conns.size()));
    startRequest(*c);
    accept();
  }

  /// Whether a connection from `peer` may be added, after closing the longest-waiting connection
  /// without a request in progress if a limit is reached.
  bool makeRoom(const std::string& peer) {
    bool client_full = per_client[peer] >= config.max_connections_per_client;
    bool all_full = static_cast<int>(conns.size()) >= max_connections;
    if (!client_full && !all_full) {
      return true;
    }
    Conn* victim = nullptr;
    for (auto& c : conns) {
      if ((c->phase != Phase::Idle && c->phase != Phase::Head) ||
          (client_full && c->peer != peer)) {
        continue;
      }
      if (victim == nullptr || c->waiting_since < victim->waiting_since) {
        victim = c.get();
      }
    }
    if (victim == nullptr) {
      return false;
    }
    evicted->inc();
    close(*victim);
    return true;
  }

  void close(Conn& c) {
    if (c.phase == Phase::Closed) {
      return;
    }
    if (c.phase == Phase::Streaming) {
      --open_streams;
    }
    c.phase = Phase::Closed;
    ++c.timer_generation;
    c.timer.cancel();
    error_code ignored;
    c.sock.shutdown(tcp::socket::shutdown_both, ignored);
    c.sock.close(ignored);
    auto it = per_client.find(c.peer);
    if (it != per_client.end() && --it->second <= 0) {
      per_client.erase(it);
    }
    // Pending handlers hold their own reference; the list lets go of it here.
    conns.erase(c.self_it);
    open_connections = static_cast<int>(conns.size());
    connections_gauge->set(static_cast<double>(conns.size()));
  }

  // ---- deadlines

  void arm(Conn& c, std::chrono::milliseconds d, const char* phase) {
    uint64_t gen = ++c.timer_generation;
    c.timer.expires_after(d);
    c.timer.async_wait([self = c.shared_from_this(), gen, phase](error_code ec) {
      if (ec || gen != self->timer_generation || self->phase == Phase::Closed) {
        return;
      }
      self->impl.timeouts[phase]->inc();
      self->impl.close(*self);
    });
  }

  void disarm(Conn& c) {
    ++c.timer_generation;
    c.timer.cancel();
  }

  // ---- reading a request

  void startRequest(Conn& c) {
    c.phase = Phase::Idle;
    c.waiting_since = Clock::now();
    c.reader = std::make_unique<RequestReader>(config.max_header_bytes, config.max_body_bytes);
    arm(c, config.keep_alive_timeout, "idle");
    if (c.buffer.size() > 0) {
      // Pipelined: the next request is already here.
      c.phase = Phase::Head;
      arm(c, config.header_timeout, "header");
      parse(c);
      return;
    }
    read(c);
  }

  void read(Conn& c) {
    if (c.reading || c.phase == Phase::Closed) {
      return;
    }
    size_t room = c.buffer.max_size() - c.buffer.size();
    if (room == 0) {
      // A head or chunk line longer than the buffer: the parser could never finish it.
      fail(c, 431, "request head too large");
      return;
    }
    c.reading = true;
    c.sock.async_read_some(c.buffer.prepare(std::min(room, kReadChunk)),
                           [self = c.shared_from_this()](error_code ec, size_t n) {
                             self->reading = false;
                             self->impl.onRead(*self, ec, n);
                           });
  }

  void onRead(Conn& c, error_code ec, size_t n) {
    if (c.phase == Phase::Closed) {
      return;
    }
    if (ec) {
      close(c); // EOF or reset; mid-request the client gave up
      return;
    }
    c.buffer.commit(n);
    if (c.phase == Phase::Streaming) {
      // A stream's client has nothing to say; reading only notices when it leaves.
      c.buffer.consume(c.buffer.size());
      read(c);
      return;
    }
    if (c.phase == Phase::Idle) {
      c.phase = Phase::Head;
      arm(c, config.header_timeout, "header");
    }
    parse(c);
  }

  void parse(Conn& c) {
    RequestReader& r = *c.reader;
    bool head_was_done = r.headDone();
    auto data = c.buffer.data();
    auto progress =
        r.feed(std::string_view(static_cast<const char*>(data.data()), data.size()));
    c.buffer.consume(progress.consumed);
    if (progress.error_status != 0) {
      std::string message = progress.error;
      if (progress.error_status == 413) {
        message += " (at most " + std::to_string(config.max_body_bytes) + " bytes)";
      }
      fail(c, progress.error_status, message);
      return;
    }
    if (!head_was_done && r.headDone() && !r.done()) {
      c.phase = Phase::Body;
      arm(c, config.read_timeout, "body");
      if (r.expectsContinue()) {
        // Tiny, on a fresh socket buffer: a plain write cannot block for long.
        error_code ignored;
        asio::write(c.sock, asio::buffer("HTTP/1.1 100 Continue\r\n\r\n", 25), ignored);
      }
    }
    if (r.done()) {
      dispatch(c);
      return;
    }
    read(c);
  }

  /// Answers a request that cannot be read further (limits, framing) and closes the connection.
  void fail(Conn& c, int status, const std::string& message) {
    metrics
        .counter("hgj_http_bad_requests_total", "Requests refused for their framing or size.",
                 {{"reason", std::to_string(status)}})
        .inc();
    log.warn("http: {} from {}: {}", status, c.peer, message);
    Response res;
    res.setError(status, message);
    res.close = true;
    c.keep_alive = false;
    c.head_request = false;
    writeResponse(c, std::move(res));
  }

  void dispatch(Conn& c) {
    disarm(c);
    c.phase = Phase::Handling;
    c.keep_alive = c.reader->keepAlive() && !stopped;
    std::string error;
    auto parsed = c.reader->take(&error);
    if (!parsed) {
      fail(c, 400, error);
      return;
    }
    Request req = std::move(*parsed);
    req.peer = c.peer;
    c.head_request = req.method == "HEAD";
    std::weak_ptr<Conn> weak = c.shared_from_this();
    std::weak_ptr<Impl> owner = shared_from_this();
    handler(std::move(req), [weak, owner](Response res) {
      auto impl = owner.lock();
      if (!impl || impl->stopped) {
        return;
      }
      if (std::this_thread::get_id() == impl->net_thread.load()) {
        // Answered on the network thread (inline handlers): write now, so that an event stream
        // is registered before any later broadcast runs.
        if (auto conn = weak.lock(); conn && conn->phase == Phase::Handling) {
          impl->writeResponse(*conn, std::move(res));
        }
        return;
      }
      asio::post(impl->io, [weak, res = std::move(res)]() mutable {
        if (auto conn = weak.lock(); conn && conn->phase == Phase::Handling) {
          conn->impl.writeResponse(*conn, std::move(res));
        }
      });
    });
  }

  // ---- writing

  void writeResponse(Conn& c, Response res) {
    if (res.stream) {
      if (open_streams >= config.sse_max_clients) {
        res = Response{};
        res.setHeader("Retry-After", "5");
        res.setError(503, "too many event streams open");
      } else {
        startStream(c, std::move(res));
        return;
      }
    }
    status_seen(res.status);
    c.phase = Phase::Writing;
    auto wire = std::make_shared<std::string>(serializeHead(res, c.keep_alive, c.head_request));
    if (!c.head_request) {
      *wire += res.body;
    }
    bool keep = c.keep_alive && !res.close;
    arm(c, config.write_timeout, "write");
    asio::async_write(c.sock, asio::buffer(*wire),
                      [self = c.shared_from_this(), wire, keep](error_code ec, size_t) {
                        Impl& impl = self->impl;
                        if (self->phase == Phase::Closed) {
                          return;
                        }
                        if (ec || !keep || impl.stopped) {
                          impl.close(*self);
                          return;
                        }
                        impl.startRequest(*self);
                      });
  }

  void startStream(Conn& c, Response res) {
    status_seen(res.status);
    ++open_streams;
    c.phase = Phase::Streaming;
    c.stream_after = res.stream_after;
    disarm(c);
    std::string first = serializeHead(res, false, false);
    if (!res.body.empty()) {
      first += chunk(res.body);
    }
    queue(c, std::move(first));
    read(c);
  }

  void queue(Conn& c, std::string data) {
    c.out_bytes += data.size();
    c.out.push_back(std::move(data));
    if (c.out_bytes > kMaxStreamBacklog) {
      log.warn("http: event stream to {} closed: the client reads too slowly", c.peer);
      close(c);
      return;
    }
    flush(c);
  }

  void flush(Conn& c) {
    if (c.writing || c.out.empty() || c.phase == Phase::Closed) {
      return;
    }
    c.writing = true;
    auto data = std::make_shared<std::string>(std::move(c.out.front()));
    c.out.pop_front();
    arm(c, config.write_timeout, "write");
    asio::async_write(c.sock, asio::buffer(*data),
                      [self = c.shared_from_this(), data](error_code ec, size_t) {
                        self->writing = false;
                        self->out_bytes -= data->size();
                        if (self->phase == Phase::Closed) {
                          return;
                        }
                        if (ec) {
                          self->impl.close(*self);
                          return;
                        }
                        self->impl.disarm(*self);
                        self->impl.flush(*self);
                      });
  }

  void broadcastHere(uint64_t seq, const std::string& data) {
    std::string framed = chunk(data);
    // close() erases from the list: walk a copy of the streams.
    std::vector<std::shared_ptr<Conn>> streams;
    for (auto& c : conns) {
      if (c->phase == Phase::Streaming && (seq == 0 || seq > c->stream_after)) {
        streams.push_back(c);
      }
    }
    for (auto& c : streams) {
      if (seq != 0) {
        c->stream_after = seq;
      }
      queue(*c, framed);
    }
  }

  void closeAll() {
    std::vector<std::shared_ptr<Conn>> all(conns.begin(), conns.end());
    for (auto& c : all) {
      if (c->phase == Phase::Streaming && !c->writing) {
        // End the chunked stream properly; best effort, the socket closes right after.
        error_code ignored;
        c->sock.non_blocking(true, ignored);
        c->sock.write_some(asio::buffer("0\r\n\r\n", 5), ignored);
      }
      close(*c);
    }
  }
};

HttpListener::HttpListener(const HttpConfig& config, core::MetricsRegistry& metrics,
                           RequestHandler handler, std::function<void(int)> status_seen)
    : impl_(std::make_shared<Impl>(config, metrics, std::move(handler), std::move(status_seen))) {}

HttpListener::~HttpListener() {
  stop();
}

void HttpListener::start() {
  Impl& m = *impl_;
  // Every connection is a descriptor: make room for the configured number, or serve fewer.
  rlimit lim{};
  rlim_t need = static_cast<rlim_t>(m.config.max_connections) + kReservedFds;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < need) {
    rlimit raised = lim;
    raised.rlim_cur = std::min(need, lim.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      lim = raised;
    }
    if (lim.rlim_cur < need) {
      m.max_connections = static_cast<int>(
          std::max<rlim_t>(8, lim.rlim_cur > kReservedFds ? lim.rlim_cur - kReservedFds : 8));
      spdlog::warn("http: the open-file limit ({}) allows only {} connections (http.max_"
                   "connections is {}); raise LimitNOFILE",
                   lim.rlim_cur, m.max_connections, m.config.max_connections);
    }
  }
  error_code ec;
  auto addr = asio::ip::make_address(m.config.bind == "localhost" ? "127.0.0.1" : m.config.bind,
                                     ec);
  tcp::endpoint ep(addr, static_cast<uint16_t>(m.config.port));
  if (!ec) {
    m.acceptor.open(ep.protocol(), ec);
  }
  if (!ec) {
    // SO_REUSEADDR allows a quick restart; no SO_REUSEPORT, so a second daemon cannot silently
    // share the port.
    m.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  }
  if (!ec) {
    m.acceptor.bind(ep, ec);
  }
  if (!ec) {
    m.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    error_code ignored;
    m.acceptor.close(ignored);
    throw std::runtime_error("http: cannot listen on " + m.config.bind + ":" +
                             std::to_string(m.config.port) + ": " + ec.message() +
                             " (is another process using the port? see http.bind, http.port)");
  }
  m.bound_port = m.acceptor.local_endpoint().port();
  m.accept();
  m.thread = std::thread([impl = impl_] {
    core::nameThisThread("hgj-http");
    impl->net_thread = std::this_thread::get_id();
    try {
      impl->io.run();
    } catch (const std::exception& e) {
      spdlog::error("http: network thread stopped: {}", e.what());
    }
  });
}

void HttpListener::stop() {
  Impl& m = *impl_;
  if (!m.thread.joinable()) {
    return;
  }
  asio::post(m.io, [impl = impl_] {
    impl->stopped = true;
    error_code ignored;
    impl->acceptor.close(ignored);
    impl->accept_pause.cancel();
    impl->closeAll();
    impl->io.stop();
  });
  m.thread.join();
  m.stopped = true;
  // Run what is still queued (each sees the listener stopped and lets go of what it holds), so
  // no handler keeps a connection or the listener alive.
  m.io.restart();
  m.io.poll();
}

int HttpListener::port() const {
  return impl_->bound_port;
}

void HttpListener::broadcast(uint64_t seq, std::string data) {
  if (impl_->stopped) {
    return;
  }
  asio::post(impl_->io, [impl = impl_, seq, data = std::move(data)] {
    impl->broadcastHere(seq, data);
  });
}

int HttpListener::streams() const {
  return impl_->open_streams.load();
}

int HttpListener::connections() const {
  return impl_->open_connections.load();
}

} // namespace hgj::api
