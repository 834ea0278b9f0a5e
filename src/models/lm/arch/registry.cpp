// The families tinyemo runs. Adding one: a file arch/<family>.cpp defining its
// Architecture, an LmArch value, and a line here (docs/lm.md, "Adding an
// architecture").
#include "models/lm/arch/arch.h"

namespace tinyemo::lm::arch {

const std::vector<const Architecture*>& all() {
  static const std::vector<const Architecture*> families = {&kLlama, &kPhi, &kOpenElm, &kQwen2, &kGemma};
  return families;
}

const Architecture& of(LmArch id) {
  for (const Architecture* a : all())
    if (a->id == id) return *a;
  fail("LM architecture id {} has no family entry", static_cast<int>(id));
}

const Architecture* find(std::string_view hf_class) {
  for (const Architecture* a : all())
    if (a->hf_class == hf_class) return a;
  return nullptr;
}

const Architecture* find_gguf(std::string_view gguf_name) {
  for (const Architecture* a : all())
    if (a->gguf_name == gguf_name) return a;
  return nullptr;
}

}  // namespace tinyemo::lm::arch
