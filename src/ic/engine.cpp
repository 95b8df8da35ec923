// The inline-cache engine: site bookkeeping, the miss handler's transitions, invalidation and
// grace-period reclamation. Code layouts live in x86_64/stubs.cpp; the states and the
// concurrency argument in include/jitkit/ic/send_site.h and stubs.h.
#include "jitkit/ic/engine.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "ic/engine_p.h"
#include "jitkit/base/bits.h"
#include "jitkit/base/format.h"
#include "jitkit/debug/installed_code.h"
#include "jitkit/x64/registers.h"

namespace jitkit::ic {

using detail::Retired;
using detail::Site;
using detail::SlotMeta;
using detail::StubCode;

const char* kind_name(SiteKind kind) {
  switch (kind) {
    case SiteKind::kUnlinked:
      return "unlinked";
    case SiteKind::kMonomorphic:
      return "monomorphic";
    case SiteKind::kPolymorphic:
      return "polymorphic";
    case SiteKind::kMegamorphic:
      return "megamorphic";
  }
  return "?";
}

namespace {

Status check_options(const VmInterface& vm, const EngineOptions& o) {
  auto bad = [](std::string what) {
    return Error(ErrorCode::kInvalidArgument, "ic: engine options: " + std::move(what));
  };
  const CallingConvention& cc = o.convention;
  struct Named {
    std::uint8_t id;
    std::string role;
  };
  std::vector<Named> regs = {{cc.receiver.id, "receiver " + std::string(x64::name(cc.receiver))},
                             {cc.tag.id, "tag " + std::string(x64::name(cc.tag))},
                             {cc.selector.id, "selector " + std::string(x64::name(cc.selector))},
                             {cc.scratch.id, "scratch " + std::string(x64::name(cc.scratch))}};
  for (std::size_t i = 0; i < cc.args.size(); ++i) {
    regs.push_back(
        {cc.args[i].id, "argument " + std::to_string(i) + " " + std::string(x64::name(cc.args[i]))});
  }
  for (std::size_t i = 0; i < regs.size(); ++i) {
    if (regs[i].id == x64::rsp.id || regs[i].id == x64::rbp.id) {
      return bad("register of " + regs[i].role + " is reserved for the stack and frame pointers");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (regs[i].id == regs[j].id) {
        return bad("registers collide: " + regs[j].role + " and " + regs[i].role);
      }
    }
  }
  if (o.max_pic_cases < 1 || o.max_pic_cases > kMaxPicCases) {
    return bad("max_pic_cases is " + std::to_string(o.max_pic_cases) + "; allowed 1.." +
               std::to_string(kMaxPicCases));
  }
  if (o.table_buckets_log2 < 4 || o.table_buckets_log2 > 20) {
    return bad("table_buckets_log2 is " + std::to_string(o.table_buckets_log2) + "; allowed 4..20");
  }
  if (!vm.load_tag) return bad("no tag loader (VmInterface::load_tag)");
  if (!vm.lookup) return bad("no lookup (VmInterface::lookup)");
  if (!vm.not_understood) return bad("no not-understood handler (VmInterface::not_understood)");
  x64::Assembler probe(64);
  vm.load_tag(probe, cc.receiver, cc.tag);
  if (!probe.ok()) {
    return Error(probe.error()->code(),
                 "ic: engine options: the tag loader's code is refused: " + probe.error()->message());
  }
  if (probe.buffer_size() == 0 && probe.size_upper_bound() == 0) {
    return bad("the tag loader emits nothing (it must load the receiver's class tag into " +
               std::string(x64::name(cc.tag)) + ")");
  }
  return ok();
}

std::uint64_t table_key(std::uint32_t tag, std::uint32_t selector) {
  return (static_cast<std::uint64_t>(selector) << 32) | tag;
}

// The same hash as the open-PIC stub (x86_64/stubs.cpp).
std::size_t table_bucket(const Engine::Impl& impl, std::uint32_t tag, std::uint32_t selector) {
  const std::uint32_t h = (tag * detail::kTagHashMultiplier) ^ detail::selector_hash(selector);
  return h & (impl.buckets - 1);
}

void store_slot(detail::TableSlot& slot, std::uint64_t key, std::uint64_t entry) {
  // Entry first, key last (release): generated code loads the key, then the entry.
  std::atomic_ref<std::uint64_t>(slot.entry).store(entry, std::memory_order_relaxed);
  std::atomic_ref<std::uint64_t>(slot.key).store(key, std::memory_order_release);
}

void clear_slot_key(detail::TableSlot& slot) {
  std::atomic_ref<std::uint64_t>(slot.key).store(detail::kEmptyKey, std::memory_order_release);
}

std::uint64_t slot_key(const detail::TableSlot& slot) {
  return std::atomic_ref<const std::uint64_t>(slot.key).load(std::memory_order_relaxed);
}
std::uint64_t slot_entry(const detail::TableSlot& slot) {
  return std::atomic_ref<const std::uint64_t>(slot.entry).load(std::memory_order_relaxed);
}

void free_stub(code::CodeZone& zone, std::unique_ptr<StubCode>& stub) {
  if (!stub) return;
  stub->registration.reset();
  (void)zone.free(stub->code.block());  // a block the zone handed out: cannot be refused
  stub.reset();
}

// --- Transitions (engine lock held) ------------------------------------------------------

void retire_stub(Engine::Impl& impl, std::unique_ptr<StubCode> stub) {
  if (!stub) return;
  Retired r;
  r.gen = impl.gen;
  r.stub = std::move(stub);
  impl.retired.push_back(std::move(r));
}

// Fills the open-PIC table slot of (tag, selector). Returns false when nothing was cached.
bool table_fill(Engine::Impl& impl, std::uint32_t tag, std::uint32_t selector, std::uintptr_t entry) {
  const std::uint64_t key = table_key(tag, selector);
  const std::size_t first = table_bucket(impl, tag, selector) * 2;
  for (std::size_t i = first; i < first + 2; ++i) {
    if (impl.slot_meta[i].state == SlotMeta::State::kLive && slot_key(impl.table[i]) == key) {
      return true;  // already there (another thread's miss linked it first)
    }
  }
  for (std::size_t i = first; i < first + 2; ++i) {
    if (impl.slot_meta[i].state == SlotMeta::State::kEmpty) {
      store_slot(impl.table[i], key, entry);
      impl.slot_meta[i].state = SlotMeta::State::kLive;
      impl.stats.table_fills++;
      return true;
    }
  }
  // Both slots live: evict the second. It cools (a thread may be between its key compare and its
  // entry load) and is filled again after the next grace period. A bucket that already has a
  // cooling slot keeps its live one.
  if (impl.slot_meta[first].state == SlotMeta::State::kLive &&
      impl.slot_meta[first + 1].state == SlotMeta::State::kLive) {
    clear_slot_key(impl.table[first + 1]);
    impl.slot_meta[first + 1] = {SlotMeta::State::kCooling, impl.gen};
    impl.cooling_slots.push_back(static_cast<std::uint32_t>(first + 1));
    impl.stats.table_evictions++;
  }
  return false;
}

Result<StubCode*> open_pic_for(Engine::Impl& impl, std::uint32_t selector) {
  auto it = impl.open_pics.find(selector);
  if (it != impl.open_pics.end()) return it->second.get();
  JITKIT_TRY(auto stub, detail::install_open_pic(impl, selector));
  impl.stats.stubs_created++;
  StubCode* raw = stub.get();
  impl.open_pics.emplace(selector, std::move(stub));
  return raw;
}

Status go_megamorphic(Engine::Impl& impl, Site& site, std::uint32_t tag, const Method& m) {
  JITKIT_TRY(StubCode * open, open_pic_for(impl, site.selector));
  // The cases the site has seen are hot: put them in the table first.
  for (const SiteCase& c : site.cases) table_fill(impl, c.tag, site.selector, c.unchecked_entry);
  table_fill(impl, tag, site.selector, m.unchecked_entry);
  JITKIT_TRY(impl.patcher->retarget(site.call, reinterpret_cast<const void*>(open->code.start())));
  if (site.pic) {
    retire_stub(impl, std::move(site.pic->stub));
    site.pic.reset();
    impl.stats.live_pics--;
  }
  site.kind = SiteKind::kMegamorphic;
  site.cases.clear();
  site.call_target = open->code.start();
  impl.stats.pic_to_mega++;
  return ok();
}

Status transition(Engine::Impl& impl, Site& site, std::uint32_t tag, const Method& m) {
  if (site.detached || site.cooling_gen != 0 || tag > kMaxClassTag) {
    impl.stats.uncached++;
    return ok();
  }
  const SiteCase added{tag, m.checked_entry, m.unchecked_entry};
  auto has_tag = [&](const SiteCase& c) { return c.tag == tag; };
  switch (site.kind) {
    case SiteKind::kUnlinked: {
      // Either order of the two stores is safe (send_site.h): one batch, one serialization.
      patch::PatchBatch batch(*impl.patcher);
      JITKIT_TRY(batch.set_imm32(site.imm, static_cast<std::int32_t>(tag)));
      JITKIT_TRY(batch.retarget(site.call, reinterpret_cast<const void*>(m.checked_entry)));
      JITKIT_TRY(impl.patcher->commit(batch));
      site.kind = SiteKind::kMonomorphic;
      site.cases = {added};
      site.call_target = m.checked_entry;
      impl.stats.unlinked_to_mono++;
      return ok();
    }
    case SiteKind::kMonomorphic: {
      if (std::any_of(site.cases.begin(), site.cases.end(), has_tag)) return ok();
      if (impl.options.max_pic_cases < 2) {
        impl.stats.mono_to_pic++;  // counted as leaving the monomorphic state
        return go_megamorphic(impl, site, tag, m);
      }
      std::vector<SiteCase> cases = site.cases;
      cases.push_back(added);
      JITKIT_TRY(auto pic, detail::install_pic(impl, site.selector, cases));
      const std::uintptr_t start = pic->stub->code.start();
      impl.stats.stubs_created++;
      if (auto r = impl.patcher->retarget(site.call, reinterpret_cast<const void*>(start)); !r) {
        free_stub(*impl.zone, pic->stub);  // never reachable
        return std::move(r).error();
      }
      site.pic = std::move(pic);
      site.kind = SiteKind::kPolymorphic;
      site.cases = std::move(cases);
      site.call_target = start;
      impl.stats.mono_to_pic++;
      impl.stats.live_pics++;
      return ok();
    }
    case SiteKind::kPolymorphic: {
      if (std::any_of(site.cases.begin(), site.cases.end(), has_tag)) return ok();
      if (site.cases.size() >= site.pic->slots.size()) return go_megamorphic(impl, site, tag, m);
      const detail::Pic::Slot& slot = site.pic->slots[site.cases.size()];
      // The unused case holds kEmptyCaseTag (never a receiver's) and jumps to the miss stub:
      // any mixture of old and new fields matches nothing or reaches the miss handler.
      patch::PatchBatch batch(*impl.patcher);
      JITKIT_TRY(batch.retarget(slot.jmp, reinterpret_cast<const void*>(m.unchecked_entry)));
      JITKIT_TRY(batch.set_imm32(slot.cmp, static_cast<std::int32_t>(tag)));
      JITKIT_TRY(impl.patcher->commit(batch));
      site.cases.push_back(added);
      impl.stats.pic_extend++;
      return ok();
    }
    case SiteKind::kMegamorphic:
      if (!table_fill(impl, tag, site.selector, m.unchecked_entry)) impl.stats.uncached++;
      return ok();
  }
  return ok();
}

// Queues the unlinking of site `index` into `batch` (call to the miss stub, immediate back to
// the marked selector) and makes it cool until the next grace period.
Status unlink_site(Engine::Impl& impl, std::uint32_t index, patch::PatchBatch& batch) {
  Site& site = *impl.sites[index];
  JITKIT_TRY(batch.retarget(site.call, reinterpret_cast<const void*>(impl.miss->code.start())));
  JITKIT_TRY(batch.set_imm32(site.imm, static_cast<std::int32_t>(site.selector | kUnlinkedMark)));
  if (site.pic) {
    retire_stub(impl, std::move(site.pic->stub));
    site.pic.reset();
    impl.stats.live_pics--;
  }
  site.kind = SiteKind::kUnlinked;
  site.cases.clear();
  site.call_target = impl.miss->code.start();
  site.cooling_gen = impl.gen;
  impl.cooling_sites.push_back(index);
  impl.stats.sites_unlinked++;
  return ok();
}

template <typename SitePred, typename SlotPred>
Status invalidate(Engine& engine, Engine::Impl& impl, SitePred site_pred, SlotPred slot_pred) {
  {
    std::lock_guard lock(impl.mutex);
    patch::PatchBatch batch(*impl.patcher);
    for (std::size_t i = 0; i < impl.sites.size(); ++i) {
      const Site& s = *impl.sites[i];
      if (s.detached || s.kind == SiteKind::kUnlinked || !site_pred(s)) continue;
      JITKIT_TRY(unlink_site(impl, static_cast<std::uint32_t>(i), batch));
    }
    for (std::size_t i = 0; i < impl.slot_meta.size(); ++i) {
      if (impl.slot_meta[i].state != SlotMeta::State::kLive) continue;
      if (!slot_pred(slot_key(impl.table[i]), slot_entry(impl.table[i]))) continue;
      clear_slot_key(impl.table[i]);
      impl.slot_meta[i] = {SlotMeta::State::kCooling, impl.gen};
      impl.cooling_slots.push_back(static_cast<std::uint32_t>(i));
      impl.stats.table_slots_cleared++;
    }
    if (!batch.empty()) JITKIT_TRY(impl.patcher->commit(batch));
  }
  return engine.reclaim();
}

}  // namespace

// --- Impl helpers ---------------------------------------------------------------------------

std::string Engine::Impl::selector_name(std::uint32_t selector) const {
  if (vm.selector_name) return vm.selector_name(selector);
  return "#" + std::to_string(selector);
}

std::string Engine::Impl::stub_name(std::string_view kind, std::uint32_t selector) const {
  return std::string(kind) + ":" + selector_name(selector);
}

Result<std::unique_ptr<StubCode>> Engine::Impl::finish_stub(install::InstalledCode code,
                                                            debug::FrameInfo frame) {
  auto stub = std::make_unique<StubCode>();
  stub->code = std::move(code);
  if (options.register_stubs) {
    auto reg = debug::register_installed(stub->code, std::move(frame));
    if (!reg) {
      (void)zone->free(stub->code.block());
      return std::move(reg).error().context("ic: naming stub " + stub->code.name());
    }
    stub->registration = std::move(reg).value();
  }
  return stub;
}

// --- The stubs' C++ halves --------------------------------------------------------------------

namespace detail {

std::uintptr_t handle_miss(Engine::Impl* impl, std::uintptr_t return_address, std::uint64_t* saved) {
  const auto tag = static_cast<std::uint32_t>(saved[kSavedTag]);
  std::lock_guard lock(impl->mutex);
  impl->stats.misses++;
  Site* site = nullptr;
  if (const std::uint32_t index = impl->by_return_address.find(return_address);
      index != detail::ReturnAddressIndex::kNone) {
    site = impl->sites[index].get();
  }
  std::uint32_t selector = 0;
  if (site != nullptr) {
    selector = site->selector;
  } else if ((saved[kSavedSelector] & kUnlinkedMark) != 0) {
    // A site that was never attached is never patched: its register still holds the marked
    // selector, so the send can be completed (uncached).
    selector = static_cast<std::uint32_t>(saved[kSavedSelector]) & ~kUnlinkedMark;
  } else {
    std::fprintf(stderr, "jitkit ic: miss from %s, which is no send site of engine '%s'\n",
                 hex(return_address).c_str(), impl->options.name.c_str());
    std::abort();
  }
  std::optional<Method> m = impl->vm.lookup(tag, selector);
  if (!m) {
    impl->stats.not_understood++;
    saved[kSavedSelector] = selector;
    return impl->not_understood->code.start();
  }
  if (site == nullptr) {
    impl->stats.uncached++;
  } else if (!transition(*impl, *site, tag, *m)) {
    impl->stats.link_failures++;  // e.g. the zone is full: the send still completes
  }
  return m->unchecked_entry;
}

std::uint64_t handle_not_understood(Engine::Impl* impl, std::uint64_t* saved) {
  NotUnderstood nu;
  nu.selector = static_cast<std::uint32_t>(saved[kSavedSelector]);
  nu.tag = static_cast<std::uint32_t>(saved[kSavedTag]);
  nu.receiver = saved[kSavedReceiver];
  nu.args = std::span<const std::uint64_t>(saved + kSavedArgs, impl->options.convention.args.size());
  return impl->vm.not_understood(nu);
}

}  // namespace detail

// --- Engine -----------------------------------------------------------------------------------

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Engine>> Engine::create(code::CodeZone& zone, VmInterface vm, EngineOptions options) {
  JITKIT_TRY(check_options(vm, options));
  auto impl = std::make_unique<Impl>();
  impl->zone = &zone;
  impl->vm = std::move(vm);
  impl->options = std::move(options);
  if (impl->options.quiescence != nullptr) {
    impl->domain = impl->options.quiescence;
  } else {
    impl->owned_domain = std::make_unique<patch::QuiescenceDomain>();
    impl->domain = impl->owned_domain.get();
  }
  auto patcher = patch::Patcher::create(zone);
  if (!patcher) return std::move(patcher).error().context("ic: engine");
  impl->patcher = std::move(patcher).value();

  std::unique_ptr<Engine> engine(new Engine(std::move(impl)));
  Impl& e = *engine->impl_;
  auto miss = detail::install_miss_stub(e);
  if (!miss) return std::move(miss).error().context("ic: engine: miss stub");
  JITKIT_TRY(e.miss, detail::finish_frame_stub(e, std::move(miss).value()));
  auto nu = detail::install_not_understood_stub(e);
  if (!nu) return std::move(nu).error().context("ic: engine: not-understood stub");
  JITKIT_TRY(e.not_understood, detail::finish_frame_stub(e, std::move(nu).value()));

  e.buckets = std::size_t{1} << e.options.table_buckets_log2;
  const std::size_t slots = e.buckets * 2;
  auto data = zone.allocate_data(slots * sizeof(detail::TableSlot), 64, code::DataAccess::kReadWrite);
  if (!data) return std::move(data).error().context("ic: engine: open-PIC table");
  e.table = reinterpret_cast<detail::TableSlot*>(data->data);
  for (std::size_t i = 0; i < slots; ++i) store_slot(e.table[i], detail::kEmptyKey, e.miss->code.start());
  e.slot_meta.assign(slots, SlotMeta{});
  return engine;
}

Engine::~Engine() {
  if (!impl_) return;
  Impl& e = *impl_;
  for (auto& s : e.sites) {
    if (s->pic) free_stub(*e.zone, s->pic->stub);
  }
  for (auto& [sel, stub] : e.open_pics) free_stub(*e.zone, stub);
  for (auto& r : e.retired) {
    if (r.stub) {
      free_stub(*e.zone, r.stub);
    } else {
      (void)e.zone->free(r.block);
    }
  }
  free_stub(*e.zone, e.miss);
  free_stub(*e.zone, e.not_understood);
}

Result<SiteId> Engine::attach(const install::InstalledCode& code, const SendSite& send) {
  const auto& sites = code.sites();
  if (send.imm.index >= sites.size() || send.call.index >= sites.size() ||
      sites[send.imm.index].kind != x64::PatchSiteKind::kImm32 ||
      sites[send.call.index].kind != x64::PatchSiteKind::kCall) {
    return Error(ErrorCode::kInvalidArgument, "ic: attach: the send site is not one of '" + code.name() +
                                                  "' at " + hex(code.start()) +
                                                  " (emit it with Engine::emit_send into that code)");
  }
  const install::PatchSite& call = code.site(send.call);
  Impl& e = *impl_;
  std::lock_guard lock(e.mutex);
  const auto index = e.free_sites.empty() ? static_cast<std::uint32_t>(e.sites.size()) : e.free_sites.back();
  if (!e.by_return_address.insert(call.end_address(), index)) {
    return Error(ErrorCode::kInvalidState, "ic: attach: the send site returning to " +
                                               hex(call.end_address()) + " is already attached");
  }
  if (index == e.sites.size()) {
    e.sites.push_back(std::make_unique<Site>());
  } else {
    e.free_sites.pop_back();
  }
  // A reused slot keeps the capacity of its case list; everything else starts afresh.
  Site& site = *e.sites[index];
  site.imm = code.site(send.imm);
  site.call = call;
  site.selector = send.selector;
  site.kind = SiteKind::kUnlinked;
  site.cases.clear();
  site.pic.reset();
  site.call_target = e.miss->code.start();
  site.cooling_gen = 0;
  site.detached = false;
  // A method's sites are attached one after another: its group is then the last one used.
  if (e.last_group == nullptr || e.last_group_start != code.start()) {
    e.last_group_start = code.start();
    e.last_group = &e.sites_by_code[code.start()];
  }
  e.last_group->end = std::max<std::uintptr_t>(e.last_group->end, code.start() + code.used_size());
  e.max_group_span = std::max<std::uintptr_t>(e.max_group_span, e.last_group->end - code.start());
  e.last_group->sites.push_back(index);
  e.stats.sites++;
  return SiteId{index};
}

Status Engine::detach_range(std::uintptr_t begin, std::uintptr_t end) {
  Impl& e = *impl_;
  std::lock_guard lock(e.mutex);
  // A block that holds a site in [begin, end) starts before `end` and at most max_group_span
  // bytes before `begin`: only those groups are visited, not every site of the engine.
  auto it = e.sites_by_code.lower_bound(begin > e.max_group_span ? begin - e.max_group_span : 0);
  while (it != e.sites_by_code.end() && it->first < end) {
    std::vector<std::uint32_t>& group = it->second.sites;
    std::erase_if(group, [&](std::uint32_t index) {
      Site& s = *e.sites[index];
      const auto at = reinterpret_cast<std::uintptr_t>(s.call.insn);
      if (s.detached || at < begin || at >= end) return s.detached;
      s.detached = true;
      if (s.pic) {
        retire_stub(e, std::move(s.pic->stub));
        s.pic.reset();
        e.stats.live_pics--;
      }
      s.cases.clear();
      e.by_return_address.erase(s.call.end_address());
      e.free_sites.push_back(index);
      e.stats.sites--;
      return true;
    });
    if (group.empty()) {
      if (e.last_group == &it->second) e.last_group = nullptr;
      it = e.sites_by_code.erase(it);
    } else {
      ++it;
    }
  }
  return ok();
}

Status Engine::link(SiteId id, std::uint32_t tag) {
  std::lock_guard lock(impl_->mutex);
  if (id.index >= impl_->sites.size() || impl_->sites[id.index]->detached) {
    return Error(ErrorCode::kInvalidArgument, "ic: link: no site " + std::to_string(id.index));
  }
  if (tag > kMaxClassTag) {
    return Error(ErrorCode::kInvalidArgument, "ic: link: tag " + hex(tag) + " is above kMaxClassTag");
  }
  Site& site = *impl_->sites[id.index];
  std::optional<Method> m = impl_->vm.lookup(tag, site.selector);
  if (!m) {
    return Error(ErrorCode::kInvalidArgument, "ic: link: class tag " + std::to_string(tag) +
                                                  " does not understand " +
                                                  impl_->selector_name(site.selector));
  }
  return transition(*impl_, site, tag, *m);
}

Status Engine::invalidate_selector(std::uint32_t selector) {
  return invalidate(
      *this, *impl_, [&](const Site& s) { return s.selector == selector; },
      [&](std::uint64_t key, std::uint64_t) { return (key >> 32) == selector; });
}

Status Engine::invalidate_tag(std::uint32_t tag) {
  return invalidate(
      *this, *impl_,
      [&](const Site& s) {
        return std::any_of(s.cases.begin(), s.cases.end(), [&](const SiteCase& c) { return c.tag == tag; });
      },
      [&](std::uint64_t key, std::uint64_t) { return static_cast<std::uint32_t>(key) == tag; });
}

Status Engine::invalidate_method(const Method& m) {
  auto same = [&](std::uintptr_t entry) {
    return entry != 0 && (entry == m.checked_entry || entry == m.unchecked_entry);
  };
  return invalidate(
      *this, *impl_,
      [&](const Site& s) {
        return std::any_of(s.cases.begin(), s.cases.end(), [&](const SiteCase& c) {
          return same(c.checked_entry) || same(c.unchecked_entry);
        });
      },
      [&](std::uint64_t, std::uint64_t entry) { return same(entry); });
}

Status Engine::flush_all() {
  return invalidate(
      *this, *impl_, [](const Site&) { return true; }, [](std::uint64_t, std::uint64_t) { return true; });
}

Status Engine::retire(code::CodeBlock block) {
  if (block.exec == nullptr || !impl_->zone->contains(block.exec)) {
    return Error(ErrorCode::kInvalidArgument,
                 "ic: retire: block at " + hex(block.exec) + " is not in the engine's zone");
  }
  std::lock_guard lock(impl_->mutex);
  Retired r;
  r.gen = impl_->gen;
  r.block = block;
  impl_->retired.push_back(std::move(r));
  return ok();
}

Status Engine::reclaim() {
  Impl& e = *impl_;
  std::lock_guard one_at_a_time(e.reclaim_mutex);
  std::uint64_t target = 0;
  {
    std::lock_guard lock(e.mutex);
    target = e.gen++;
  }
  // Without the engine lock: threads that miss meanwhile must be able to finish their sends
  // and reach a quiescent state.
  if (auto s = e.domain->synchronize(e.options.grace_timeout); !s) {
    return std::move(s).error().context("ic: grace period");
  }
  std::vector<Retired> to_free;
  {
    std::lock_guard lock(e.mutex);
    e.stats.grace_periods++;
    // Sites and slots that cooled in a later generation stay on their lists.
    std::erase_if(e.cooling_sites, [&](std::uint32_t index) {
      Site& s = *e.sites[index];
      if (s.cooling_gen != 0 && s.cooling_gen <= target) s.cooling_gen = 0;
      return s.cooling_gen == 0;
    });
    std::erase_if(e.cooling_slots, [&](std::uint32_t index) {
      SlotMeta& m = e.slot_meta[index];
      if (m.state == SlotMeta::State::kCooling && m.cooling_gen <= target) m = SlotMeta{};
      return m.state != SlotMeta::State::kCooling;
    });
    auto keep =
        std::partition(e.retired.begin(), e.retired.end(), [&](const Retired& r) { return r.gen > target; });
    for (auto it = keep; it != e.retired.end(); ++it) {
      if (it->stub) {
        e.stats.stubs_freed++;
      } else {
        e.stats.code_freed++;
      }
      to_free.push_back(std::move(*it));
    }
    e.retired.erase(keep, e.retired.end());
  }
  Status result = ok();
  for (auto& r : to_free) {
    if (r.stub) {
      free_stub(*e.zone, r.stub);
    } else if (auto s = e.zone->free(r.block); !s && result) {
      result = std::move(s).error().context("ic: freeing retired code");
    }
  }
  return result;
}

Result<SiteInfo> Engine::site(SiteId id) const {
  std::lock_guard lock(impl_->mutex);
  if (id.index >= impl_->sites.size() || impl_->sites[id.index]->detached) {
    return Error(ErrorCode::kInvalidArgument, "ic: no site " + std::to_string(id.index));
  }
  const Site& s = *impl_->sites[id.index];
  SiteInfo info;
  info.kind = s.kind;
  info.selector = s.selector;
  info.cases = s.cases;
  info.call_target = s.call_target;
  info.return_address = s.call.end_address();
  info.cooling = s.cooling_gen != 0;
  return info;
}

EngineStats Engine::stats() const {
  std::lock_guard lock(impl_->mutex);
  EngineStats s = impl_->stats;
  s.live_open_pics = impl_->open_pics.size();
  return s;
}

Result<std::string> Engine::listing(SiteId id) const {
  std::lock_guard lock(impl_->mutex);
  if (id.index >= impl_->sites.size() || impl_->sites[id.index]->detached) {
    return Error(ErrorCode::kInvalidArgument, "ic: no site " + std::to_string(id.index));
  }
  const Site& s = *impl_->sites[id.index];
  const auto begin = reinterpret_cast<std::uintptr_t>(s.imm.pad);  // the padding before the mov
  std::string out = "send site " + std::to_string(id.index) + " (" + impl_->selector_name(s.selector) + ", " +
                    kind_name(s.kind) + ")\n";
  out += debug::listing("send " + impl_->selector_name(s.selector), reinterpret_cast<const void*>(begin),
                        s.call.end_address() - begin);
  if (s.kind == SiteKind::kPolymorphic && s.pic) {
    out += debug::listing(s.pic->stub->code);
  } else if (s.kind == SiteKind::kMegamorphic) {
    if (auto it = impl_->open_pics.find(s.selector); it != impl_->open_pics.end()) {
      out += debug::listing(it->second->code);
    }
  }
  return out;
}

std::uintptr_t Engine::miss_stub() const { return impl_->miss ? impl_->miss->code.start() : 0; }
std::uintptr_t Engine::not_understood_stub() const {
  return impl_->not_understood ? impl_->not_understood->code.start() : 0;
}
const CallingConvention& Engine::convention() const { return impl_->options.convention; }
patch::QuiescenceDomain& Engine::quiescence() const { return *impl_->domain; }
code::CodeZone& Engine::zone() const { return *impl_->zone; }

}  // namespace jitkit::ic
