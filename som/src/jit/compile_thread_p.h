// Background compilation: a thread that compiles the methods the interpreter asks for while the
// interpreter goes on interpreting them (Jit::start_compile_thread, docs/som-jit.md "Tiering").
//
// The interpreter's thread submits a CompileRequest when a method gets hot and keeps running
// it in the interpreter; this thread compiles it (compile_method: emit, install, attach the
// send sites, name the code) and leaves the outcome for the interpreter's thread, which takes
// it at its next tier-up check and makes the code reachable (Jit::publish). Everything the
// VM's maps, the entry stubs and Method::jit_entry hold stays the interpreter thread's alone;
// what the two threads share is the toolkit (CodeZone, ic::Engine, the debug registry), which
// is thread-safe, and the methods' immutable parts (CompileRequest).
//
//   CompileThread t([&](const CompileRequest& r) { return compile_method(vm, impl, r); });
//   t.submit(impl.request_for(m, Visibility::kOtherThreads));   // m stays interpreted
//   ...
//   if (t.has_outcomes()) for (CompileOutcome& o : t.take_outcomes()) publish(o);
#pragma once

#include <sched.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "jit/jit_impl_p.h"

namespace som {

class CompileThread {
 public:
  using Compile = std::function<CompileOutcome(const CompileRequest&)>;

  // Starts the thread, which sleeps until the first request. (Started ahead, it is a sleeper
  // when that request wakes it, and the scheduler runs it at once on an idle core; a thread
  // created at the request would wait out a new task's first slice on a busy machine.)
  explicit CompileThread(Compile compile);
  // Waits for the compile in progress, drops the requests not started, and joins the thread.
  ~CompileThread();
  CompileThread(const CompileThread&) = delete;
  CompileThread& operator=(const CompileThread&) = delete;

  // Queues `request` (first come, first compiled) and wakes the thread. The caller submits a
  // method at most once until its outcome is taken or withdraw() returns.
  void submit(CompileRequest request);
  // Whether outcomes wait to be taken: one atomic load, for the interpreter's tier-up checks.
  bool has_outcomes() const { return outcomes_ready_.load(std::memory_order_acquire); }
  // The outcomes finished since the last call, in the order they finished.
  std::vector<CompileOutcome> take_outcomes();
  // Takes `m`'s request off the queue if it has not started; if it is being compiled, waits
  // until it is done. Answers `m`'s outcome if there is one (it is then no longer among the
  // outcomes to take). Afterwards this thread no longer reads `m`, and no outcome for it can
  // come later: before a method is deleted, or compiled in the foreground.
  std::optional<CompileOutcome> withdraw(const Method* m);
  // Requests not yet finished (queued or in progress).
  size_t backlog();

 private:
  void run();
  // The next request, or nothing once the thread must stop. After a compile the thread polls
  // for kSpinBeforeSleep before it sleeps: hot methods come in bursts, and waking a sleeping
  // thread costs the VM's thread a system call (about 20 us measured on the CI machine). At
  // its start it sleeps at once.
  std::optional<CompileRequest> next_request(bool after_compile);
  static constexpr std::chrono::microseconds kSpinBeforeSleep{200};
  // Keeps the thread off `cpu`, the CPU of the VM's thread (when the process may use more
  // than one): woken from that CPU, the scheduler tends to queue it there, behind the busy
  // interpreter. On the 2-vCPU CI machine the compile then started milliseconds late (median
  // 2.8 ms in a test program), where a wake on the other CPU took about 45 us. Done at the
  // start and again by submit() if the VM's thread has moved.
  void keep_off(int cpu);

  Compile compile_;
  std::mutex mutex_;
  std::condition_variable work_;  // a request arrived, or the thread must stop
  std::condition_variable done_;  // a compile finished
  std::deque<CompileRequest> queue_;
  std::atomic<size_t> queued_{0};  // queue_.size(), for the spinning thread to poll
  bool asleep_ = false;            // in work_.wait: a request must wake it
  const Method* in_progress_ = nullptr;
  std::vector<CompileOutcome> outcomes_;
  std::atomic<bool> outcomes_ready_{false};
  bool stopping_ = false;
  cpu_set_t allowed_cpus_;  // the creating thread's affinity
  int cpus_allowed_ = 0;
  int avoided_cpu_ = -1;  // the CPU the thread is kept off, -1: none
  std::thread thread_;
};

}  // namespace som
