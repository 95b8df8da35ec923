// Heap allocation and the copying collector. See heap_p.h.
#include "heap_p.h"

#include <algorithm>
#include <cstdio>

namespace som {

Heap::Heap() {
  char* c = new_chunk(chunks_, kChunkBytes);
  top_ = c;
  end_ = c + kChunkBytes;
}

Heap::~Heap() {
  for (auto& c : chunks_) std::free(c.start);
  for (char* c : free_chunks_) std::free(c);
}

char* Heap::new_chunk(std::vector<Chunk>& list, size_t bytes) {
  char* mem = nullptr;
  if (bytes == kChunkBytes && !free_chunks_.empty()) {
    mem = free_chunks_.back();
    free_chunks_.pop_back();
  } else {
    mem = static_cast<char*>(std::aligned_alloc(16, (bytes + 15) & ~size_t(15)));
    if (!mem) {
      std::fprintf(stderr, "som: out of memory (heap chunk of %zu bytes)\n", bytes);
      std::exit(1);
    }
  }
  list.push_back(Chunk{mem, mem, mem + bytes});
  return mem;
}

char* Heap::alloc_slow(size_t bytes) {
  if (bytes > kChunkBytes / 4) {
    // Large object: a dedicated chunk, so the current bump chunk is not wasted.
    char* c = new_chunk(chunks_, bytes);
    chunks_.back().top = c + bytes;
    return c;
  }
  char* c = new_chunk(chunks_, kChunkBytes);
  top_ = c + bytes;
  end_ = c + kChunkBytes;
  return c;
}

char* Heap::to_alloc(size_t bytes) {
  if (bytes > kChunkBytes / 4) {
    char* c = new_chunk(to_chunks_, bytes);
    to_chunks_.back().top = c + bytes;
    return c;
  }
  Chunk* cur = to_chunks_.empty() ? nullptr : &to_chunks_[to_current_];
  if (!cur || static_cast<size_t>(cur->end - cur->top) < bytes) {
    new_chunk(to_chunks_, kChunkBytes);
    to_current_ = to_chunks_.size() - 1;
    cur = &to_chunks_[to_current_];
  }
  char* p = cur->top;
  cur->top += bytes;
  return p;
}

Value Heap::copy(Object* o) {
  if (o->flags & kForwarded) return *reinterpret_cast<Value*>(o);
  size_t bytes = object_bytes(o->kind, o->length);
  char* p = to_alloc(bytes);
  std::memcpy(p, o, bytes);
  live_ += bytes;
  // The forwarding address overwrites cls+hash (the copy keeps them); kind/length stay
  // readable so the old object can still be sized.
  *reinterpret_cast<Value*>(o) = val(p);
  o->flags |= kForwarded;
  return val(p);
}

void Heap::begin() {
  to_chunks_.clear();
  to_current_ = 0;
  live_ = 0;
}

void Heap::finish() {
  // Scan the copies until no chunk has unscanned objects. Several passes are needed because
  // scanning a later (large-object) chunk may copy into an earlier, current chunk.
  std::vector<char*> scan;
  bool progress = true;
  while (progress) {
    progress = false;
    for (size_t i = 0; i < to_chunks_.size(); i++) {
      if (scan.size() <= i) scan.push_back(to_chunks_[i].start);
      while (scan[i] < to_chunks_[i].top) {
        progress = true;
        Object* o = reinterpret_cast<Object*>(scan[i]);
        if (has_slots(o->kind)) {
          Value* s = o->slots();
          for (uint32_t k = 0; k < o->length; k++) forward_slot(&s[k]);
        }
        scan[i] += object_bytes(o->kind, o->length);
      }
    }
  }
  for (auto& c : chunks_) {
    if (static_cast<size_t>(c.end - c.start) == kChunkBytes && free_chunks_.size() < 64)
      free_chunks_.push_back(c.start);
    else
      std::free(c.start);
  }
  chunks_.swap(to_chunks_);
  to_chunks_.clear();
  // Continue bump allocation in the current to-space chunk.
  if (chunks_.empty()) new_chunk(chunks_, kChunkBytes), to_current_ = 0;
  Chunk& cur = chunks_[to_current_];
  if (static_cast<size_t>(cur.end - cur.start) == kChunkBytes) {
    top_ = cur.top;
    end_ = cur.end;
  } else {
    char* c = new_chunk(chunks_, kChunkBytes);
    top_ = c;
    end_ = c + kChunkBytes;
  }
  total_allocated_ += allocated_;
  allocated_ = 0;
  budget_ = stress_ ? 0 : std::max(size_t(32) << 20, live_ * 2);
  need_gc_ = false;
  collections_++;
}

}  // namespace som
