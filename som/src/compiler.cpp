// The bytecode compiler. See compiler_p.h for the passes and docs/som-bytecode.md for the code.
#include "compiler_p.h"

#include "bytecode_p.h"
#include "vm_p.h"

#include <algorithm>
#include <climits>
#include <memory>
#include <string_view>
#include <unordered_map>

namespace som {

namespace {

struct CompileError {
  SrcPos pos;
  std::string message;
};

struct RealScope;

struct Var {
  std::string name;
  RealScope* owner = nullptr;
  bool is_arg = false;  // an argument of the owner (method or real block)
  int arg_index = 0;    // 1-based
  bool captured = false;
  // Used from a fallback block (see RealScope::in_fallback) but from no real block: if the
  // owner has no context anyway, the variable is `lazy`: frame slot `slot` plus context slot
  // `ctx_slot`, reached by the *_LAZY instructions (the context is created at the first fallback).
  bool fb_captured = false;
  bool lazy = false;
  bool assigned = false;  // some assignment names it (arguments usually are never assigned)
  int slot = -1;          // frame local, context slot, or argument index
  int ctx_slot = -1;      // lazy variables: their context slot
};

struct Scope {
  Scope* parent = nullptr;
  RealScope* real = nullptr;
  std::vector<Var*> vars;
};

// A method or a non-inlined block: one Method object and one activation at run time.
struct RealScope {
  RealScope* parent = nullptr;
  int level = 0;  // 0 = method
  bool has_context = false;
  // The copy of an inlined literal block made for a fallback send, or a block nested in one:
  // it exists only on the fallback path.
  bool in_fallback = false;
  // Needs a context only for its fallback blocks (reaching outside them or `^`): lazy context.
  bool fb_context = false;
  bool lazy_context = false;  // decided by allocate()
  // Lowest scope level this scope or any block nested in it reaches: through a variable it
  // uses, or 0 for a non-local return. A block that reaches below its own level needs its
  // enclosing scope's context (chains of outer contexts must be unbroken).
  int min_level = INT_MAX;
  std::vector<Var*> owned;
  int num_locals = 0;
  int num_ctx = 0;
};

bool is_block_with(const NodePtr& n, size_t params) {
  return n && n->kind == NodeKind::kBlock && n->block->params.size() == params;
}

NodePtr clone_node(const Node& n);

std::unique_ptr<BlockNode> clone_block(const BlockNode& b) {
  auto c = std::make_unique<BlockNode>();
  c->pos = b.pos;
  c->params = b.params;
  c->locals = b.locals;
  c->local_pos = b.local_pos;
  for (auto& st : b.body) c->body.push_back(clone_node(*st));
  c->inlined = false;  // nothing is inlined inside a fallback block (see mark_node)
  return c;
}

NodePtr clone_node(const Node& n) {
  auto c = std::make_unique<Node>();
  c->kind = n.kind;
  c->pos = n.pos;
  c->name = n.name;
  if (n.receiver) c->receiver = clone_node(*n.receiver);
  for (auto& a : n.args) c->args.push_back(clone_node(*a));
  c->is_super = n.is_super;
  c->lit = n.lit;
  if (n.block) c->block = clone_block(*n.block);
  return c;
}

class Compiler {
 public:
  Compiler(VM& vm, Class* holder, const std::string& file) : vm_(vm), holder_(holder), file_(file) {}

  Method* compile(MethodDef& def) {
    BlockNode& body = def.body;
    mark_inlining(body);
    auto* root = new_real(nullptr);
    analyze_block(body, nullptr, root, true);
    allocate();
    Method* m = new_method(false);
    m->signature = vm_.intern(def.selector);
    m->num_args = static_cast<int>(body.params.size());
    Emitter e{m, root};
    e.line(def.pos);
    gen_method_body(e, body);
    finish(e);
    return m;
  }

 private:
  struct Emitter {
    Method* m;
    RealScope* scope;
    int depth = 0;
    int max_depth = 0;
    int last_line = -1;
    void line(SrcPos p) {
      if (p.line != last_line && p.line > 0) {
        m->lines.push_back({static_cast<uint32_t>(m->code.size()), p.line});
        last_line = p.line;
      }
    }
    void adjust(int d) {
      depth += d;
      if (depth > max_depth) max_depth = depth;
    }
    void op(Op o, int stack_effect) {
      m->code.push_back(o);
      adjust(stack_effect);
    }
    void u8(int v) { m->code.push_back(static_cast<uint8_t>(v)); }
    void u16(int v) {
      m->code.push_back(static_cast<uint8_t>(v & 0xff));
      m->code.push_back(static_cast<uint8_t>((v >> 8) & 0xff));
    }
    size_t here() const { return m->code.size(); }
    void patch(size_t at, size_t target) {
      m->code[at] = static_cast<uint8_t>(target & 0xff);
      m->code[at + 1] = static_cast<uint8_t>((target >> 8) & 0xff);
    }
  };

  [[noreturn]] void fail(SrcPos p, const std::string& msg) { throw CompileError{p, msg}; }

  RealScope* new_real(RealScope* parent) {
    reals_.push_back(std::make_unique<RealScope>());
    RealScope* r = reals_.back().get();
    r->parent = parent;
    r->level = parent ? parent->level + 1 : 0;
    r->in_fallback = parent && parent->in_fallback;
    return r;
  }

  Method* new_method(bool is_block) {
    auto* m = new Method();
    created_.push_back(m);
    std::memset(static_cast<Object*>(m), 0, sizeof(Object));
    m->cls = vm_.method_class_ ? vm_.method_class_->tag : 0;
    m->hash = vm_.heap_.next_hash();
    m->kind = kMethod;
    m->flags = kPermanent;
    m->holder = holder_;
    m->is_block = is_block;
    m->file_name = file_;
    return m;
  }

  // --- pass 1: inlining decisions -------------------------------------------------------
  void mark_inlining(BlockNode& b) {
    for (auto& s : b.body) mark_node(*s);
  }
  void mark_node(Node& n) {
    switch (n.kind) {
      case NodeKind::kAssign:
      case NodeKind::kReturn:
        mark_node(*n.receiver);
        break;
      case NodeKind::kBlock:
        mark_inlining(*n.block);
        break;
      case NodeKind::kSend:
        mark_node(*n.receiver);
        for (auto& a : n.args) mark_node(*a);
        if (const InlinedForm* form = vm_.optimize_ ? inlined_form_of(n) : nullptr) {
          inlined_sends_[&n] = form;
          if (form->receiver_block != kAnyOperand) n.receiver->block->inlined = true;
          for (auto& a : n.args)
            if (a->kind == NodeKind::kBlock) a->block->inlined = true;
          // Each inlined literal-block argument is also compiled as a real block, used only as
          // an argument of the fallback send. The copy is compiled without any inlining (so a
          // nest of d inlined structures costs O(d^2) copies, not 2^d); it runs only on the
          // rare fallback path, where real sends are the reference semantics anyway.
          if (form->fallback_blocks) {
            auto& fb = fallbacks_[&n];
            for (auto& a : n.args) fb.push_back(a->kind == NodeKind::kBlock ? clone_node(*a) : nullptr);
          }
        }
        break;
      default:
        break;
    }
  }

  // --- pass 2: scopes, name resolution, capture analysis ------------------------------------
  Var* declare(Scope* s, const std::string& name, bool is_arg, int arg_index) {
    vars_.push_back(std::make_unique<Var>());
    Var* v = vars_.back().get();
    v->name = name;
    v->owner = s->real;
    v->is_arg = is_arg;
    v->arg_index = arg_index;
    s->vars.push_back(v);
    s->real->owned.push_back(v);
    return v;
  }

  void analyze_block(BlockNode& b, Scope* parent, RealScope* real, bool is_real_root) {
    scopes_.push_back(std::make_unique<Scope>());
    Scope* s = scopes_.back().get();
    s->parent = parent;
    s->real = real;
    scope_of_[&b] = s;
    for (size_t i = 0; i < b.params.size(); i++)
      declare(s, b.params[i], is_real_root, static_cast<int>(i + 1));
    for (size_t i = 0; i < b.locals.size(); i++) {
      for (size_t j = 0; j < b.params.size(); j++)
        if (b.params[j] == b.locals[i])
          fail(b.local_pos[i], "local '" + b.locals[i] + "' has the same name as an argument");
      declare(s, b.locals[i], false, 0);
    }
    for (auto& n : b.body) analyze_node(*n, s);
  }

  Var* resolve(const std::string& name, Scope* s) {
    for (; s; s = s->parent)
      for (size_t i = s->vars.size(); i-- > 0;)
        if (s->vars[i]->name == name) return s->vars[i];
    return nullptr;
  }

  static bool is_pseudo(const std::string& n) {
    return n == "self" || n == "super" || n == "nil" || n == "true" || n == "false";
  }

  void analyze_node(Node& n, Scope* s) {
    switch (n.kind) {
      case NodeKind::kVariable:
      case NodeKind::kAssign:
        if (!is_pseudo(n.name)) {
          Var* v = resolve(n.name, s);
          if (v && n.kind == NodeKind::kAssign) v->assigned = true;
          if (v && v->owner != s->real) {
            if (s->real->in_fallback && !v->owner->in_fallback)
              v->fb_captured = true;
            else
              v->captured = true;
          }
          if (v) s->real->min_level = std::min(s->real->min_level, v->owner->level);
        }
        if (n.kind == NodeKind::kAssign) analyze_node(*n.receiver, s);
        break;
      case NodeKind::kReturn:
        if (s->real->level > 0) s->real->min_level = 0;  // non-local return to the method
        analyze_node(*n.receiver, s);
        break;
      case NodeKind::kLiteral:
        break;
      case NodeKind::kSend:
        analyze_node(*n.receiver, s);
        for (auto& a : n.args) analyze_node(*a, s);
        // The fallback blocks are real blocks in scope s: the capture analysis treats them
        // exactly like a literal block there, so every variable they use lives in a context
        // shared with the inlined code.
        if (auto it = fallbacks_.find(&n); it != fallbacks_.end())
          for (auto& fb : it->second) {
            if (!fb) continue;
            RealScope* r = new_real(s->real);
            r->in_fallback = true;
            block_real_[fb->block.get()] = r;
            analyze_block(*fb->block, s, r, true);
            if (r->min_level < r->level) {
              if (s->real->in_fallback)
                s->real->has_context = true;
              else
                s->real->fb_context = true;
            }
            s->real->min_level = std::min(s->real->min_level, r->min_level);
          }
        break;
      case NodeKind::kBlock:
        if (n.block->inlined) {
          analyze_block(*n.block, s, s->real, false);
        } else {
          RealScope* r = new_real(s->real);
          block_real_[n.block.get()] = r;
          analyze_block(*n.block, s, r, true);
          // A block that only uses its own variables, self and globals needs no context here.
          if (r->min_level < r->level) s->real->has_context = true;
          s->real->min_level = std::min(s->real->min_level, r->min_level);
        }
        break;
    }
  }

  // --- pass 3: slot allocation -----------------------------------------------------------------
  // A scope that has a context anyway (real blocks need it) keeps the variables of its
  // fallback blocks there too; otherwise they get a frame slot and a context slot (lazy).
  void allocate() {
    for (auto& r : reals_) {
      bool eager = r->has_context;
      for (Var* v : r->owned) eager |= v->captured;
      for (Var* v : r->owned) {
        if (v->fb_captured && !v->captured) {
          if (eager)
            v->captured = true;
          else
            v->lazy = true;
        }
      }
      r->lazy_context = !eager && r->fb_context;
      for (Var* v : r->owned) {
        if (v->captured)
          v->slot = r->num_ctx++;
        else if (v->is_arg)
          v->slot = v->arg_index;
        else
          v->slot = r->num_locals++;
        if (v->lazy) {
          v->ctx_slot = r->num_ctx++;
          r->lazy_context = true;
        }
      }
    }
  }

  // --- pass 4: code generation -----------------------------------------------------------------
  int add_literal(Method* m, Value v) {
    for (size_t i = 0; i < m->literals.size(); i++)
      if (m->literals[i] == v) return static_cast<int>(i);
    m->literals.push_back(v);
    return static_cast<int>(m->literals.size() - 1);
  }
  int add_site(Method* m, const std::string& sel, int argc) {
    SendSite s{};
    s.selector = vm_.intern(sel);
    s.argc = static_cast<uint32_t>(argc);
    s.cached_tag = UINT32_MAX;
    s.cached_tag2 = UINT32_MAX;
    s.cached_target = nullptr;
    s.cached_target2 = nullptr;
    s.super_start = nullptr;
    s.cont_pc = 0;
    for (auto& a : s.fallback_arg) a = kFallbackNil;
    s.std_tag = UINT32_MAX;
    s.std_tag2 = UINT32_MAX;
    m->sites.push_back(s);
    if (m->sites.size() > 65535) fail({}, "too many send sites in one method");
    return static_cast<int>(m->sites.size() - 1);
  }

  Value literal_value(const Literal& l) {
    switch (l.kind) {
      case LitKind::kInteger:
        if (fits_small(l.i)) return from_int(l.i);
        return vm_.big_from_decimal(std::to_string(l.i), true);
      case LitKind::kBigInteger:
        return vm_.big_from_decimal(l.text, true);
      case LitKind::kDouble:
        return vm_.perm_double(l.d);
      case LitKind::kString:
        return vm_.perm_string(l.text);
      case LitKind::kSymbol:
        return val(vm_.intern(l.text));
      case LitKind::kArray: {
        Value a = vm_.perm_array(static_cast<uint32_t>(l.elems.size()));
        for (size_t i = 0; i < l.elems.size(); i++) obj(a)->slots()[i] = literal_value(l.elems[i]);
        return a;
      }
    }
    return vm_.nil_value_;
  }

  void finish(Emitter& e) {
    Method* m = e.m;
    if (m->code.size() > 65535) fail({}, "method too large (more than 64 KiB of bytecode)");
    RealScope* r = e.scope;
    if (r->num_locals > 255 || r->num_ctx > 255 || m->num_args > 255)
      fail({}, "too many variables in one method or block (limit 255)");
    m->num_locals = r->num_locals;
    m->num_ctx_vars = r->num_ctx;
    m->lazy_context = r->lazy_context;
    m->has_context = !r->lazy_context && (r->has_context || r->num_ctx > 0);
    for (Var* v : r->owned)
      if (v->lazy) m->lazy_vars.push_back({v->is_arg ? -v->slot : v->slot, v->ctx_slot});
    m->max_stack = e.max_depth + 4;  // + room for the (at most 3) fallback-send arguments
    for (Var* v : r->owned)
      if (v->captured && v->is_arg) m->ctx_args.push_back({v->arg_index, v->slot});
    if (vm_.optimize_) classify_trivial(m);
  }

  // Recognises accessor-like methods so that a send to them needs no frame.
  void classify_trivial(Method* m) {
    if (m->is_block || m->has_context) return;
    const auto& c = m->code;
    if (c.size() == 3 && c[0] == kPushField && c[2] == kReturnLocal) {
      m->trivial = Method::kGetter;
      m->trivial_index = c[1];
    } else if (c.size() == 6 && c[0] == kPushArg && c[1] == 1 && c[2] == kStoreField && c[4] == kPop &&
               c[5] == kReturnSelf && m->num_args == 1) {
      m->trivial = Method::kSetter;
      m->trivial_index = c[3];
    } else if (c.size() == 4 && c[0] == kPushLiteral && c[3] == kReturnLocal) {
      m->trivial = Method::kConstant;
      m->trivial_value = m->literals[static_cast<uint16_t>(c[1] | (c[2] << 8))];
    } else if (c.size() == 2 && c[1] == kReturnLocal &&
               (c[0] == kPushNil || c[0] == kPushTrue || c[0] == kPushFalse)) {
      m->trivial = Method::kConstant;
      m->trivial_value = c[0] == kPushNil    ? vm_.nil_value_
                         : c[0] == kPushTrue ? vm_.true_value_
                                             : vm_.false_value_;
    } else if ((c.size() == 1 && c[0] == kReturnSelf) ||
               (c.size() == 2 && c[0] == kPushSelf && c[1] == kReturnLocal)) {
      m->trivial = Method::kSelf;
    }
  }

  void gen_method_body(Emitter& e, BlockNode& b) {
    Scope* s = scope_of_.at(&b);
    for (auto& st : b.body) {
      if (st->kind == NodeKind::kReturn) {
        gen_return(e, *st, s);
        return;
      }
      gen_expr(e, *st, s);
      e.op(kPop, -1);
    }
    e.op(kReturnSelf, 0);
  }

  void gen_return(Emitter& e, Node& ret, Scope* s) {
    gen_expr(e, *ret.receiver, s);
    e.line(ret.pos);
    if (s->real->level == 0) {
      e.op(kReturnLocal, 0);
    } else {
      e.op(kReturnNonlocal, 0);
      e.u8(s->real->level);
    }
  }

  // Statements of an inlined block, leaving exactly one value (the last statement's).
  void gen_inlined_body(Emitter& e, BlockNode& b) {
    Scope* s = scope_of_.at(&b);
    // Inlined block locals are fresh variables on every entry.
    for (Var* v : s->vars) {
      if (v->is_arg) continue;
      bool is_param = false;
      for (auto& p : b.params)
        if (p == v->name) is_param = true;
      if (is_param) continue;
      e.op(kPushNil, 1);
      gen_store_var(e, v, s);
      e.op(kPop, -1);
    }
    if (b.body.empty()) {
      e.op(kPushNil, 1);
      return;
    }
    for (size_t i = 0; i < b.body.size(); i++) {
      Node& st = *b.body[i];
      if (st.kind == NodeKind::kReturn) {
        gen_return(e, st, s);
        return;  // the return leaves its value "on the stack" for depth bookkeeping
      }
      gen_expr(e, st, s);
      if (i + 1 < b.body.size()) e.op(kPop, -1);
    }
  }

  // Compiles the fallback blocks of an inlined send `n` into `outer.m->blocks` and records
  // them as the arguments of the fallback send `site`. `first_local` (>= 0): the site's first
  // `num_locals` arguments are frame locals from `first_local` on (a to:do: loop's limit, step).
  void set_fallback_args(Emitter& outer, Node& n, int site, int first_local = -1, int num_locals = 0) {
    auto it = fallbacks_.find(&n);
    if (it == fallbacks_.end()) return;
    int32_t* fa = outer.m->sites[site].fallback_arg;
    for (size_t i = 0; i < it->second.size() && i < 3; i++) {
      if (it->second[i]) {
        fa[i] = gen_block_method(outer, *it->second[i], false);
      } else if (static_cast<int>(i) < num_locals) {
        fa[i] = kFallbackLocal0 - (first_local + static_cast<int>(i));
      }
    }
  }

  int gen_block_method(Emitter& outer, Node& n, bool push = true) {
    BlockNode& b = *n.block;
    RealScope* r = block_real_.at(&b);
    Method* m = new_method(true);
    m->signature = outer.m->signature;
    m->outer = outer.m;
    m->num_args = static_cast<int>(b.params.size());
    Emitter e{m, r};
    e.line(b.pos);
    Scope* s = scope_of_.at(&b);
    if (b.body.empty()) {
      e.op(kPushNil, 1);
      e.op(kReturnLocal, 0);
    } else {
      for (size_t i = 0; i < b.body.size(); i++) {
        Node& st = *b.body[i];
        if (st.kind == NodeKind::kReturn) {
          gen_return(e, st, s);
          break;
        }
        gen_expr(e, st, s);
        if (i + 1 < b.body.size()) {
          e.op(kPop, -1);
        } else {
          e.op(kReturnLocal, 0);
        }
      }
    }
    finish(e);
    outer.m->blocks.push_back(m);
    if (outer.m->blocks.size() > 65535) fail(n.pos, "too many blocks in one method");
    int index = static_cast<int>(outer.m->blocks.size() - 1);
    if (push) {
      outer.op(kPushBlock, 1);
      outer.u16(index);
    }
    return index;
  }

  int field_index(const std::string& name) {
    auto& f = holder_->fields;
    for (size_t i = f.size(); i-- > 0;)
      if (f[i]->text == name) return static_cast<int>(i);
    return -1;
  }

  void gen_load_var(Emitter& e, Var* v, Scope* s) {
    // A lazy argument nobody assigns has the same value in the frame and in the context
    // (copied when the context is created): the owner reads the frame with a plain PUSH_ARG.
    if (v->lazy && v->owner == s->real && !(v->is_arg && !v->assigned)) {
      e.op(v->is_arg ? kPushArgLazy : kPushLocalLazy, 1);
      e.u8(v->slot);
      e.u8(v->ctx_slot);
    } else if (v->captured || (v->lazy && v->owner != s->real)) {
      e.op(kPushCtx, 1);
      e.u8(s->real->level - v->owner->level);
      e.u8(v->lazy ? v->ctx_slot : v->slot);
    } else if (v->is_arg) {
      e.op(kPushArg, 1);
      e.u8(v->slot);
    } else {
      e.op(kPushLocal, 1);
      e.u8(v->slot);
    }
  }
  void gen_store_var(Emitter& e, Var* v, Scope* s) {
    if (v->lazy && v->owner == s->real) {
      e.op(v->is_arg ? kStoreArgLazy : kStoreLocalLazy, 0);
      e.u8(v->slot);
      e.u8(v->ctx_slot);
    } else if (v->captured || v->lazy) {
      e.op(kStoreCtx, 0);
      e.u8(s->real->level - v->owner->level);
      e.u8(v->lazy ? v->ctx_slot : v->slot);
    } else if (v->is_arg) {
      e.op(kStoreArg, 0);
      e.u8(v->slot);
    } else {
      e.op(kStoreLocal, 0);
      e.u8(v->slot);
    }
  }

  void gen_expr(Emitter& e, Node& n, Scope* s) {
    e.line(n.pos);
    switch (n.kind) {
      case NodeKind::kVariable: {
        const std::string& name = n.name;
        if (name == "self" || name == "super") return e.op(kPushSelf, 1);
        if (name == "nil") return e.op(kPushNil, 1);
        if (name == "true") return e.op(kPushTrue, 1);
        if (name == "false") return e.op(kPushFalse, 1);
        if (Var* v = resolve(name, s)) return gen_load_var(e, v, s);
        int f = field_index(name);
        if (f >= 0) {
          if (f > 255) fail(n.pos, "too many fields (limit 256)");
          e.op(kPushField, 1);
          e.u8(f);
          return;
        }
        e.op(kPushGlobal, 1);
        e.u16(add_literal(e.m, val(vm_.intern(name))));
        return;
      }
      case NodeKind::kAssign: {
        gen_expr(e, *n.receiver, s);
        e.line(n.pos);
        if (is_pseudo(n.name)) fail(n.pos, "cannot assign to '" + n.name + "'");
        if (Var* v = resolve(n.name, s)) return gen_store_var(e, v, s);
        int f = field_index(n.name);
        if (f >= 0) {
          e.op(kStoreField, 0);
          e.u8(f);
          return;
        }
        fail(n.pos, "cannot assign to '" + n.name +
                        "': not a local, argument or field (globals are not assignable)");
      }
      case NodeKind::kLiteral: {
        const Literal& l = n.lit;
        e.op(kPushLiteral, 1);
        e.u16(add_literal(e.m, literal_value(l)));
        if (e.m->literals.size() > 65535) fail(n.pos, "too many literals in one method");
        return;
      }
      case NodeKind::kBlock:
        if (n.block->inlined) fail(n.pos, "internal error: inlined block used as a value");
        gen_block_method(e, n);
        return;
      case NodeKind::kSend:
        return gen_send(e, n, s);
      case NodeKind::kReturn:
        fail(n.pos, "'^' is only allowed at the start of a statement");
    }
  }

  // --- inlined control structures ----------------------------------------------------------
  // Every control structure the compiler inlines is one entry of kInlinedForms (below the
  // class): its selector, which operands must be literal blocks and of which arity, whether its
  // literal blocks are also compiled as real blocks for the fallback send, and the function
  // that emits it. Adding a control structure is adding one entry (and, for a new shape of
  // code, one emitter).
  struct InlinedForm;
  using EmitInlined = void (Compiler::*)(Emitter&, Node&, Scope*, const InlinedForm&);
  static constexpr int kAnyOperand = -1;
  struct InlinedForm {
    std::string_view selector;
    // kAnyOperand, or the parameter count of the literal block this operand must be.
    int receiver_block = kAnyOperand;
    int arg_blocks[3] = {kAnyOperand, kAnyOperand, kAnyOperand};
    // Which literal-block arguments also get a real block for the fallback send (a receiver
    // of the wrong class, LANGUAGE.md §3.4/§6.1; for the ifNil family: a class that does not
    // use Object's method). whileTrue:/whileFalse: always have a Block receiver, and their only
    // fallback is a non-Boolean condition value, which gets `fallback_selector` with nil.
    bool fallback_blocks = false;
    EmitInlined emit = nullptr;
    // Conditionals and while loops: the jump that skips the (first) arm or leaves the loop.
    Op branch = kJump;
    // One-arm Boolean conditionals: what the send answers when its arm is skipped.
    Op skipped_value = kPushNil;
    // While loops: the send a non-Boolean condition value gets (with a nil argument).
    std::string_view fallback_selector = {};
    // Counting loops: counts down (downTo:), has an explicit step (by:).
    bool down = false;
    bool by_step = false;
  };
  static const InlinedForm kInlinedForms[];
  static const InlinedForm* inlined_form_of(const Node& n);

  // Emits the inlined code of `n` if pass 1 chose to inline it.
  bool emit_inlined(Emitter& e, Node& n, Scope* s) {
    // Only sends marked by pass 1: the copies made for fallback blocks are never inlined.
    auto it = inlined_sends_.find(&n);
    if (it == inlined_sends_.end()) return false;
    (this->*it->second->emit)(e, n, s, *it->second);
    return true;
  }

  void jump_op(Emitter& e, Op o, int stack_effect, size_t* patch_at) {
    e.op(o, stack_effect);
    *patch_at = e.here();
    e.u16(0);
  }
  void cond_jump(Emitter& e, Op o, Method* m, std::string_view sel, int argc, size_t* patch_at, int* site) {
    e.op(o, -1);
    *patch_at = e.here();
    e.u16(0);
    *site = add_site(m, std::string(sel), argc);
    e.u16(*site);
  }

  // The fallback send of an inlined structure resumes after its inlined code.
  void resume_fallback_here(Emitter& e, int site) {
    e.m->sites[site].cont_pc = static_cast<uint32_t>(e.here());
  }

  // A Boolean test of the receiver: a conditional jump whose send site (with the structure's
  // fallback blocks as arguments) takes over when the receiver is not a Boolean.
  int emit_boolean_test(Emitter& e, Node& n, Scope* s, const InlinedForm& form, size_t* skip) {
    int site = 0;
    gen_expr(e, *n.receiver, s);
    cond_jump(e, form.branch, e.m, n.name, static_cast<int>(n.args.size()), skip, &site);
    set_fallback_args(e, n, site);
    return site;
  }

  // NIL_CHECK before an inlined ifNil: family send (receiver on the stack); returns its site.
  int emit_nil_check(Emitter& e, Node& n, Scope* s) {
    gen_expr(e, *n.receiver, s);
    int site = add_site(e.m, n.name, static_cast<int>(n.args.size()));
    e.op(kNilCheck, 0);
    e.u16(site);
    set_fallback_args(e, n, site);
    return site;
  }

  // The two literal-block arms of an inlined two-way choice (ifTrue:ifFalse:, ifNil:ifNotNil:
  // and their mirrors): the first arm falls through into a jump over the second, and the
  // conditional jump at `skip_first` lands on the second. Both arms start at the same depth.
  void gen_two_arms(Emitter& e, Node& n, size_t skip_first) {
    size_t over_second = 0;
    int d = e.depth;
    gen_inlined_body(e, *n.args[0]->block);
    jump_op(e, kJump, 0, &over_second);
    e.patch(skip_first, e.here());
    e.depth = d;
    gen_inlined_body(e, *n.args[1]->block);
    e.patch(over_second, e.here());
  }

  // ifTrue:, ifFalse:, and:, or:, &&, ||: the arm, or the structure's answer when it is skipped.
  void emit_one_arm_condition(Emitter& e, Node& n, Scope* s, const InlinedForm& form) {
    size_t skip_arm = 0, over_answer = 0;
    int site = emit_boolean_test(e, n, s, form, &skip_arm);
    int d = e.depth;
    gen_inlined_body(e, *n.args[0]->block);
    jump_op(e, kJump, 0, &over_answer);
    e.patch(skip_arm, e.here());
    e.depth = d;
    e.op(form.skipped_value, 1);
    e.patch(over_answer, e.here());
    resume_fallback_here(e, site);
  }

  // ifTrue:ifFalse:, ifFalse:ifTrue:.
  void emit_two_arm_condition(Emitter& e, Node& n, Scope* s, const InlinedForm& form) {
    size_t skip_first = 0;
    int site = emit_boolean_test(e, n, s, form, &skip_first);
    gen_two_arms(e, n, skip_first);
    resume_fallback_here(e, site);
  }

  // ifNil:, ifNotNil:: the arm, or the receiver itself when the arm is skipped.
  void emit_one_arm_nil_test(Emitter& e, Node& n, Scope* s, const InlinedForm& form) {
    size_t skip_arm = 0;
    int site = emit_nil_check(e, n, s);
    e.op(kDup, 1);
    jump_op(e, form.branch, -1, &skip_arm);
    e.op(kPop, -1);
    gen_inlined_body(e, *n.args[0]->block);
    e.patch(skip_arm, e.here());
    resume_fallback_here(e, site);
  }

  // ifNil:ifNotNil:, ifNotNil:ifNil:.
  void emit_two_arm_nil_test(Emitter& e, Node& n, Scope* s, const InlinedForm& form) {
    size_t skip_first = 0;
    int site = emit_nil_check(e, n, s);
    jump_op(e, form.branch, -1, &skip_first);
    gen_two_arms(e, n, skip_first);
    resume_fallback_here(e, site);
  }

  // whileTrue:, whileFalse:: condition, exit test, body, back jump; the loop answers nil.
  void emit_while_loop(Emitter& e, Node& n, Scope*, const InlinedForm& form) {
    size_t exit = 0;
    int site = 0;
    size_t loop = e.here();
    gen_inlined_body(e, *n.receiver->block);
    cond_jump(e, form.branch, e.m, form.fallback_selector, 1, &exit, &site);
    gen_inlined_body(e, *n.args[0]->block);
    e.op(kPop, -1);
    e.op(kJumpBack, 0);
    e.u16(static_cast<int>(loop));
    e.patch(exit, e.here());
    e.op(kPushNil, 1);
    resume_fallback_here(e, site);
  }

  // The frame locals of an inlined counting loop: its counter, its limit and (by:) its step,
  // allocated consecutively so that limit and step are the fallback send's leading arguments.
  struct LoopLocals {
    int counter;
    int limit;
    int step;  // -1: steps by one
  };
  LoopLocals allocate_loop_locals(Emitter& e, bool by_step) {
    LoopLocals l{};
    l.counter = e.scope->num_locals++;
    l.limit = e.scope->num_locals++;
    l.step = by_step ? e.scope->num_locals++ : -1;
    return l;
  }

  void store_local_and_pop(Emitter& e, int local) {
    e.op(kStoreLocal, 0);
    e.u8(local);
    e.op(kPop, -1);
  }

  // timesRepeat:: the receiver is the limit, the counter starts at 1.
  void emit_times_repeat(Emitter& e, Node& n, Scope* s, const InlinedForm&) {
    LoopLocals l = allocate_loop_locals(e, false);
    gen_expr(e, *n.receiver, s);
    int site = add_site(e.m, n.name, static_cast<int>(n.args.size()));
    set_fallback_args(e, n, site, l.limit, 0);
    e.op(kForCheck, 0);
    e.u16(site);
    e.op(kStoreLocal, 0);
    e.u8(l.limit);
    e.op(kPushLiteral, 1);
    e.u16(add_literal(e.m, from_int(1)));
    store_local_and_pop(e, l.counter);
    emit_counting_loop_body(e, *n.args[0]->block, l, false, site);
  }

  // to:do:, downTo:do:, to:by:do:, downTo:by:do:. Mirrors the library:
  // `i := rcv. [i <= limit] whileTrue: [blk value: i. i := i + step]` (downTo: uses >= and
  // subtracts); limit and step are evaluated once, in order.
  void emit_counting_loop(Emitter& e, Node& n, Scope* s, const InlinedForm& form) {
    LoopLocals l = allocate_loop_locals(e, form.by_step);
    gen_expr(e, *n.receiver, s);
    int site = add_site(e.m, n.name, static_cast<int>(n.args.size()));
    // Fallback arguments: the limit (and step) already evaluated into frame locals, then
    // the block.
    set_fallback_args(e, n, site, l.limit, form.by_step ? 2 : 1);
    e.op(kStoreLocal, 0);
    e.u8(l.counter);
    gen_expr(e, *n.args[0], s);
    store_local_and_pop(e, l.limit);
    if (form.by_step) {
      gen_expr(e, *n.args[1], s);
      store_local_and_pop(e, l.step);
    }
    e.op(kForCheck, 0);
    e.u16(site);
    emit_counting_loop_body(e, *n.args.back()->block, l, form.down, site);
  }

  // The loop proper, once counter and limit (and step) are set: test, bind the block's
  // parameter to the counter, body, advance the counter, jump back.
  void emit_counting_loop_body(Emitter& e, BlockNode& body, const LoopLocals& l, bool down, int site) {
    size_t loop = e.here();
    e.op(down ? kForTestDown : kForTest, 0);
    e.u8(l.counter);
    e.u8(l.limit);
    size_t exit = e.here();
    e.u16(0);
    if (!body.params.empty()) bind_loop_variable(e, body, l.counter);
    gen_inlined_body(e, body);
    e.op(kPop, -1);
    advance_loop_counter(e, l, down);
    e.op(kJumpBack, 0);
    e.u16(static_cast<int>(loop));
    e.patch(exit, e.here());
    resume_fallback_here(e, site);
  }

  void bind_loop_variable(Emitter& e, BlockNode& body, int counter) {
    Var* param = scope_of_.at(&body)->vars[0];
    e.op(kPushLocal, 1);
    e.u8(counter);
    gen_store_var(e, param, scope_of_.at(&body));
    e.op(kPop, -1);
  }

  // By one: FOR_STEP. By an explicit step: a real `+`/`-` send (any number may be the step).
  void advance_loop_counter(Emitter& e, const LoopLocals& l, bool down) {
    if (l.step >= 0) {
      e.op(kPushLocal, 1);
      e.u8(l.counter);
      e.op(kPushLocal, 1);
      e.u8(l.step);
      e.op(down ? kSendSub : kSendAdd, -1);
      e.u16(add_site(e.m, down ? "-" : "+", 1));
      store_local_and_pop(e, l.counter);
    } else {
      e.op(kForStep, 0);
      e.u8(l.counter);
      e.u8(down ? 1 : 0);
    }
  }

  void gen_send(Emitter& e, Node& n, Scope* s) {
    if (emit_inlined(e, n, s)) return;
    int argc = static_cast<int>(n.args.size());
    if (n.is_super) {
      e.op(kPushSelf, 1);
    } else {
      gen_expr(e, *n.receiver, s);
    }
    for (auto& a : n.args) gen_expr(e, *a, s);
    e.line(n.pos);
    int site = add_site(e.m, n.name, argc);
    Op o = kSend;
    if (n.is_super) {
      if (!holder_->superclass) fail(n.pos, "super send in a class without superclass");
      e.m->sites[site].super_start = holder_->superclass;
      o = kSuperSend;
    } else if (argc == 1 && vm_.optimize_) {
      const std::string& sel = n.name;
      if (sel == "+")
        o = kSendAdd;
      else if (sel == "-")
        o = kSendSub;
      else if (sel == "*")
        o = kSendMul;
      else if (sel == "<")
        o = kSendLt;
      else if (sel == ">")
        o = kSendGt;
      else if (sel == "<=")
        o = kSendLe;
      else if (sel == ">=")
        o = kSendGe;
      else if (sel == "=")
        o = kSendEq;
      else if (sel == "/")
        o = kSendDiv;
      else if (sel == "%")
        o = kSendMod;
      else if (sel == "&")
        o = kSendBitand;
    }
    e.op(o, -argc);
    e.u16(site);
  }

  VM& vm_;
  Class* holder_;
  std::string file_;
  std::vector<std::unique_ptr<RealScope>> reals_;
  std::vector<std::unique_ptr<Scope>> scopes_;
  std::vector<std::unique_ptr<Var>> vars_;
  std::unordered_map<BlockNode*, Scope*> scope_of_;
  std::unordered_map<BlockNode*, RealScope*> block_real_;
  // Inlined send -> per argument: a non-inlined copy of its literal block (nullptr: not a block).
  std::unordered_map<Node*, std::vector<NodePtr>> fallbacks_;
  std::unordered_map<Node*, const InlinedForm*> inlined_sends_;  // sends inlined by pass 1

 public:
  std::vector<Method*> created_;  // freed if compilation fails

 public:
  friend Method* som::compile_method(VM&, Class*, MethodDef&, const std::string&, std::string&);
};

// The control structures the compiler inlines (see Compiler::InlinedForm).
const Compiler::InlinedForm Compiler::kInlinedForms[] = {
    {.selector = "ifTrue:",
     .arg_blocks = {0},
     .fallback_blocks = true,
     .emit = &Compiler::emit_one_arm_condition,
     .branch = kJumpIfFalse,
     .skipped_value = kPushNil},
    {.selector = "ifFalse:",
     .arg_blocks = {0},
     .fallback_blocks = true,
     .emit = &Compiler::emit_one_arm_condition,
     .branch = kJumpIfTrue,
     .skipped_value = kPushNil},
    {.selector = "and:",
     .arg_blocks = {0},
     .fallback_blocks = true,
     .emit = &Compiler::emit_one_arm_condition,
     .branch = kJumpIfFalse,
     .skipped_value = kPushFalse},
    {.selector = "&&",
     .arg_blocks = {0},
     .fallback_blocks = true,
     .emit = &Compiler::emit_one_arm_condition,
     .branch = kJumpIfFalse,
     .skipped_value = kPushFalse},
    {.selector = "or:",
     .arg_blocks = {0},
     .fallback_blocks = true,
     .emit = &Compiler::emit_one_arm_condition,
     .branch = kJumpIfTrue,
     .skipped_value = kPushTrue},
    {.selector = "||",
     .arg_blocks = {0},
     .fallback_blocks = true,
     .emit = &Compiler::emit_one_arm_condition,
     .branch = kJumpIfTrue,
     .skipped_value = kPushTrue},
    {.selector = "ifTrue:ifFalse:",
     .arg_blocks = {0, 0},
     .fallback_blocks = true,
     .emit = &Compiler::emit_two_arm_condition,
     .branch = kJumpIfFalse},
    {.selector = "ifFalse:ifTrue:",
     .arg_blocks = {0, 0},
     .fallback_blocks = true,
     .emit = &Compiler::emit_two_arm_condition,
     .branch = kJumpIfTrue},
    {.selector = "ifNil:",
     .arg_blocks = {0},
     .fallback_blocks = true,
     .emit = &Compiler::emit_one_arm_nil_test,
     .branch = kJumpIfNotNil},
    {.selector = "ifNotNil:",
     .arg_blocks = {0},
     .fallback_blocks = true,
     .emit = &Compiler::emit_one_arm_nil_test,
     .branch = kJumpIfNil},
    {.selector = "ifNil:ifNotNil:",
     .arg_blocks = {0, 0},
     .fallback_blocks = true,
     .emit = &Compiler::emit_two_arm_nil_test,
     .branch = kJumpIfNotNil},
    {.selector = "ifNotNil:ifNil:",
     .arg_blocks = {0, 0},
     .fallback_blocks = true,
     .emit = &Compiler::emit_two_arm_nil_test,
     .branch = kJumpIfNil},
    {.selector = "whileTrue:",
     .receiver_block = 0,
     .arg_blocks = {0},
     .emit = &Compiler::emit_while_loop,
     .branch = kJumpIfFalse,
     .fallback_selector = "ifFalse:"},
    {.selector = "whileFalse:",
     .receiver_block = 0,
     .arg_blocks = {0},
     .emit = &Compiler::emit_while_loop,
     .branch = kJumpIfTrue,
     .fallback_selector = "ifTrue:"},
    {.selector = "timesRepeat:",
     .arg_blocks = {0},
     .fallback_blocks = true,
     .emit = &Compiler::emit_times_repeat},
    {.selector = "to:do:",
     .arg_blocks = {kAnyOperand, 1},
     .fallback_blocks = true,
     .emit = &Compiler::emit_counting_loop},
    {.selector = "downTo:do:",
     .arg_blocks = {kAnyOperand, 1},
     .fallback_blocks = true,
     .emit = &Compiler::emit_counting_loop,
     .down = true},
    {.selector = "to:by:do:",
     .arg_blocks = {kAnyOperand, kAnyOperand, 1},
     .fallback_blocks = true,
     .emit = &Compiler::emit_counting_loop,
     .by_step = true},
    {.selector = "downTo:by:do:",
     .arg_blocks = {kAnyOperand, kAnyOperand, 1},
     .fallback_blocks = true,
     .emit = &Compiler::emit_counting_loop,
     .down = true,
     .by_step = true},
};

// The form `n` is an instance of, if it can be inlined: a non-super send of a selector in the
// table whose operands are literal blocks where the form requires them.
const Compiler::InlinedForm* Compiler::inlined_form_of(const Node& n) {
  if (n.kind != NodeKind::kSend || n.is_super) return nullptr;
  for (const InlinedForm& form : kInlinedForms) {
    if (form.selector != n.name) continue;
    if (form.receiver_block != kAnyOperand && !is_block_with(n.receiver, form.receiver_block)) return nullptr;
    for (size_t i = 0; i < n.args.size() && i < 3; i++)
      if (form.arg_blocks[i] != kAnyOperand && !is_block_with(n.args[i], form.arg_blocks[i])) return nullptr;
    return &form;
  }
  return nullptr;
}

}  // namespace

Method* compile_method(VM& vm, Class* holder, MethodDef& def, const std::string& file, std::string& error) {
  Compiler c(vm, holder, file);
  try {
    return c.compile(def);
  } catch (const CompileError& e) {
    for (Method* m : c.created_) delete m;
    SrcPos p = e.pos.line ? e.pos : def.pos;
    error = file + ":" + std::to_string(p.line) + ":" + std::to_string(p.col) + ": error: " + e.message;
    return nullptr;
  }
}

}  // namespace som
