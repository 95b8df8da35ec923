// The moving heap: bump-pointer allocation in 1 MiB chunks, collected by a Cheney-style
// copying collector. Collection happens only at safepoints chosen by the interpreter (method
// entry and backward jumps), never inside an allocation, so C++ code (primitives, the
// compiler) may hold raw object pointers between allocations. Allocation past the budget just
// raises `need_gc`; the next safepoint collects. Identity hashes are stored in the header and
// copied with the object, so they are stable across moves.
#pragma once

#include "object_p.h"

#include <cstdlib>
#include <vector>

namespace som {

class Heap {
 public:
  static constexpr size_t kChunkBytes = size_t(1) << 20;

  Heap();
  ~Heap();
  Heap(const Heap&) = delete;
  Heap& operator=(const Heap&) = delete;

  Object* alloc(uint8_t kind, uint32_t cls, uint32_t length) {
    size_t bytes = object_bytes(kind, length);
    char* p = top_;
    if (static_cast<size_t>(end_ - p) < bytes)
      p = alloc_slow(bytes);
    else
      top_ = p + bytes;
    allocated_ += bytes;
    if (allocated_ > budget_) need_gc_ = true;
    Object* o = reinterpret_cast<Object*>(p);
    o->cls = cls;
    o->hash = next_hash();
    o->length = length;
    o->kind = kind;
    o->flags = 0;
    o->aux = 0;
    return o;
  }

  // The identity hash: the top bits of a 64-bit LCG, odd so that no hash is 0.
  static constexpr uint64_t kHashMultiplier = 6364136223846793005ULL;
  static constexpr uint64_t kHashIncrement = 1442695040888963407ULL;
  static constexpr int kHashShift = 33;
  uint32_t next_hash() {
    hash_state_ = hash_state_ * kHashMultiplier + kHashIncrement;
    return static_cast<uint32_t>(hash_state_ >> kHashShift) | 1;
  }

  // Byte offsets, from the Heap, of the state alloc() updates, for code generated elsewhere
  // that inlines alloc() for a fixed small size (the JIT boxes Doubles in compiled code,
  // som/src/jit). top, end, allocated, budget and hash_state are 64-bit words, need_gc a byte
  // (0 or 1). Such code must do exactly what alloc() does, in the same order (bump top_ or
  // call the VM when the chunk is full, count allocated_, raise need_gc_ past budget_, take
  // next_hash()), so that compiled code and the interpreter allocate the same objects with the
  // same hashes and collect at the same safepoints. The fields stay private: nothing else
  // should touch them.
  struct InlineAllocOffsets {
    int32_t top, end, allocated, budget, hash_state, need_gc;
  };
  InlineAllocOffsets inline_alloc_offsets() const {
    auto at = [this](const void* field) {
      return static_cast<int32_t>(static_cast<const char*>(field) - reinterpret_cast<const char*>(this));
    };
    return {at(&top_), at(&end_), at(&allocated_), at(&budget_), at(&hash_state_), at(&need_gc_)};
  }

  // Collection protocol: begin(), forward() every root slot, finish() (which scans the copies
  // transitively), after which the old chunks are released.
  void begin();
  void forward_slot(Value* slot) {
    Value v = *slot;
    if ((v & 1) || v == 0) return;
    Object* o = obj(v);
    if (o->flags & kPermanent) return;
    *slot = copy(o);
  }
  void finish();

  // GC stress testing (env SOM_GC_STRESS=1): every allocation requests a collection, so the
  // interpreter collects at every safepoint and stale pointers show up at once.
  void set_stress(bool on) {
    stress_ = on;
    budget_ = on ? 0 : budget_;
  }

  bool need_gc_ = false;
  uint64_t collections_ = 0;
  uint64_t total_allocated() const { return total_allocated_ + allocated_; }
  size_t live_bytes_after_last_gc() const { return live_; }
  size_t footprint_bytes() const {  // bytes of chunk memory currently held
    size_t n = free_chunks_.size() * kChunkBytes;
    for (auto& c : chunks_) n += static_cast<size_t>(c.end - c.start);
    return n;
  }
  double gc_millis_ = 0;

 private:
  struct Chunk {
    char* start;
    char* top;
    char* end;
  };
  char* alloc_slow(size_t bytes);
  char* new_chunk(std::vector<Chunk>& list, size_t bytes);
  Value copy(Object* o);
  char* to_alloc(size_t bytes);

  std::vector<Chunk> chunks_;  // from-space during GC; the heap otherwise
  std::vector<Chunk> to_chunks_;
  std::vector<char*> free_chunks_;
  size_t to_current_ = 0;  // index of the to-space chunk being bump-allocated
  char* top_ = nullptr;
  char* end_ = nullptr;
  size_t allocated_ = 0;  // bytes since the last collection
  size_t budget_ = size_t(32) << 20;
  size_t live_ = 0;
  uint64_t total_allocated_ = 0;
  uint64_t hash_state_ = 0x9E3779B97F4A7C15ULL;
  bool stress_ = false;
};

}  // namespace som
