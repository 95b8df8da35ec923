// Heap allocation and the copying collector. See heap_p.h.
#include "heap_p.h"

#include <algorithm>
#include <cstdio>

namespace som {

Heap::Heap() {
  char* c = newChunk(chunks_, kChunkBytes);
  top_ = c;
  end_ = c + kChunkBytes;
}

Heap::~Heap() {
  for (auto& c : chunks_) std::free(c.start);
  for (char* c : freeChunks_) std::free(c);
}

char* Heap::newChunk(std::vector<Chunk>& list, size_t bytes) {
  char* mem = nullptr;
  if (bytes == kChunkBytes && !freeChunks_.empty()) {
    mem = freeChunks_.back();
    freeChunks_.pop_back();
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

char* Heap::allocSlow(size_t bytes) {
  if (bytes > kChunkBytes / 4) {
    // Large object: a dedicated chunk, so the current bump chunk is not wasted.
    char* c = newChunk(chunks_, bytes);
    chunks_.back().top = c + bytes;
    return c;
  }
  char* c = newChunk(chunks_, kChunkBytes);
  top_ = c + bytes;
  end_ = c + kChunkBytes;
  return c;
}

char* Heap::toAlloc(size_t bytes) {
  if (bytes > kChunkBytes / 4) {
    char* c = newChunk(toChunks_, bytes);
    toChunks_.back().top = c + bytes;
    return c;
  }
  Chunk* cur = toChunks_.empty() ? nullptr : &toChunks_[toCurrent_];
  if (!cur || static_cast<size_t>(cur->end - cur->top) < bytes) {
    newChunk(toChunks_, kChunkBytes);
    toCurrent_ = toChunks_.size() - 1;
    cur = &toChunks_[toCurrent_];
  }
  char* p = cur->top;
  cur->top += bytes;
  return p;
}

Value Heap::copy(Object* o) {
  if (o->flags & kForwarded) return *reinterpret_cast<Value*>(o);
  size_t bytes = objectBytes(o->kind, o->length);
  char* p = toAlloc(bytes);
  std::memcpy(p, o, bytes);
  live_ += bytes;
  // The forwarding address overwrites cls+hash (the copy keeps them); kind/length stay
  // readable so the old object can still be sized.
  *reinterpret_cast<Value*>(o) = val(p);
  o->flags |= kForwarded;
  return val(p);
}

void Heap::begin() {
  toChunks_.clear();
  toCurrent_ = 0;
  live_ = 0;
}

void Heap::finish() {
  // Scan the copies until no chunk has unscanned objects. Several passes are needed because
  // scanning a later (large-object) chunk may copy into an earlier, current chunk.
  std::vector<char*> scan;
  bool progress = true;
  while (progress) {
    progress = false;
    for (size_t i = 0; i < toChunks_.size(); i++) {
      if (scan.size() <= i) scan.push_back(toChunks_[i].start);
      while (scan[i] < toChunks_[i].top) {
        progress = true;
        Object* o = reinterpret_cast<Object*>(scan[i]);
        if (hasSlots(o->kind)) {
          Value* s = o->slots();
          for (uint32_t k = 0; k < o->length; k++) forwardSlot(&s[k]);
        }
        scan[i] += objectBytes(o->kind, o->length);
      }
    }
  }
  for (auto& c : chunks_) {
    if (static_cast<size_t>(c.end - c.start) == kChunkBytes && freeChunks_.size() < 64)
      freeChunks_.push_back(c.start);
    else
      std::free(c.start);
  }
  chunks_.swap(toChunks_);
  toChunks_.clear();
  // Continue bump allocation in the current to-space chunk.
  if (chunks_.empty()) newChunk(chunks_, kChunkBytes), toCurrent_ = 0;
  Chunk& cur = chunks_[toCurrent_];
  if (static_cast<size_t>(cur.end - cur.start) == kChunkBytes) {
    top_ = cur.top;
    end_ = cur.end;
  } else {
    char* c = newChunk(chunks_, kChunkBytes);
    top_ = c;
    end_ = c + kChunkBytes;
  }
  totalAllocated_ += allocated_;
  allocated_ = 0;
  budget_ = stress_ ? 0 : std::max(size_t(32) << 20, live_ * 2);
  needGC = false;
  collections++;
}

}  // namespace som
