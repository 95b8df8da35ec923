// The bytecode interpreter: one loop with computed-goto dispatch, no C++ recursion per SOM
// call (frames live on the VM's frame stack), a two-entry inline cache per send site (receiver
// class tag -> method; a miss moves the newer entry to the older slot and refills the newer
// one, so two receiver classes stay cached and a third evicts the older), and small-integer
// fast paths for arithmetic/comparison sends. See docs/som-bytecode.md.
#include "bytecode_p.h"
#include "jit/jit_p.h"
#include "numbers_p.h"
#include "vm_p.h"

namespace som {

namespace {
inline uint16_t u16at(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline Value ctx_at(Frame* f, int depth) {
  if (depth == 0) return f->context;
  Value c = f->outer_ctx;
  for (int i = 1; i < depth; i++) c = obj(c)->slots()[0];
  return c;
}
bool inherits_from(Class* c, Class* k) {
  for (; c; c = c->superclass)
    if (c == k) return true;
  return false;
}
}  // namespace

Value VM::interpret() {
  Frame* f = fp_;
  const uint8_t* ip = pc_;
  Value* s = sp_;

  static void* const labels[] = {
#define SOM_OP_LABEL(name, mnemonic, layout) &&L_##name,
      SOM_BYTECODES(SOM_OP_LABEL)
#undef SOM_OP_LABEL
  };
#define SOM_DISPATCH() goto* labels[*ip]
#define SOM_SAVE() \
  do {             \
    fp_ = f;       \
    pc_ = ip;      \
    sp_ = s;       \
  } while (0)

  // Registers of the send protocol (set before jumping to do_send / do_invoke).
  Symbol* sel = nullptr;
  uint32_t argc = 0;
  Value* base = nullptr;
  const uint8_t* ret_ip = nullptr;
  Class* lookup_start = nullptr;
  SendSite* site = nullptr;
  Method* m = nullptr;
  Value result = 0;

  SOM_DISPATCH();

L_PushLocal:
  *++s = f->locals()[ip[1]];
  ip += 2;
  SOM_DISPATCH();
L_PushArg:
  *++s = f->args[ip[1]];
  ip += 2;
  SOM_DISPATCH();
// A variable used by a fallback block of a method with a lazy context: in the frame until the
// context exists, in the context afterwards (the closures made by the fallback share it).
L_PushLocalLazy:
  *++s = f->context ? obj(f->context)->slots()[2 + ip[2]] : f->locals()[ip[1]];
  ip += 3;
  SOM_DISPATCH();
L_StoreLocalLazy:
  if (f->context)
    obj(f->context)->slots()[2 + ip[2]] = *s;
  else
    f->locals()[ip[1]] = *s;
  ip += 3;
  SOM_DISPATCH();
L_PushArgLazy:
  *++s = f->context ? obj(f->context)->slots()[2 + ip[2]] : f->args[ip[1]];
  ip += 3;
  SOM_DISPATCH();
L_StoreArgLazy:
  if (f->context)
    obj(f->context)->slots()[2 + ip[2]] = *s;
  else
    f->args[ip[1]] = *s;
  ip += 3;
  SOM_DISPATCH();
L_PushField:
  if (!has_field(f->self, ip[1], f->method->holder)) goto bad_field;
  *++s = fields_of(obj(f->self))[ip[1]];
  ip += 2;
  SOM_DISPATCH();
L_PushCtx:
  *++s = obj(ctx_at(f, ip[1]))->slots()[2 + ip[2]];
  ip += 3;
  SOM_DISPATCH();
L_PushSelf:
  *++s = f->self;
  ip += 1;
  SOM_DISPATCH();
L_PushNil:
  *++s = nil_binding_;  // the global nil: the nil object unless a program rebinds it
  ip += 1;
  SOM_DISPATCH();
L_PushTrue:
  *++s = true_binding_;
  ip += 1;
  SOM_DISPATCH();
L_PushFalse:
  *++s = false_binding_;
  ip += 1;
  SOM_DISPATCH();
L_PushLiteral:
  *++s = f->method->literals[u16at(ip + 1)];
  ip += 3;
  SOM_DISPATCH();
L_PushGlobal : {
  auto* g = static_cast<Symbol*>(obj(f->method->literals[u16at(ip + 1)]));
  if (g->has_global) {
    *++s = g->global;
    ip += 3;
    SOM_DISPATCH();
  }
  SOM_SAVE();
  if (Class* c = load_class(g)) {
    *++s = val(c);
    ip += 3;
    SOM_DISPATCH();
  }
  // Unknown global: send unknownGlobal: to self; the reply is the value (never cached).
  *++s = f->self;
  *++s = val(g);
  base = s - 1;
  argc = 1;
  sel = sym_unknown_global_;
  ret_ip = ip + 3;
  lookup_start = nullptr;
  site = nullptr;
  goto do_send;
}
L_PushBlock:
  *++s = new_block(f->method->blocks[u16at(ip + 1)], f->context, f->self);
  ip += 3;
  SOM_DISPATCH();
L_StoreLocal:
  f->locals()[ip[1]] = *s;
  ip += 2;
  SOM_DISPATCH();
L_StoreArg:
  f->args[ip[1]] = *s;
  ip += 2;
  SOM_DISPATCH();
L_StoreField:
  if (!has_field(f->self, ip[1], f->method->holder)) goto bad_field;
  fields_of(obj(f->self))[ip[1]] = *s;
  ip += 2;
  SOM_DISPATCH();
bad_field:
  SOM_SAVE();
  fatal_bad_field(f->method, f->self, ip[1]);
L_StoreCtx:
  obj(ctx_at(f, ip[1]))->slots()[2 + ip[2]] = *s;
  ip += 3;
  SOM_DISPATCH();
L_Pop:
  s--;
  ip += 1;
  SOM_DISPATCH();
L_Dup:
  s[1] = s[0];
  s++;
  ip += 1;
  SOM_DISPATCH();

L_Send:
  site = &f->method->sites[u16at(ip + 1)];
  ret_ip = ip + 3;
send_site:
  argc = site->argc;
  base = s - argc;
  {
    uint32_t tag = tag_of(*base);
    if (site->cached_tag == tag) {
      m = site->cached_target;
      goto do_invoke;
    }
    if (site->cached_tag2 == tag) {
      m = site->cached_target2;
      goto do_invoke;
    }
    m = lookup(class_table_[tag], site->selector);
    if (m && !optimize_) goto do_invoke;
    if (m) {
      site->cached_tag2 = site->cached_tag;
      site->cached_target2 = site->cached_target;
      site->cached_tag = tag;
      site->cached_target = m;
      goto do_invoke;
    }
    sel = site->selector;
    goto do_dnu;
  }

L_SuperSend:
  site = &f->method->sites[u16at(ip + 1)];
  ret_ip = ip + 3;
  argc = site->argc;
  base = s - argc;
  if (site->cached_target) {
    m = site->cached_target;
    goto do_invoke;
  }
  m = lookup(site->super_start, site->selector);
  if (m) {
    if (optimize_) site->cached_target = m;
    goto do_invoke;
  }
  sel = site->selector;
  goto do_dnu;

  // Arithmetic and comparison sends: small-integer and Double fast paths, otherwise a
  // real send through the site's inline cache (same semantics as the primitives).
#define SOM_BINARY_FAST(label, int_expr, dbl_expr)                                            \
  label : {                                                                                   \
    Value a = s[-1], b = s[0];                                                                \
    if (a & b & 1) {                                                                          \
      int_expr;                                                                               \
    } else if (!(a & 1) && obj(a)->kind == kDouble && ((b & 1) || obj(b)->kind == kDouble)) { \
      double x = obj(a)->dbl();                                                               \
      double y = (b & 1) ? static_cast<double>(int_of(b)) : obj(b)->dbl();                    \
      (void)x;                                                                                \
      (void)y;                                                                                \
      dbl_expr;                                                                               \
    }                                                                                         \
    goto L_Send;                                                                              \
  }
#define SOM_PUSH_RESULT(v) \
  do {                     \
    *--s = (v);            \
    ip += 3;               \
    SOM_DISPATCH();        \
  } while (0)
#define SOM_NO_DOUBLE_PATH \
  {}
  SOM_BINARY_FAST(
      L_SendAdd,
      {
        int64_t r;
        if (!__builtin_add_overflow(static_cast<int64_t>(a), static_cast<int64_t>(b - 1), &r))
          SOM_PUSH_RESULT(static_cast<Value>(r));
      },
      SOM_PUSH_RESULT(new_double(x + y)))
  SOM_BINARY_FAST(
      L_SendSub,
      {
        int64_t r;
        if (!__builtin_sub_overflow(static_cast<int64_t>(a), static_cast<int64_t>(b), &r))
          SOM_PUSH_RESULT(static_cast<Value>(r + 1));
      },
      SOM_PUSH_RESULT(new_double(x - y)))
  SOM_BINARY_FAST(
      L_SendMul,
      {
        int64_t r;
        if (!__builtin_mul_overflow(int_of(a), int_of(b), &r) && fits_small(r)) SOM_PUSH_RESULT(from_int(r));
      },
      SOM_PUSH_RESULT(new_double(x * y)))
  SOM_BINARY_FAST(
      L_SendLt,
      SOM_PUSH_RESULT(static_cast<int64_t>(a) < static_cast<int64_t>(b) ? true_value_ : false_value_),
      SOM_PUSH_RESULT(x < y ? true_value_ : false_value_))
  SOM_BINARY_FAST(
      L_SendGt,
      SOM_PUSH_RESULT(static_cast<int64_t>(a) > static_cast<int64_t>(b) ? true_value_ : false_value_),
      SOM_PUSH_RESULT(x > y ? true_value_ : false_value_))
  SOM_BINARY_FAST(
      L_SendLe,
      SOM_PUSH_RESULT(static_cast<int64_t>(a) <= static_cast<int64_t>(b) ? true_value_ : false_value_),
      SOM_PUSH_RESULT(!(y < x) ? true_value_ : false_value_))  // library: (other < self) not
  SOM_BINARY_FAST(
      L_SendGe,
      SOM_PUSH_RESULT(static_cast<int64_t>(a) >= static_cast<int64_t>(b) ? true_value_ : false_value_),
      SOM_PUSH_RESULT(!(x < y) ? true_value_ : false_value_))  // library: (self < other) not
  SOM_BINARY_FAST(L_SendEq, SOM_PUSH_RESULT(a == b ? true_value_ : false_value_),
                  SOM_PUSH_RESULT(x == y ? true_value_ : false_value_))
  SOM_BINARY_FAST(
      L_SendDiv,
      {
        int64_t x = int_of(a);
        int64_t y = int_of(b);
        if (y != 0 && fits_small(x / y)) SOM_PUSH_RESULT(from_int(x / y));
      },
      SOM_NO_DOUBLE_PATH)
  SOM_BINARY_FAST(
      L_SendMod,
      {
        int64_t x = int_of(a);
        int64_t y = int_of(b);
        if (y != 0) {
          int64_t r = x % y;
          if (r != 0 && ((r ^ y) < 0)) r += y;
          SOM_PUSH_RESULT(from_int(r));
        }
      },
      SOM_NO_DOUBLE_PATH)
  SOM_BINARY_FAST(L_SendBitand, SOM_PUSH_RESULT(a & b), SOM_NO_DOUBLE_PATH)
#undef SOM_NO_DOUBLE_PATH
#undef SOM_PUSH_RESULT
#undef SOM_BINARY_FAST

L_ReturnLocal:
  result = *s;
  goto do_return;
L_ReturnSelf:
  result = f->self;
  goto do_return;
L_ReturnNonlocal : {
  result = *s;
  Value home = ctx_at(f, ip[1]);
  Value marker = obj(home)->slots()[1];
  if (marker == from_int(0)) {
    // The home activation has returned: pop this block activation and send
    // escapedBlock: to the self of the activation that sent value (its caller).
    Value blk = f->args[0];
    Frame* done = f;
    if (done->is_entry == kEntryFromHost) {
      SOM_SAVE();
      fatal("escaped block evaluated from outside the interpreter");
    }
    if (done->is_entry == kEntryFromJit) {
      // Compiled code sent value: the block frame stays (it is this interpreter run's entry)
      // and returns the reply of escapedBlock: to the compiled sender (docs/som-jit.md).
      static const uint8_t kReturnReply[] = {kReturnLocal};
      *++s = done->caller->self;
      *++s = blk;
      base = s - 1;
      ret_ip = kReturnReply;
    } else {
      if (done->context) obj(done->context)->slots()[1] = from_int(0);
      s = done->args - 1;
      ret_ip = done->ret_pc;
      f = done->caller;
      *++s = f->self;
      *++s = blk;
      base = s - 1;
    }
    argc = 1;
    sel = sym_escaped_block_;
    lookup_start = nullptr;
    site = nullptr;
    goto do_send;
  }
  unwind_target_ = reinterpret_cast<Frame*>(marker & ~Value(1));
  unwind_value_ = result;
  goto unwinding;
}

unwinding:
  // A non-local return to unwind_target_, or an error (kUnwindToHost, unwind_p.h), starting
  // with frame f: every frame above the target is left (its context marked dead). Crossing the
  // entry frame of this interpreter run returns to the compiled code or the native that started
  // it, which goes on unwinding (docs/som-jit.md, docs/som-embedding.md); at the embedding
  // program's entry an error continues as a C++ exception.
  for (;;) {
    if (f == unwind_target_) {
      unwind_target_ = nullptr;
      result = unwind_value_;
      goto do_return;
    }
    if (f->context) obj(f->context)->slots()[1] = from_int(0);
    if (f->is_entry) {
      if (f->is_entry == kEntryFromHost) {
        SOM_SAVE();
        cross_host_entry();  // an error continues as a VmUnwind; a non-local return is refused
      }
      fp_ = f->caller;
      pc_ = f->ret_pc;
      sp_ = f->args - 1;
      return 0;
    }
    f = f->caller;
  }

native_call:
  __attribute__((cold));
  // A native method (docs/som-embedding.md): called directly; an error or a non-local return
  // that passed it is in unwind_target_.
  fp_ = f;
  pc_ = ret_ip;
  sp_ = s;
  result = call_native_out_of_line(m, base);
  if (unwind_target_) goto unwinding;
  s = base;
  *s = result;
  ip = ret_ip;
  SOM_DISPATCH();

do_return : {
  Frame* done = f;
  if (done->context) obj(done->context)->slots()[1] = from_int(0);
  s = done->args;
  *s = result;
  ip = done->ret_pc;
  f = done->caller;
  if (done->is_entry) {
    fp_ = f;
    pc_ = ip;
    sp_ = s - 1;
    return result;
  }
  SOM_DISPATCH();
}

L_Jump:
  ip = f->method->code.data() + u16at(ip + 1);
  SOM_DISPATCH();
L_JumpBack:
  if (heap_.need_gc_) {
    SOM_SAVE();
    collect_garbage();
  }
  ip = f->method->code.data() + u16at(ip + 1);
  if (jit_ && ++f->method->hotness >= jit_threshold_ && !f->method->jit_failed) {
    // On-stack replacement: the compiled code continues this very frame at the loop head.
    SOM_SAVE();
    pc_ = ip;
    if (uintptr_t entry = jit_->osr_entry(f, static_cast<uint32_t>(ip - f->method->code.data()))) {
      result = jit_->enter_osr(f, entry);
      goto compiled_frame_done;
    }
  }
  SOM_DISPATCH();

compiled_frame_done : {
  // Compiled code has run frame f to its end (context marked dead, or unwinding past it).
  Frame* done = f;
  s = done->args;
  *s = result;
  ip = done->ret_pc;
  f = done->caller;
  if (done->is_entry) {
    if (unwind_target_ && done->is_entry == kEntryFromHost) {
      f = done;
      goto unwinding;  // reports the crossing
    }
    fp_ = f;
    pc_ = ip;
    sp_ = s - 1;
    return result;
  }
  if (unwind_target_) goto unwinding;
  SOM_DISPATCH();
}
L_JumpIfTrue:
  if (*s == true_value_) {
    s--;
    ip = f->method->code.data() + u16at(ip + 1);
    SOM_DISPATCH();
  }
  if (*s == false_value_) {
    s--;
    ip += 5;
    SOM_DISPATCH();
  }
  goto cond_fallback;
L_JumpIfFalse:
  if (*s == false_value_) {
    s--;
    ip = f->method->code.data() + u16at(ip + 1);
    SOM_DISPATCH();
  }
  if (*s == true_value_) {
    s--;
    ip += 5;
    SOM_DISPATCH();
  }
  goto cond_fallback;
cond_fallback:
  // Not a Boolean: the inlined control structure becomes a real send of its selector to
  // the value, resuming after the inlined code.
  site = &f->method->sites[u16at(ip + 3)];
  goto fallback_args;
L_JumpIfNil:
  if (*s-- == nil_value_)
    ip = f->method->code.data() + u16at(ip + 1);
  else
    ip += 3;
  SOM_DISPATCH();
L_JumpIfNotNil:
  if (*s-- != nil_value_)
    ip = f->method->code.data() + u16at(ip + 1);
  else
    ip += 3;
  SOM_DISPATCH();
L_NilCheck : {
  // Inlined ifNil: family: nil, or a receiver whose class uses Object's method (the library's
  // semantics, which the inlined code implements), runs the inlined code; any other receiver
  // (a class overriding the selector, or not understanding it) gets the real send.
  Value v = *s;
  if (v == nil_value_) {
    ip += 3;
    SOM_DISPATCH();
  }
  site = &f->method->sites[u16at(ip + 1)];
  uint32_t tag = tag_of(v);
  if (site->std_tag == tag || site->std_tag2 == tag) {
    ip += 3;
    SOM_DISPATCH();
  }
  Method* lm = lookup(class_table_[tag], site->selector);
  // Object's method under its own selector: a method stored in its place at run time
  // (VM::replace_method) has another signature and takes the real send.
  if (lm && lm->holder == object_class_ && lm->signature == site->selector) {
    site->std_tag2 = site->std_tag;
    site->std_tag = tag;
    ip += 3;
    SOM_DISPATCH();
  }
  goto fallback_args;
}
L_ForCheck:
  if (is_int(*s) || is_number(*s)) {
    ip += 3;
    SOM_DISPATCH();
  }
  site = &f->method->sites[u16at(ip + 1)];
fallback_args:
  // heap.alloc does not collect (it only raises need_gc), so no SOM_SAVE() is needed here.
  s = push_fallback_args(f, site, s);
  ret_ip = f->method->code.data() + site->cont_pc;
  goto send_site;
L_ForTest:
L_ForTestDown : {
  Value a = f->locals()[ip[1]], b = f->locals()[ip[2]];
  bool down = *ip == kForTestDown;
  bool go;
  if (a & b & 1) {
    go = down ? static_cast<int64_t>(a) >= static_cast<int64_t>(b)
              : static_cast<int64_t>(a) <= static_cast<int64_t>(b);
  } else {
    bool ok = true;
    int c = num_compare(a, b, &ok);
    if (!ok) {
      SOM_SAVE();
      fatal("loop limit is not a number: " + describe(b));
    }
    // As the library: `i <= limit` is `(limit < i) not`, `i >= limit` is `(i < limit) not`
    // (c == 2: unordered, NaN involved).
    go = down ? c != -1 : c != 1;
  }
  if (go)
    ip += 5;
  else
    ip = f->method->code.data() + u16at(ip + 3);
  SOM_DISPATCH();
}
L_ForStep : {
  Value& c = f->locals()[ip[1]];
  if (is_int(c)) {
    int64_t n = int_of(c) + (ip[2] ? -1 : 1);
    if (fits_small(n)) {
      c = from_int(n);
      ip += 3;
      SOM_DISPATCH();
    }
  }
  SOM_SAVE();
  c = ip[2] ? num_sub(*this, c, from_int(1)) : num_add(*this, c, from_int(1));
  ip += 3;
  SOM_DISPATCH();
}

  // ---- the send protocol ---------------------------------------------------------------
do_send:
  // In: sel, argc, base (receiver slot), ret_ip, lookup_start (nullptr: receiver's class).
  m = lookup(lookup_start ? lookup_start : class_of(*base), sel);
  lookup_start = nullptr;
  if (!m) goto do_dnu;
  if (static_cast<uint32_t>(m->num_args) != argc) {
    // Only reachable through perform: with a selector of another arity.
    SOM_SAVE();
    fatal("#" + sel->text + " takes " + std::to_string(m->num_args) + " arguments, but " +
          std::to_string(argc) + " were supplied (perform:)");
  }
  goto do_invoke;

do_dnu : {
  // In: sel, argc, base, ret_ip. Replaces the arguments by (selector, Array of arguments).
  Class* rc = class_of(*base);
  Method* dnu = lookup(rc, sym_dnu_);
  if (!dnu) {
    SOM_SAVE();
    fatal(describe(*base) + " does not understand #" + sel->text +
          " (and no doesNotUnderstand:arguments: method)");
  }
  Value arr = new_array(argc);
  for (uint32_t i = 0; i < argc; i++) obj(arr)->slots()[i] = base[1 + i];
  base[1] = val(sel);
  base[2] = arr;
  s = base + 2;
  argc = 2;
  m = dnu;
  goto do_invoke;
}

do_invoke:
  // In: m, argc, base, ret_ip. The receiver and arguments are base[0..argc].
  if (m->mkind == MethodKind::kBytecode) {
    if (m->trivial != Method::kNotTrivial) {
      Value rcv = base[0];
      switch (m->trivial) {
        case Method::kGetter:
          if (has_field(rcv, m->trivial_index, m->holder)) {
            *base = fields_of(obj(rcv))[m->trivial_index];
            s = base;
            ip = ret_ip;
            SOM_DISPATCH();
          }
          break;
        case Method::kSetter:
          if (has_field(rcv, m->trivial_index, m->holder)) {
            fields_of(obj(rcv))[m->trivial_index] = base[1];
            s = base;
            ip = ret_ip;
            SOM_DISPATCH();
          }
          break;
        case Method::kConstant:
          *base = m->trivial_value;
          s = base;
          ip = ret_ip;
          SOM_DISPATCH();
        case Method::kSelf:
          s = base;
          ip = ret_ip;
          SOM_DISPATCH();
        default:
          break;
      }
    }
  push_frame:
    if (jit_ && jit_->tier_up(m, jit_threshold_)) {
      fp_ = f;
      pc_ = ret_ip;
      sp_ = s;
      result = jit_->enter(m, base, f);
      s = base;
      *s = result;
      ip = ret_ip;
      if (unwind_target_) goto unwinding;
      SOM_DISPATCH();
    }
    if (heap_.need_gc_) {
      SOM_SAVE();
      collect_garbage();
    }
    if (s + kFrameWords + m->num_locals + m->max_stack + 16 >= stack_limit_) {
      SOM_SAVE();
      fatal("stack overflow: recursion too deep");
    }
    auto* nf = reinterpret_cast<Frame*>(s + 1);
    nf->caller = f;
    nf->ret_pc = ret_ip;
    nf->method = m;
    nf->args = base;
    if (m->is_block) {
      Object* blk = obj(base[0]);
      nf->self = blk->slots()[2];
      nf->outer_ctx = blk->slots()[1];
    } else {
      nf->self = base[0];
      nf->outer_ctx = 0;
    }
    nf->context = 0;
    nf->is_entry = 0;
    Value* l = nf->locals();
    for (int i = 0; i < m->num_locals; i++) l[i] = nil_value_;
    s = l + m->num_locals - 1;
    f = nf;
    ip = m->code.data();
    if (m->has_context) enter_context(nf);
    SOM_DISPATCH();
  }
  if (m->mkind == MethodKind::kPrimitive) {
    switch (m->special_prim) {
      case SpecialPrim::kNone:
      call_prim : {
        fp_ = f;
        pc_ = ret_ip;
        sp_ = s;
        Value r = m->prim(*this, base);
        s = base;
        *s = r;
        ip = ret_ip;
        SOM_DISPATCH();
      }
      case SpecialPrim::kValue: {
        Object* blk = obj(base[0]);
        if (is_int(base[0]) || blk->kind != kBlock) {
          SOM_SAVE();
          fatal("value primitive sent to " + describe(base[0]));
        }
        m = static_cast<Method*>(obj(blk->slots()[0]));
        if (static_cast<uint32_t>(m->num_args) != argc) {
          SOM_SAVE();
          fatal("block expects " + std::to_string(m->num_args) + " arguments, got " + std::to_string(argc));
        }
        goto push_frame;
      }
      case SpecialPrim::kRestart:
        if (heap_.need_gc_) {
          SOM_SAVE();
          collect_garbage();
        }
        ip = f->method->code.data();
        s = f->locals() + f->method->num_locals - 1;
        SOM_DISPATCH();
      case SpecialPrim::kPerform:
      case SpecialPrim::kPerformSuper:
      case SpecialPrim::kPerformArgs:
      case SpecialPrim::kPerformArgsSuper: {
        SpecialPrim which = m->special_prim;
        Value sel_value = base[1];
        if (is_int(sel_value) || obj(sel_value)->kind != kSymbol) {
          SOM_SAVE();
          fatal("perform: needs a Symbol, got " + describe(sel_value));
        }
        sel = static_cast<Symbol*>(obj(sel_value));
        Class* start = nullptr;
        if (which == SpecialPrim::kPerformSuper || which == SpecialPrim::kPerformArgsSuper) {
          Value cv = base[argc];
          if (is_int(cv) || obj(cv)->kind != kClass) {
            SOM_SAVE();
            fatal("perform:inSuperclass: needs a Class, got " + describe(cv));
          }
          start = static_cast<Class*>(obj(cv));
          // Lookup may start above the receiver's class, never beside it: primitives rely on
          // their receiver having the layout of their holder.
          if (!inherits_from(class_of(base[0]), start)) {
            SOM_SAVE();
            fatal("perform:inSuperclass: " + describe(base[0]) + " is not an instance of " +
                  start->name->text + " or a subclass");
          }
        }
        if (which == SpecialPrim::kPerformArgs || which == SpecialPrim::kPerformArgsSuper) {
          Value arr = base[2];
          if (is_int(arr) || obj(arr)->kind != kArray) {
            SOM_SAVE();
            fatal("perform:withArguments: needs an Array, got " + describe(arr));
          }
          uint32_t n = obj(arr)->length;
          if (base + n + 64 >= stack_limit_) {
            SOM_SAVE();
            fatal("stack overflow in perform:withArguments:");
          }
          for (uint32_t i = 0; i < n; i++) base[1 + i] = obj(arr)->slots()[i];
          argc = n;
        } else {
          argc = 0;
        }
        s = base + argc;
        lookup_start = start;
        goto do_send;
      }
      case SpecialPrim::kInvoke: {
        // [method, receiver, args array]
        auto* target = static_cast<Method*>(obj(base[0]));
        Value arr = base[2];
        if (is_int(arr) || obj(arr)->kind != kArray) {
          SOM_SAVE();
          fatal("invokeOn:with: needs an Array of arguments, got " + describe(arr));
        }
        uint32_t n = obj(arr)->length;
        if (target->holder && !inherits_from(class_of(base[1]), target->holder)) {
          SOM_SAVE();
          fatal("invokeOn:with: " + describe(base[1]) + " is not an instance of " +
                target->holder->name->text + " or a subclass");
        }
        if (static_cast<int>(n) != target->num_args) {
          SOM_SAVE();
          fatal("invokeOn:with: " + target->signature->text + " expects " + std::to_string(target->num_args) +
                " arguments, got " + std::to_string(n));
        }
        base[0] = base[1];
        for (uint32_t i = 0; i < n; i++) base[1 + i] = obj(arr)->slots()[i];
        argc = n;
        s = base + n;
        m = target;
        goto do_invoke;
      }
      case SpecialPrim::kArrayAt: {
        Value rcv = base[0], idx = base[1];
        if (!is_int(rcv) && obj(rcv)->kind == kArray && is_int(idx) &&
            static_cast<uint64_t>(int_of(idx) - 1) < obj(rcv)->length) {
          *base = obj(rcv)->slots()[int_of(idx) - 1];
          s = base;
          ip = ret_ip;
          SOM_DISPATCH();
        }
        goto call_prim;
      }
      case SpecialPrim::kArrayAtPut: {
        Value rcv = base[0], idx = base[1];
        // A class's method table (kMethodTable) takes the primitive: storing replaces a method.
        if (!is_int(rcv) && obj(rcv)->kind == kArray && !(obj(rcv)->flags & kMethodTable) && is_int(idx) &&
            static_cast<uint64_t>(int_of(idx) - 1) < obj(rcv)->length) {
          obj(rcv)->slots()[int_of(idx) - 1] = base[2];
          s = base;
          ip = ret_ip;
          SOM_DISPATCH();
        }
        goto call_prim;
      }
      case SpecialPrim::kArrayLength:
        if (!is_int(base[0]) && obj(base[0])->kind == kArray) {
          *base = from_int(obj(base[0])->length);
          s = base;
          ip = ret_ip;
          SOM_DISPATCH();
        }
        goto call_prim;
      case SpecialPrim::kNative:
        goto native_call;  // kept apart from the hot primitive paths
      default:
        break;
    }
  }
  SOM_SAVE();
  fp_ = f;
  pc_ = ret_ip;
  fatal("primitive " + (m->holder ? m->holder->name->text : std::string("?")) + ">>" + m->signature->text +
        " is declared but not implemented by this VM");
}

Value* VM::push_fallback_args(Frame* f, SendSite* site, Value* s) {
  // The literal blocks are materialised now as real closures over this activation's context
  // and self (the compiler made every variable they use a context variable, so they share it
  // with the inlined code); limits and steps are the loop's already evaluated locals.
  Method* m = f->method;
  if (m->lazy_context && !f->context) {
    bool any_block = false;
    for (uint32_t i = 0; i < site->argc; i++) any_block |= site->fallback_arg[i] >= 0;
    if (any_block) {
      // Create the context the closures capture (same layout as at frame entry) and move the
      // variables they share with this activation into it; from now on the *_LAZY
      // instructions use the context, so both sides see every later store.
      Value c = new_context(f);
      for (auto& [frame_slot, ctx_slot] : m->lazy_vars)
        obj(c)->slots()[2 + ctx_slot] = frame_slot >= 0 ? f->locals()[frame_slot] : f->args[-frame_slot];
      f->context = c;
    }
  }
  for (uint32_t i = 0; i < site->argc; i++) {
    int32_t a = site->fallback_arg[i];
    if (a >= 0)
      *++s = new_block(m->blocks[static_cast<uint32_t>(a)], f->context, f->self);
    else if (a <= kFallbackLocal0)
      *++s = f->locals()[kFallbackLocal0 - a];
    else
      *++s = nil_value_;
  }
  return s;
}

}  // namespace som
