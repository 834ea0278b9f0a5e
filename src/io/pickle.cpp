#include "io/pickle.h"

#include <bit>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <unordered_map>

#include "core/error.h"

namespace tinyemo {

static_assert(std::endian::native == std::endian::little, "the unpickler assumes a little-endian host");

namespace {

// Limits no real checkpoint comes near; they bound what a hostile pickle can cost.
constexpr size_t kMaxObjects = size_t{1} << 22;          // objects built (and memo entries)
constexpr int kMaxDepth = 256;                            // container nesting of the result
constexpr size_t kMaxDims = 64;
constexpr size_t kMaxGlobalName = 256;
constexpr int64_t kCopySlackBytes = int64_t{256} << 20;  // copies of strided tensors beyond the storages' size

struct StorageType {
  DType dtype;
  std::string_view name;  // torch.<name>
};
constexpr StorageType kStorageTypes[] = {
    {DType::F16, "HalfStorage"}, {DType::BF16, "BFloat16Storage"}, {DType::F32, "FloatStorage"},
    {DType::F64, "DoubleStorage"}, {DType::I64, "LongStorage"},   {DType::I32, "IntStorage"},
    {DType::I16, "ShortStorage"},  {DType::I8, "CharStorage"},    {DType::U8, "ByteStorage"},
    {DType::Bool, "BoolStorage"}};

// What an allowlisted global is.
enum class Global { OrderedDict, EmptyBytes, EncodeBytes, RebuildTensorV2, RebuildTensor, RebuildParameter,
                    RebuildParameterWithState, RebuildFromTypeV2, TensorType, StorageType };
constexpr std::pair<std::string_view, Global> kAllowedGlobals[] = {
    {"collections.OrderedDict", Global::OrderedDict},
    // Protocol 2 has no bytes opcode: b"" pickles as bytes(), other bytes as _codecs.encode(text, "latin1").
    {"__builtin__.bytes", Global::EmptyBytes},
    {"builtins.bytes", Global::EmptyBytes},
    {"_codecs.encode", Global::EncodeBytes},
    {"torch._utils._rebuild_tensor_v2", Global::RebuildTensorV2},
    {"torch._utils._rebuild_tensor", Global::RebuildTensor},
    {"torch._utils._rebuild_parameter", Global::RebuildParameter},
    {"torch._utils._rebuild_parameter_with_state", Global::RebuildParameterWithState},
    {"torch._tensor._rebuild_from_type_v2", Global::RebuildFromTypeV2},
    {"torch.nn.parameter.Parameter", Global::TensorType},
    {"torch.Tensor", Global::TensorType},
    {"torch._tensor.Tensor", Global::TensorType}};

// Every pickle opcode, so that refusals name what was refused.
constexpr std::pair<uint8_t, std::string_view> kOpcodeNames[] = {
    {'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"}, {'F', "FLOAT"}, {'I', "INT"},
    {'J', "BININT"}, {'K', "BININT1"}, {'L', "LONG"}, {'M', "BININT2"}, {'N', "NONE"}, {'P', "PERSID"},
    {'Q', "BINPERSID"}, {'R', "REDUCE"}, {'S', "STRING"}, {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"},
    {'V', "UNICODE"}, {'X', "BINUNICODE"}, {'a', "APPEND"}, {'b', "BUILD"}, {'c', "GLOBAL"}, {'d', "DICT"},
    {'}', "EMPTY_DICT"}, {'e', "APPENDS"}, {'g', "GET"}, {'h', "BINGET"}, {'i', "INST"}, {'j', "LONG_BINGET"},
    {'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"}, {'p', "PUT"}, {'q', "BINPUT"}, {'r', "LONG_BINPUT"},
    {'s', "SETITEM"}, {'t', "TUPLE"}, {')', "EMPTY_TUPLE"}, {'u', "SETITEMS"}, {'G', "BINFLOAT"},
    {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"}, {0x80, "PROTO"}, {0x81, "NEWOBJ"}, {0x82, "EXT1"},
    {0x83, "EXT2"}, {0x84, "EXT4"}, {0x85, "TUPLE1"}, {0x86, "TUPLE2"}, {0x87, "TUPLE3"}, {0x88, "NEWTRUE"},
    {0x89, "NEWFALSE"}, {0x8a, "LONG1"}, {0x8b, "LONG4"}, {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"},
    {0x8e, "BINBYTES8"}, {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"},
    {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"}, {0x95, "FRAME"}, {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"},
    {0x98, "READONLY_BUFFER"}};

std::string opcode_name(uint8_t op) {
  for (const auto& [code, name] : kOpcodeNames) {
    if (code == op) return fmt::format("{} (0x{:02x})", name, op);
  }
  return fmt::format("unknown opcode 0x{:02x}", op);
}

struct Object {
  enum class Kind { None, Bool, Int, Float, String, Bytes, List, Tuple, Dict, Tensor, Global, Storage };
  Kind kind = Kind::None;
  int64_t i = 0;                // Int, Bool
  double f = 0.0;               // Float
  std::string s;                // String, Bytes; a Global's dotted name; a Storage's key
  std::vector<Object*> items;   // List, Tuple; Dict as key, value, key, value, ...
  Tensor tensor;                // Tensor; Storage (its elements, 1-D)
  Global global{};              // Global
  DType dtype{};                // Global::StorageType, Storage
};
using Kind = Object::Kind;

std::string_view kind_name(Kind k) {
  static constexpr std::string_view kNames[] = {"None",  "bool", "int",  "float",  "str",   "bytes",
                                                "list",  "tuple", "dict", "tensor", "global", "storage"};
  return kNames[static_cast<int>(k)];
}

// Copies a strided view of `storage` into a new contiguous tensor.
Tensor copy_strided(const Tensor& storage, int64_t offset, const Shape& shape, const std::vector<int64_t>& strides) {
  Tensor out = Tensor::empty(storage.dtype(), shape);
  const size_t es = dtype_size(storage.dtype());
  const char* src = static_cast<const char*>(storage.raw());
  char* dst = static_cast<char*>(out.raw_mut());
  std::vector<int64_t> index(shape.size(), 0);
  int64_t at = offset;
  for (int64_t n = 0, numel = out.numel(); n < numel; ++n) {
    std::memcpy(dst + n * es, src + at * es, es);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++index[d] < shape[d]) {
        at += strides[d];
        break;
      }
      at -= strides[d] * (shape[d] - 1);
      index[d] = 0;
    }
  }
  return out;
}

class Unpickler {
 public:
  Unpickler(std::string_view bytes, const StorageResolver& storages, const std::string& where)
      : in_(bytes), storages_(storages), where_(where) {}

  PyValue run() {
    for (;;) {
      op_pos_ = pos_;
      if (pos_ == in_.size()) error("the pickle ends without STOP (truncated)");
      op_ = read<uint8_t>();
      switch (op_) {
        case 0x80: {  // PROTO
          const int version = read<uint8_t>();
          if (version < 2 || version > 5) error("pickle protocol {} is not supported (2-5 are)", version);
          break;
        }
        case 0x95: read<uint64_t>(); break;  // FRAME: a length hint only
        case '(': marks_.push_back(stack_.size()); break;
        case '.': return result(pop());
        case '}': push(make(Kind::Dict)); break;
        case ']': push(make(Kind::List)); break;
        case ')': push(make(Kind::Tuple)); break;
        case 't': push_tuple(pop_mark()); break;
        case 0x85: case 0x86: case 0x87: {  // TUPLE1-3
          std::vector<Object*> items(op_ - 0x84);
          for (size_t k = items.size(); k-- > 0;) items[k] = pop();
          push_tuple(std::move(items));
          break;
        }
        case 'q': memo_put(read<uint8_t>()); break;
        case 'r': memo_put(read<uint32_t>()); break;
        case 0x94: memo_put(static_cast<uint32_t>(memo_.size())); break;  // MEMOIZE
        case 'h': memo_get(read<uint8_t>()); break;
        case 'j': memo_get(read<uint32_t>()); break;
        case 'J': push_int(read<int32_t>()); break;
        case 'K': push_int(read<uint8_t>()); break;
        case 'M': push_int(read<uint16_t>()); break;
        case 0x8a: push_int(read_long(read<uint8_t>())); break;
        case 'G': {  // BINFLOAT: big-endian double
          Object* o = make(Kind::Float);
          o->f = std::bit_cast<double>(__builtin_bswap64(read<uint64_t>()));
          push(o);
          break;
        }
        case 'X': push_text(Kind::String, read<uint32_t>()); break;
        case 0x8c: push_text(Kind::String, read<uint8_t>()); break;
        case 0x8d: push_text(Kind::String, read<uint64_t>()); break;
        case 'B': push_text(Kind::Bytes, read<uint32_t>()); break;
        case 'C': push_text(Kind::Bytes, read<uint8_t>()); break;
        case 0x8e: push_text(Kind::Bytes, read<uint64_t>()); break;
        case 'N': push(make(Kind::None)); break;
        case 0x88: case 0x89: {  // NEWTRUE, NEWFALSE
          Object* o = make(Kind::Bool);
          o->i = op_ == 0x88;
          push(o);
          break;
        }
        case 'a': {
          Object* item = pop();
          expect(top(), Kind::List, "APPEND target")->items.push_back(item);
          break;
        }
        case 'e': {
          std::vector<Object*> items = pop_mark();
          Object* list = expect(top(), Kind::List, "APPENDS target");
          list->items.insert(list->items.end(), items.begin(), items.end());
          break;
        }
        case 's': {
          Object* value = pop();
          Object* key = pop();
          Object* dict = expect(top(), Kind::Dict, "SETITEM target");
          dict->items.push_back(key);
          dict->items.push_back(value);
          break;
        }
        case 'u': {
          std::vector<Object*> items = pop_mark();
          if (items.size() % 2 != 0) error("SETITEMS with an odd number ({}) of keys and values", items.size());
          Object* dict = expect(top(), Kind::Dict, "SETITEMS target");
          dict->items.insert(dict->items.end(), items.begin(), items.end());
          break;
        }
        case 'c': {
          const std::string_view module = line();
          push(global(module, line()));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          const Object* name = expect(pop(), Kind::String, "STACK_GLOBAL name");
          const Object* module = expect(pop(), Kind::String, "STACK_GLOBAL module");
          push(global(module->s, name->s));
          break;
        }
        case 'R': {
          Object* args = pop();
          push(call(pop(), args));
          break;
        }
        case 'Q': push(persistent_load(pop())); break;
        case 'b': {
          // An OrderedDict's attributes: state_dict() keeps `_metadata` (module versions)
          // there, which holds no tensors, so it is checked and dropped.
          const Object* state = pop();
          expect(top(), Kind::Dict, "BUILD target");
          if (state->kind != Kind::Dict && state->kind != Kind::None) {
            error("BUILD with a {} state (only a dict of attributes is accepted)", kind_name(state->kind));
          }
          break;
        }
        default:
          error("{} is not allowed: only the opcodes torch.save uses for tensors and plain containers are",
                opcode_name(op_));
      }
    }
  }

 private:
  template <class... Args>
  [[noreturn]] void error(fmt::format_string<Args...> format, Args&&... args) const {
    fail("{}: {} (pickle byte {})", where_, fmt::format(format, std::forward<Args>(args)...), op_pos_);
  }

  std::string_view take(uint64_t n) {
    if (n > in_.size() - pos_) {
      error("{} needs {} bytes but only {} remain (truncated or corrupt pickle)", opcode_name(op_), n,
            in_.size() - pos_);
    }
    const std::string_view s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  template <class T>
  T read() {
    T v;
    std::memcpy(&v, take(sizeof v).data(), sizeof v);
    return v;
  }
  // LONG1: a little-endian two's complement integer of n bytes.
  int64_t read_long(size_t n) {
    if (n > 8) error("integer of {} bytes is too large", n);
    const std::string_view b = take(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(static_cast<uint8_t>(b[k])) << (8 * k);
    if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<int64_t>(v);
  }
  // GLOBAL's operands: a newline-terminated name.
  std::string_view line() {
    const std::string_view rest = in_.substr(pos_, kMaxGlobalName);
    const size_t n = rest.find('\n');
    if (n == std::string_view::npos) error("GLOBAL name is unterminated or longer than {} bytes", kMaxGlobalName);
    pos_ += n + 1;
    return rest.substr(0, n);
  }

  Object* make(Kind kind) {
    if (arena_.size() >= kMaxObjects) error("more than {} objects", kMaxObjects);
    Object& o = arena_.emplace_back();
    o.kind = kind;
    return &o;
  }
  void push(Object* o) { stack_.push_back(o); }
  // The stack above the innermost MARK is all an opcode may touch.
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  Object* top() {
    if (stack_.size() <= floor()) error("stack underflow in {}", opcode_name(op_));
    return stack_.back();
  }
  Object* pop() {
    Object* o = top();
    stack_.pop_back();
    return o;
  }
  std::vector<Object*> pop_mark() {
    if (marks_.empty()) error("{} without a MARK", opcode_name(op_));
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<Object*> items(stack_.begin() + static_cast<ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  Object* expect(Object* o, Kind kind, std::string_view what) const {
    if (o->kind != kind) error("{} must be a {}, not a {}", what, kind_name(kind), kind_name(o->kind));
    return o;
  }

  void push_tuple(std::vector<Object*> items) {
    Object* o = make(Kind::Tuple);
    o->items = std::move(items);
    push(o);
  }
  void push_int(int64_t v) {
    Object* o = make(Kind::Int);
    o->i = v;
    push(o);
  }
  void push_text(Kind kind, uint64_t n) {
    const std::string_view text = take(n);  // checks n against the remaining bytes before anything is allocated
    Object* o = make(kind);
    o->s = text;
    push(o);
  }
  void memo_put(uint32_t index) {
    Object* o = top();
    if (memo_.size() >= kMaxObjects && !memo_.count(index)) error("more than {} memo entries", kMaxObjects);
    memo_[index] = o;
  }
  void memo_get(uint32_t index) {
    const auto it = memo_.find(index);
    if (it == memo_.end()) error("memo entry {} is read before it is written", index);
    push(it->second);
  }

  Object* global(std::string_view module, std::string_view name) {
    Object* g = make(Kind::Global);
    g->s = fmt::format("{}.{}", module, name);
    for (const auto& [allowed, kind] : kAllowedGlobals) {
      if (g->s == allowed) {
        g->global = kind;
        return g;
      }
    }
    for (const StorageType& t : kStorageTypes) {
      if (module == "torch" && name == t.name) {
        g->global = Global::StorageType;
        g->dtype = t.dtype;
        return g;
      }
    }
    error("global '{}' is not allowed: only tensors and plain containers are loaded (loading never runs code)",
          g->s);
  }

  Object* call(Object* callable, Object* args) {
    if (callable->kind != Kind::Global) error("REDUCE calls a {}, not an allowed function", kind_name(callable->kind));
    const std::vector<Object*>& a = expect(args, Kind::Tuple, "REDUCE arguments")->items;
    const auto arity = [&](size_t lo, size_t hi) {
      if (a.size() < lo || a.size() > hi) error("{} called with {} arguments", callable->s, a.size());
    };
    switch (callable->global) {
      case Global::OrderedDict:
        arity(0, 0);
        return make(Kind::Dict);
      case Global::EmptyBytes:
        arity(0, 0);
        return make(Kind::Bytes);
      case Global::EncodeBytes: {
        arity(2, 2);
        const std::string& text = expect(a[0], Kind::String, "text to encode")->s;
        if (expect(a[1], Kind::String, "encoding")->s != "latin1") error("{} is only allowed with latin1", callable->s);
        Object* bytes = make(Kind::Bytes);
        bytes->s = latin1(text);
        return bytes;
      }
      case Global::RebuildTensorV2:  // (storage, offset, size, stride, requires_grad, hooks[, metadata])
        arity(6, 7);
        expect(a[4], Kind::Bool, "requires_grad");
        expect(a[5], Kind::Dict, "backward hooks");
        if (a.size() == 7) expect(a[6], Kind::Dict, "tensor metadata");
        return rebuild_tensor(a);
      case Global::RebuildTensor:  // (storage, offset, size, stride)
        arity(4, 4);
        return rebuild_tensor(a);
      case Global::RebuildParameter:           // (tensor, requires_grad, hooks)
      case Global::RebuildParameterWithState:  // (tensor, requires_grad, hooks, state)
        arity(callable->global == Global::RebuildParameter ? 3 : 4, callable->global == Global::RebuildParameter ? 3 : 4);
        expect(a[1], Kind::Bool, "requires_grad");
        expect(a[2], Kind::Dict, "backward hooks");
        if (a.size() == 4 && a[3]->kind != Kind::None) expect(a[3], Kind::Dict, "parameter state");
        return expect(a[0], Kind::Tensor, "parameter data");
      case Global::RebuildFromTypeV2: {  // (rebuild function, tensor type, its arguments, state)
        arity(4, 4);
        const Object* type = expect(a[1], Kind::Global, "tensor type");
        if (type->global != Global::TensorType) error("'{}' is not a tensor type", type->s);
        if (a[3]->kind != Kind::None) expect(a[3], Kind::Dict, "tensor state");
        Object* rebuild = expect(a[0], Kind::Global, "tensor rebuild function");
        if (rebuild->global == Global::RebuildFromTypeV2 || rebuild->global == Global::OrderedDict) {
          error("'{}' does not rebuild a tensor", rebuild->s);
        }
        return expect(call(rebuild, a[2]), Kind::Tensor, "rebuilt value");
      }
      case Global::TensorType:
      case Global::StorageType:
        break;
    }
    error("'{}' cannot be called", callable->s);
  }

  // UTF-8 text of code points below 256 -> those bytes.
  std::string latin1(const std::string& text) const {
    std::string out;
    for (size_t k = 0; k < text.size(); ++k) {
      const uint8_t c = static_cast<uint8_t>(text[k]);
      if (c < 0x80) {
        out += static_cast<char>(c);
      } else if ((c == 0xc2 || c == 0xc3) && k + 1 < text.size() && (text[k + 1] & 0xc0) == 0x80) {
        out += static_cast<char>(((c & 0x03) << 6) | (text[++k] & 0x3f));
      } else {
        error("text to encode as latin1 holds a character above U+00FF or invalid UTF-8");
      }
    }
    return out;
  }

  // ('storage', torch.<T>Storage, key, location, numel) -> the storage (any location loads to the CPU).
  Object* persistent_load(Object* pid) {
    const std::vector<Object*>& a = expect(pid, Kind::Tuple, "persistent id")->items;
    if (a.size() != 5 || a[0]->kind != Kind::String || a[0]->s != "storage") {
      error("persistent id is not a torch storage reference ('storage', type, key, location, size)");
    }
    if (a[1]->kind != Kind::Global || a[1]->global != Global::StorageType) {
      error("storage type must be one of torch's typed storages, not a {}", kind_name(a[1]->kind));
    }
    const DType dtype = a[1]->dtype;
    const std::string& key = expect(a[2], Kind::String, "storage key")->s;
    expect(a[3], Kind::String, "storage location");
    const int64_t numel = expect(a[4], Kind::Int, "storage size")->i;
    if (numel < 0) error("storage '{}' has a negative size {}", key, numel);
    const auto [it, fresh] = storage_by_key_.try_emplace(key, nullptr);
    if (!fresh) {
      const Object* seen = it->second;
      if (seen->dtype != dtype || seen->tensor.numel() != numel) {
        error("storage '{}' is referenced as {} {} and as {} {}", key, seen->tensor.numel(), dtype_name(seen->dtype),
              numel, dtype_name(dtype));
      }
      return it->second;
    }
    Object* s = make(Kind::Storage);
    s->s = key;
    s->dtype = dtype;
    s->tensor = storages_(key, dtype, numel);
    if (s->tensor.dtype() != dtype || s->tensor.shape() != Shape{numel}) {
      error("storage '{}' resolved to a {} {} tensor", key, dtype_name(s->tensor.dtype()), shape_str(s->tensor.shape()));
    }
    copy_budget_ += static_cast<int64_t>(s->tensor.nbytes());
    it->second = s;
    return s;
  }

  Object* rebuild_tensor(const std::vector<Object*>& a) {
    const Object* storage = expect(a[0], Kind::Storage, "tensor storage");
    const int64_t offset = expect(a[1], Kind::Int, "storage offset")->i;
    const std::vector<Object*>& size = expect(a[2], Kind::Tuple, "tensor size")->items;
    const std::vector<Object*>& stride = expect(a[3], Kind::Tuple, "tensor stride")->items;
    if (size.size() != stride.size() || size.size() > kMaxDims) {
      error("tensor size has {} dimensions and stride {} (at most {})", size.size(), stride.size(), kMaxDims);
    }
    Shape shape;
    std::vector<int64_t> strides;
    int64_t numel = 1;
    bool overflow = false;
    for (size_t d = 0; d < size.size(); ++d) {
      shape.push_back(expect(size[d], Kind::Int, "tensor size entry")->i);
      strides.push_back(expect(stride[d], Kind::Int, "tensor stride entry")->i);
      if (shape[d] < 0 || strides[d] < 0) error("tensor size {} or stride has a negative entry", shape_str(shape));
      overflow |= __builtin_mul_overflow(numel, shape[d], &numel);
    }
    if (overflow) error("tensor of size {} has too many elements", shape_str(shape));
    if (offset < 0) error("negative storage offset {}", offset);
    Object* t = make(Kind::Tensor);
    if (numel == 0) {
      t->tensor = Tensor::empty(storage->dtype, shape);
      return t;
    }
    // The last element reached, and whether the layout is row-major (size-1 dims may have any stride).
    int64_t last = offset, row_major_stride = 1;
    bool contiguous = true;
    for (size_t d = shape.size(); d-- > 0;) {
      int64_t span = 0;
      overflow |= __builtin_mul_overflow(shape[d] - 1, strides[d], &span);
      overflow |= __builtin_add_overflow(last, span, &last);
      contiguous &= shape[d] == 1 || strides[d] == row_major_stride;
      row_major_stride *= shape[d];
    }
    const Tensor& src = storage->tensor;
    if (overflow || last >= src.numel()) {
      error("tensor of size {} and stride {} at offset {} reaches past the {} elements of storage '{}'",
            shape_str(shape), shape_str(strides), offset, src.numel(), storage->s);
    }
    if (contiguous) {
      t->tensor = src.rows(offset, offset + numel).reshape(shape);
      if (reinterpret_cast<uintptr_t>(t->tensor.raw()) % dtype_size(src.dtype()) == 0) return t;
    }
    // A copy: non-contiguous (transposed, sliced, expanded) or misaligned data.
    const int64_t bytes = static_cast<int64_t>(dtype_bytes(src.dtype(), numel));
    if (bytes > copy_budget_) {
      error("copying non-contiguous tensors would take more than the storages' size + {} bytes", kCopySlackBytes);
    }
    copy_budget_ -= bytes;
    t->tensor = copy_strided(src, offset, shape, strides);
    return t;
  }

  PyValue result(const Object* root) {
    max_values_ = 8 * arena_.size() + 4096;
    return convert(root, 0);
  }
  // Shared references are copied, so the result is bounded both in depth (also
  // catching self-references) and in total size.
  PyValue convert(const Object* o, int depth) {
    if (depth > kMaxDepth) error("containers nested more than {} deep (or self-referential)", kMaxDepth);
    if (++values_ > max_values_) error("the object expands to more than {} values through shared references", max_values_);
    PyValue v;
    switch (o->kind) {
      case Kind::None: v.kind = PyValue::Kind::None; break;
      case Kind::Bool: v.kind = PyValue::Kind::Bool; v.b = o->i != 0; break;
      case Kind::Int: v.kind = PyValue::Kind::Int; v.i = o->i; break;
      case Kind::Float: v.kind = PyValue::Kind::Float; v.f = o->f; break;
      case Kind::String: v.kind = PyValue::Kind::String; v.s = o->s; break;
      case Kind::Bytes: v.kind = PyValue::Kind::Bytes; v.s = o->s; break;
      case Kind::Tensor: v.kind = PyValue::Kind::Tensor; v.tensor = o->tensor; break;
      case Kind::List:
      case Kind::Tuple:
        v.kind = o->kind == Kind::List ? PyValue::Kind::List : PyValue::Kind::Tuple;
        for (const Object* item : o->items) v.items.push_back(convert(item, depth + 1));
        break;
      case Kind::Dict:
        v.kind = PyValue::Kind::Dict;
        for (size_t k = 0; k < o->items.size(); k += 2) {
          v.dict.push_back({convert(o->items[k], depth + 1), convert(o->items[k + 1], depth + 1)});
        }
        break;
      case Kind::Global:
      case Kind::Storage:
        error("the result holds {} '{}', which is neither a tensor nor a plain value", kind_name(o->kind), o->s);
    }
    return v;
  }

  std::string_view in_;
  size_t pos_ = 0, op_pos_ = 0;
  uint8_t op_ = 0;
  const StorageResolver& storages_;
  const std::string& where_;
  std::deque<Object> arena_;  // owns every object; containers point into it, so cycles are harmless
  std::vector<Object*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, Object*> memo_;
  std::map<std::string, Object*> storage_by_key_;
  int64_t copy_budget_ = kCopySlackBytes;
  size_t values_ = 0, max_values_ = 0;
};

// Protocol-2 pickling of the few shapes torch.save needs.
class PickleWriter {
 public:
  void op(uint8_t c) { out_ += static_cast<char>(c); }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      op('K');
      op(static_cast<uint8_t>(v));
    } else if (v >= 0 && v < 65536) {
      op('M');
      put(static_cast<uint16_t>(v));
    } else if (v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max()) {
      op('J');
      put(static_cast<int32_t>(v));
    } else {
      op(0x8a);  // LONG1
      op(8);
      put(v);
    }
  }
  void string(std::string_view s) {
    TE_CHECK(s.size() <= std::numeric_limits<uint32_t>::max(), "string too long to pickle");
    op('X');
    put(static_cast<uint32_t>(s.size()));
    out_ += s;
  }
  void global(std::string_view module, std::string_view name) {
    op('c');
    out_ += fmt::format("{}\n{}\n", module, name);
  }
  void int_tuple(const std::vector<int64_t>& values) {
    if (values.empty()) return op(')');
    if (values.size() > 3) op('(');
    for (int64_t v : values) integer(v);
    op(values.size() <= 3 ? static_cast<uint8_t>(0x84 + values.size()) : 't');
  }
  std::string& bytes() { return out_; }

 private:
  template <class T>
  void put(T v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  std::string out_;
};

std::string_view storage_name(DType dtype) {
  for (const StorageType& t : kStorageTypes) {
    if (t.dtype == dtype) return t.name;
  }
  fail("PyTorch archives cannot hold {} tensors", dtype_name(dtype));
}

}  // namespace

PyValue unpickle(std::string_view bytes, const StorageResolver& storages, const std::string& where) {
  return Unpickler(bytes, storages, where).run();
}

std::string pickle_tensors(const std::vector<std::pair<std::string, Tensor>>& tensors, bool state_dict) {
  TE_CHECK(state_dict || tensors.size() == 1, "pickling a lone tensor needs exactly one, got {}", tensors.size());
  PickleWriter w;
  w.op(0x80);
  w.op(2);
  if (state_dict) {
    w.global("collections", "OrderedDict");
    w.op(')');
    w.op('R');
    w.op('(');
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    if (state_dict) w.string(name);
    w.global("torch._utils", "_rebuild_tensor_v2");
    w.op('(');
    w.op('(');  // persistent id of the storage
    w.string("storage");
    w.global("torch", storage_name(t.dtype()));
    w.string(std::to_string(i));
    w.string("cpu");
    w.integer(t.numel());
    w.op('t');
    w.op('Q');
    w.integer(0);  // storage offset
    std::vector<int64_t> strides(t.shape().size());
    int64_t stride = 1;
    for (size_t d = strides.size(); d-- > 0;) {
      strides[d] = stride;
      stride *= t.shape()[d];
    }
    w.int_tuple(t.shape());
    w.int_tuple(strides);
    w.op(0x89);  // requires_grad = False
    w.global("collections", "OrderedDict");
    w.op(')');
    w.op('R');  // backward hooks
    w.op('t');
    w.op('R');
  }
  if (state_dict) w.op('u');
  w.op('.');
  return std::move(w.bytes());
}

}  // namespace tinyemo
