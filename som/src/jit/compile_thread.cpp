// The background compile thread (compile_thread_p.h).
#include "jit/compile_thread_p.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <utility>

namespace som {

CompileThread::CompileThread(Compile compile) : compile_(std::move(compile)) {
  CPU_ZERO(&allowed_cpus_);
  if (sched_getaffinity(0, sizeof allowed_cpus_, &allowed_cpus_) == 0) cpus_allowed_ = CPU_COUNT(&allowed_cpus_);
  // Signals sent to the process go to the VM's thread, whose handlers expect to interrupt the
  // VM (the embedding API's refusals); this thread only compiles. Synchronous faults (SIGSEGV,
  // SIGBUS, SIGFPE, SIGILL, SIGTRAP) cannot be blocked and still reach it.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  thread_ = std::thread([this] { run(); });
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  pthread_setname_np(thread_.native_handle(), "som-jit");  // as gdb, perf and top show it
  keep_off(sched_getcpu());
}

void CompileThread::keep_off(int cpu) {
  // A system call that may migrate the thread (tens of microseconds): only when the VM's
  // thread has moved since the last time.
  if (cpus_allowed_ < 2 || cpu < 0 || cpu == avoided_cpu_ || !CPU_ISSET(cpu, &allowed_cpus_)) return;
  cpu_set_t elsewhere = allowed_cpus_;
  CPU_CLR(cpu, &elsewhere);
  if (pthread_setaffinity_np(thread_.native_handle(), sizeof elsewhere, &elsewhere) == 0) avoided_cpu_ = cpu;
}

CompileThread::~CompileThread() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    queue_.clear();
    queued_.store(0, std::memory_order_release);
  }
  work_.notify_one();
  thread_.join();
}

void CompileThread::submit(CompileRequest request) {
  bool asleep;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(request));
    queued_.store(queue_.size(), std::memory_order_release);
    asleep = asleep_;
  }
  keep_off(sched_getcpu());
  if (asleep) work_.notify_one();  // a system call, and on a virtual machine an interrupt
}

std::vector<CompileOutcome> CompileThread::take_outcomes() {
  // Never waits for the compile thread: were it preempted inside one of its short critical
  // sections, the interpreter would wait for the scheduler. The outcomes stay for the next
  // check.
  std::unique_lock lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return {};
  outcomes_ready_.store(false, std::memory_order_relaxed);
  return std::exchange(outcomes_, {});
}

std::optional<CompileOutcome> CompileThread::withdraw(const Method* m) {
  std::unique_lock lock(mutex_);
  std::erase_if(queue_, [m](const CompileRequest& r) { return r.method == m; });
  queued_.store(queue_.size(), std::memory_order_release);
  done_.wait(lock, [&] { return in_progress_ != m; });
  auto it = std::find_if(outcomes_.begin(), outcomes_.end(), [m](const CompileOutcome& o) { return o.method == m; });
  if (it == outcomes_.end()) return std::nullopt;
  std::optional<CompileOutcome> outcome = std::move(*it);
  outcomes_.erase(it);
  outcomes_ready_.store(!outcomes_.empty(), std::memory_order_relaxed);
  return outcome;
}

size_t CompileThread::backlog() {
  std::lock_guard lock(mutex_);
  return queue_.size() + (in_progress_ ? 1 : 0);
}

std::optional<CompileRequest> CompileThread::next_request(bool after_compile) {
  const auto spin_until = after_compile ? std::chrono::steady_clock::now() + kSpinBeforeSleep
                                        : std::chrono::steady_clock::time_point{};
  std::unique_lock lock(mutex_);
  for (;;) {
    if (stopping_) return std::nullopt;
    if (!queue_.empty()) {
      CompileRequest request = std::move(queue_.front());
      queue_.pop_front();
      queued_.store(queue_.size(), std::memory_order_release);
      in_progress_ = request.method;
      return request;
    }
    if (std::chrono::steady_clock::now() < spin_until) {
      lock.unlock();
      while (queued_.load(std::memory_order_acquire) == 0 && std::chrono::steady_clock::now() < spin_until)
        __builtin_ia32_pause();
      lock.lock();
      continue;
    }
    asleep_ = true;
    work_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    asleep_ = false;
  }
}

void CompileThread::run() {
  bool after_compile = false;
  while (std::optional<CompileRequest> request = next_request(after_compile)) {
    after_compile = true;
    CompileOutcome outcome;
    try {
      outcome = compile_(*request);
    } catch (const std::exception& e) {  // out of memory: the method stays interpreted
      outcome = CompileOutcome{};
      outcome.method = request->method;
      outcome.error = e.what();
    }
    {
      std::lock_guard lock(mutex_);
      in_progress_ = nullptr;
      outcomes_.push_back(std::move(outcome));
    }
    outcomes_ready_.store(true, std::memory_order_release);
    done_.notify_all();
  }
}

}  // namespace som
