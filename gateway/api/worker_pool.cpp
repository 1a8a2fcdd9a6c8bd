#include "gateway/api/worker_pool.h"

#include <spdlog/spdlog.h>

#include "core/thread_name.h"

namespace hgj::api {

WorkerPool::WorkerPool(int threads, int max_queued) : max_queued_(static_cast<size_t>(max_queued)) {
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this, i] {
      core::nameThisThread("hgj-http-w" + std::to_string(i));
      run();
    });
  }
}

WorkerPool::~WorkerPool() {
  stop();
}

bool WorkerPool::submit(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || queue_.size() >= max_queued_) {
      return false;
    }
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

void WorkerPool::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) {
      t.join();
    }
  }
}

void WorkerPool::run() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) {
        return;
      }
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      task();
    } catch (const std::exception& e) {
      // Tasks catch their own errors; this is the thread's last line.
      spdlog::error("http: worker task failed: {}", e.what());
    }
  }
}

} // namespace hgj::api
