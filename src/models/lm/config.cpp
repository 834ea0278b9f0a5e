#include "models/lm/config.h"

#include <climits>

#include "models/lm/arch/arch.h"

namespace tinyemo::lm {

namespace {

int32_t token_id(const JsonObject& c, const std::string& key, const nlohmann::json& v) {
  const int64_t id = arch::fields::integer(c, key, v);
  TE_CHECK(id >= -1 && id <= INT32_MAX, "{}: field \"{}\" = {} is not a token id", c.where(), key, id);
  return static_cast<int32_t>(id);
}

void read_special_ids(const JsonObject& c, LmConfig* cfg) {
  if (c.has("bos_token_id")) cfg->bos_id = token_id(c, "bos_token_id", c.json().at("bos_token_id"));
  if (c.has("eos_token_id")) {
    // One id or a list (LLaMA-3 style); ids past the vocabulary are kept (small
    // test models carry the real tokenizer's ids) and can never be generated.
    const auto& e = c.json().at("eos_token_id");
    if (e.is_array()) {
      for (const auto& v : e) cfg->eos_ids.push_back(token_id(c, "eos_token_id", v));
    } else {
      cfg->eos_ids = {token_id(c, "eos_token_id", e)};
    }
  }
}

}  // namespace

std::string_view lm_arch_name(LmArch a) { return arch::of(a).name; }
std::string_view lm_context_field(LmArch a) { return arch::of(a).context_field; }

LmConfig parse_lm_config(const JsonObject& c) {
  LmConfig cfg;
  cfg.where = c.where();
  TE_CHECK(c.has("architectures"), "{}: missing field \"architectures\"", c.where());
  const auto archs = c.get<std::vector<std::string>>("architectures");
  TE_CHECK(archs.size() == 1, "{}: field \"architectures\" must name exactly one class, got {}", c.where(),
           archs.size());
  cfg.architecture = archs[0];
  const arch::Architecture* family = arch::find(cfg.architecture);
  if (family == nullptr) {
    std::string known;
    for (const arch::Architecture* a : arch::all()) known += (known.empty() ? "" : ", ") + std::string(a->hf_class);
    fail("{}: architecture \"{}\" is not supported ({})", c.where(), cfg.architecture, known);
  }
  cfg.arch = family->id;
  family->parse(c, &cfg);
  TE_CHECK(cfg.rotary_dim > 0 && cfg.rotary_dim % 2 == 0 && cfg.rotary_dim <= cfg.head_dim,
           "{}: the rotary dimension {} must be even and in (0, head_dim = {}]", c.where(), cfg.rotary_dim,
           cfg.head_dim);
  read_special_ids(c, &cfg);
  return cfg;
}

}  // namespace tinyemo::lm
