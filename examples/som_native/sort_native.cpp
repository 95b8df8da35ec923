// examples/som_native/sort_native.cpp — a native method that sorts a SOM Array with the C
// library's qsort, whose comparator calls a SOM block: the "FFI sandwich"
//
//   SOM (NativeSort sort:with:) → this native → qsort → compare() → SOM (block value:with:)
//
// and, when the block sorts too, the same again inside it. SortDemo.som uses it; CMake builds it
// with som_add_native_library (build/som/natives/libsort_native.so) and ctest runs the demo
// under `som --native` (docs/som-embedding.md explains every rule followed here).
//
// Three things make it correct:
//  * Values and the collector. Each callback into SOM may collect, and the collector moves
//    objects. The native's args stay current (they live in the VM's frame stack); every other
//    Value must be in a Handle. So qsort sorts plain indices into a snapshot Array held by a
//    Handle, and elements are read through the Handle at each comparison.
//  * qsort passes no context to its comparator. The sort's state goes through a thread_local
//    pointer, saved and restored around each sort, so that a sort started inside a comparator
//    (a nested sandwich) has its own and the outer one gets its own back.
//  * Unwinding. When the block fails (a SOM error) or leaves with `^`, its send answers
//    ErrorKind::kUnwinding. Nothing may longjmp out of qsort, so the comparator answers 0 from
//    then on, qsort finishes normally, and the native returns at once; the VM then goes on
//    unwinding. The array is written back only after a complete sort, so an interrupted sort
//    leaves it as it was.
#include <cstdint>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include "jitkit/som/native.h"

namespace js = jitkit::som;

namespace {

// One running sort: what its comparator needs.
struct SortContext {
  js::Vm* vm;
  const js::Value* args;  // the native's args: args[2] is the block, current across callbacks
  js::Handle elements;    // a snapshot of the array: sorting indices into it
  bool stopped = false;   // a send failed: every further comparison answers 0
  std::string failure;    // why, when the native must report the failure itself
};

thread_local SortContext* t_sort = nullptr;

// Makes `sort` the current sort for its lifetime and restores the one it interrupted.
class CurrentSort {
 public:
  explicit CurrentSort(SortContext* sort) : saved_(t_sort) { t_sort = sort; }
  ~CurrentSort() { t_sort = saved_; }
  CurrentSort(const CurrentSort&) = delete;
  CurrentSort& operator=(const CurrentSort&) = delete;

 private:
  SortContext* saved_;
};

// block value: element i with: element j — does element i come first? Records a failure and
// answers false when the send fails or the block answers neither true nor false.
bool comes_first(SortContext& sort, std::uint32_t i, std::uint32_t j) {
  js::Vm& vm = *sort.vm;
  // Read both elements now: the previous comparison may have moved them.
  const js::Value a = *vm.array_at(sort.elements.get(), i);
  const js::Value b = *vm.array_at(sort.elements.get(), j);
  auto answer = vm.send(sort.args[2], "value:with:", {a, b});
  if (!answer) {
    sort.stopped = true;
    // kUnwinding: an error or a `^` is passing through; the VM reports it. Any other kind is
    // this native's to report.
    if (answer.error().kind() != js::ErrorKind::kUnwinding) sort.failure = answer.error().message();
    return false;
  }
  auto first = vm.to_bool(*answer);
  if (!first) {
    sort.stopped = true;
    sort.failure = "the sort block must answer true or false, not " + vm.class_name(*answer);
    return false;
  }
  return *first;
}

// qsort's comparator. qsort needs a consistent three-way answer and the block answers only
// "does a come first?", so it asks both ways; equal elements keep their original order, which
// also makes the result independent of how this C library's qsort proceeds.
int compare(const void* x, const void* y) {
  SortContext& sort = *t_sort;
  const std::uint32_t i = *static_cast<const std::uint32_t*>(x);
  const std::uint32_t j = *static_cast<const std::uint32_t*>(y);
  if (sort.stopped) return 0;
  if (comes_first(sort, i, j)) return -1;
  if (sort.stopped) return 0;
  if (comes_first(sort, j, i)) return 1;
  if (sort.stopped) return 0;
  return i < j ? -1 : i > j ? 1 : 0;
}

// NativeSort class>>sort: array with: block — sorts array in place and answers it.
js::Value sort_with(js::Vm& vm, const js::Value* args) noexcept {
  auto length = vm.array_length(args[1]);
  if (!length) return vm.fail("NativeSort sort:with: needs an Array, not " + vm.class_name(args[1]));
  const std::uint32_t n = *length;

  // The snapshot: a new Array with the same elements. Making values never collects, so no
  // Value here goes stale before the snapshot is in its Handle.
  js::Value snapshot = vm.new_array(n);
  for (std::uint32_t k = 0; k < n; k++) (void)vm.array_put(snapshot, k, *vm.array_at(args[1], k));
  SortContext sort{&vm, args, vm.hold(snapshot), false, {}};

  std::vector<std::uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  {
    CurrentSort current(&sort);
    std::qsort(order.data(), order.size(), sizeof(std::uint32_t), compare);
  }
  if (sort.stopped) {
    // After kUnwinding the VM ignores what the native answers; fail() then changes nothing.
    return sort.failure.empty() ? js::Value() : vm.fail(sort.failure);
  }

  // Write the sorted elements back. args[1] is the array wherever the collector put it.
  for (std::uint32_t k = 0; k < n; k++)
    (void)vm.array_put(args[1], k, *vm.array_at(sort.elements.get(), order[k]));
  return args[1];
}  // sort.elements releases its root here, whichever way the native returns

}  // namespace

extern "C" void jitkit_som_register_natives(js::NativeRegistry& natives) {
  natives.bind("NativeSort class>>sort:with:", 2, sort_with);
}
