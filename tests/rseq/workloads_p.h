// The stress workloads of the rseq tests, written once and run on the ahead-of-time sections,
// on the JIT-emitted ones and in the fallback subprocess. Each returns what it observed; the
// tests assert on it.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "jitkit/rseq/percpu.h"
#include "jitkit/rseq/rseq.h"
#include "rseq/stress_harness_p.h"
#include "rseq/test_hooks_p.h"

namespace jitkit::rseq::test_util {

struct CounterRun {
  std::int64_t expected = 0;  // sum of what the threads added
  std::int64_t observed = 0;  // the counter's value afterwards
  std::uint64_t aborts = 0;   // abort_count() delta
  std::uint64_t signals = 0;  // SIGALRM deliveries during the run
};

// Every thread adds (thread % 7) + 1 repeatedly through `add` and yields every 64 adds.
inline CounterRun counter_workload(const std::function<void(std::int64_t)>& add,
                                   const std::function<std::int64_t()>& value, double seconds) {
  CounterRun r;
  std::atomic<std::int64_t> expected{0};
  std::uint64_t aborts0 = abort_count();
  std::uint64_t signals0 = signals_delivered().load();
  run_stress(stress_threads(), seconds, [&](unsigned t, const std::atomic<bool>& stop) {
    const std::int64_t delta = static_cast<std::int64_t>(t % 7) + 1;
    std::int64_t mine = 0;
    for (std::uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      add(delta);
      mine += delta;
      if ((i & 63) == 63) sched_yield();
    }
    expected.fetch_add(mine);
  });
  r.expected = expected.load();
  r.observed = value();
  r.aborts = abort_count() - aborts0;
  r.signals = signals_delivered().load() - signals0;
  return r;
}

struct ListRun {
  std::size_t nodes = 0;
  std::size_t found_once = 0;     // nodes found exactly once at the end
  std::size_t missing = 0;        // nodes lost
  std::size_t duplicates = 0;     // nodes found more than once at the end
  std::uint64_t double_pops = 0;  // a node popped while already held by a thread
  std::uint64_t pops = 0;
  std::uint64_t drains = 0;  // successful cross-CPU drains
  std::uint64_t aborts = 0;
};

struct TestNode {
  detail::ListNode link;            // first: the list's link
  std::atomic<std::uint32_t> held;  // 1 while a thread owns the node (popped, not yet pushed)
  std::uint32_t id;
};

// How a workload pushes and pops (the ahead-of-time sections, or JIT-emitted ones).
struct ListOps {
  std::function<void(detail::ListNode*)> push;
  std::function<detail::ListNode*()> pop;
};

// Threads pop a node, check nobody else holds it, and push it back; one in 8 threads instead
// drains a random slot (a cross-CPU operation) and pushes the drained nodes back. At the end
// every slot is drained and every node must be found exactly once.
inline ListRun list_workload(PerCpuList& list, const ListOps& ops, double seconds,
                             std::size_t nodes_per_thread = 32) {
  ListRun r;
  const unsigned threads = stress_threads();
  std::vector<TestNode> nodes(threads * nodes_per_thread);
  r.nodes = nodes.size();
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    nodes[i].held.store(0);
    nodes[i].id = static_cast<std::uint32_t>(i);
    list.push(&nodes[i].link);
  }
  const auto& push = ops.push;
  std::atomic<std::uint64_t> double_pops{0}, pops{0}, drains{0};
  std::uint64_t aborts0 = abort_count();
  run_stress(threads, seconds, [&](unsigned t, const std::atomic<bool>& stop) {
    std::minstd_rand rng(t + 1);
    std::uint64_t my_pops = 0;
    for (std::uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      if (t % 8 == 7 && (i & 255) == 0) {
        auto chain = list.drain(rng() % list.slot_count());
        if (chain) {
          drains.fetch_add(1);
          for (detail::ListNode* n = *chain; n != nullptr;) {
            detail::ListNode* next = n->next;
            push(n);
            n = next;
          }
        }
        continue;
      }
      detail::ListNode* n = ops.pop();
      if (n == nullptr) {
        sched_yield();
        continue;
      }
      ++my_pops;
      auto* node = reinterpret_cast<TestNode*>(n);
      if (node->held.exchange(1) != 0) double_pops.fetch_add(1);
      if ((i & 63) == 63) sched_yield();  // hold it for a moment
      node->held.store(0);
      push(n);
    }
    pops.fetch_add(my_pops);
  });
  r.aborts = abort_count() - aborts0;
  r.double_pops = double_pops.load();
  r.pops = pops.load();
  r.drains = drains.load();
  std::vector<unsigned> seen(nodes.size(), 0);
  for (unsigned s = 0; s < list.slot_count(); ++s) {
    auto chain = list.drain(s);
    if (!chain) continue;
    for (detail::ListNode* n = *chain; n != nullptr; n = n->next) {
      ++seen[reinterpret_cast<TestNode*>(n)->id];
    }
  }
  for (unsigned c : seen) {
    if (c == 0) ++r.missing;
    if (c == 1) ++r.found_once;
    if (c > 1) ++r.duplicates;
  }
  return r;
}

inline ListRun list_workload(PerCpuList& list, bool inject, double seconds,
                             std::size_t nodes_per_thread = 32) {
  ListOps ops;
  ops.push = [&list, inject](detail::ListNode* n) {
    inject ? test_hooks::push_with_injected_delay(list, n) : list.push(n);
  };
  ops.pop = [&list, inject] { return inject ? test_hooks::pop_with_injected_delay(list) : list.pop(); };
  return list_workload(list, ops, seconds, nodes_per_thread);
}

struct PoolRun {
  std::uint64_t allocations = 0;
  std::uint64_t double_handouts = 0;  // an object handed out while another thread held it
  std::uint64_t null_allocations = 0;
  std::uint64_t aborts = 0;
  std::size_t chunks = 0;
};

// Threads allocate up to 16 objects, stamp each (an atomic flag that must be 0 when handed out),
// then free them; one in 8 threads also drains random slots into the depot.
inline PoolRun pool_workload(PerCpuPool& pool, bool inject, double seconds) {
  PoolRun r;
  std::atomic<std::uint64_t> allocations{0}, doubles{0}, nulls{0};
  std::uint64_t aborts0 = abort_count();
  run_stress(stress_threads(), seconds, [&](unsigned t, const std::atomic<bool>& stop) {
    std::minstd_rand rng(t + 100);
    std::vector<void*> held;
    std::uint64_t mine = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      unsigned n = 1 + rng() % 16;
      for (unsigned k = 0; k < n; ++k) {
        void* p = inject ? test_hooks::allocate_with_injected_delay(pool) : pool.allocate();
        if (p == nullptr) {
          nulls.fetch_add(1);
          continue;
        }
        ++mine;
        // Word 1 of the object (word 0 is the free-list link while it is free).
        auto* stamp = reinterpret_cast<std::atomic<std::uint64_t>*>(static_cast<char*>(p) + 8);
        if (stamp->exchange(1) != 0) doubles.fetch_add(1);
        held.push_back(p);
      }
      if ((rng() & 7) == 0) sched_yield();
      for (void* p : held) {
        reinterpret_cast<std::atomic<std::uint64_t>*>(static_cast<char*>(p) + 8)->store(0);
        inject ? test_hooks::free_with_injected_delay(pool, p) : pool.free(p);
      }
      held.clear();
      if (t % 8 == 7 && (rng() & 15) == 0) (void)pool.drain(rng() % stress_threads());
    }
    allocations.fetch_add(mine);
  });
  r.allocations = allocations.load();
  r.double_handouts = doubles.load();
  r.null_allocations = nulls.load();
  r.aborts = abort_count() - aborts0;
  r.chunks = pool.chunks();
  return r;
}

struct LockRun {
  std::uint64_t acquisitions = 0;
  std::uint64_t protected_sum = 0;
  std::uint64_t aborts = 0;
};

// The per-CPU spinlock of the kernel selftests, built on compare_and_store: acquire stores 1 into
// the running CPU's word if it is 0, then increments that slot's data with a plain
// load-and-store (a lost update would show if two threads held the same slot), then releases.
inline LockRun percpu_lock_workload(PerCpuWord& word, bool inject, double seconds) {
  LockRun r;
  std::vector<std::uint64_t> data(word.slot_count() * 8, 0);  // one cache line per slot
  std::atomic<std::uint64_t> acquisitions{0};
  std::uint64_t aborts0 = abort_count();
  run_stress(stress_threads(), seconds, [&](unsigned, const std::atomic<bool>& stop) {
    std::uint64_t mine = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      PerCpuWord::Outcome o = inject ? test_hooks::compare_and_store_with_injected_delay(word, 0, 1)
                                     : word.compare_and_store(0, 1);
      if (!o.stored) {
        sched_yield();
        continue;
      }
      std::uint64_t* cell = &data[o.slot * 8];
      std::uint64_t v = __atomic_load_n(cell, __ATOMIC_RELAXED);
      if ((mine & 31) == 31) sched_yield();  // hold the lock across a reschedule sometimes
      __atomic_store_n(cell, v + 1, __ATOMIC_RELAXED);
      word.store(o.slot, 0);
      ++mine;
    }
    acquisitions.fetch_add(mine);
  });
  r.acquisitions = acquisitions.load();
  for (unsigned s = 0; s < word.slot_count(); ++s) r.protected_sum += data[s * 8];
  r.aborts = abort_count() - aborts0;
  return r;
}

}  // namespace jitkit::rseq::test_util
