#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace hgj::api {

/// A fixed pool of threads with a bounded queue, for the handlers that may block (snapshots,
/// the alerts database, commands waiting for the pipeline). Thread-safe.
class WorkerPool {
public:
  WorkerPool(int threads, int max_queued);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  /// Queues `task`; false (and `task` dropped) when the queue is full or the pool stopped.
  bool submit(std::function<void()> task);
  /// Runs what is queued, then joins the threads; later submits are refused. Idempotent.
  void stop();

private:
  void run();

  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_; // guarded by mu_
  bool stopping_ = false;                   // guarded by mu_
  std::vector<std::thread> threads_;
};

} // namespace hgj::api
