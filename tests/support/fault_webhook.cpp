#include "tests/support/fault_webhook.h"

#include <stdexcept>

#include <httplib.h>

#include "tests/support/test_support.h"

namespace hgj::test {

WebhookSink::WebhookSink() : port_(freePort()) { listen(); }

WebhookSink::~WebhookSink() { shutdown(); }

std::string WebhookSink::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void WebhookSink::listen() {
  server_ = std::make_unique<httplib::Server>();
  server_->Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
    ++attempts_;
    const Mode mode = mode_.load();
    if (mode == Mode::Error) {
      res.status = 500;
      return;
    }
    if (mode == Mode::Slow) {
      // The slow endpoint itself: a request held as a slow server would hold it.
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_.load()));
    }
    {
      std::lock_guard lock(mu_);
      received_.push_back(req.body);
    }
    res.set_content(R"({"errcode":0,"errmsg":"ok"})", "application/json");
  });
  if (!server_->bind_to_port("127.0.0.1", port_)) {
    throw std::runtime_error("webhook sink: cannot listen on " + std::to_string(port_));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  waitFor([&] { return server_->is_running(); }, std::chrono::seconds(5));
}

void WebhookSink::shutdown() {
  if (server_) {
    server_->stop();
    if (thread_.joinable()) {
      thread_.join();
    }
    server_.reset();
  }
}

void WebhookSink::setMode(Mode mode, std::chrono::milliseconds delay) {
  delay_ms_ = delay.count();
  if (mode == Mode::Down && mode_.load() != Mode::Down) {
    mode_ = mode;
    shutdown();
    return;
  }
  const bool was_down = mode_.load() == Mode::Down;
  mode_ = mode;
  if (was_down) {
    listen();
  }
}

std::vector<std::string> WebhookSink::received() const {
  std::lock_guard lock(mu_);
  return received_;
}

} // namespace hgj::test
