// A decoder-only LM's weights bound to their roles: LLaMA (TinyLlama), Phi
// (Phi-2) and OpenELM, with Hugging Face tensor names. Weight matrices stay as
// stored (views of the mapped checkpoint) unless LoadOptions asks for another
// dtype; norm weights and biases are held as F32.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/matmul.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "models/lm/config.h"
#include "models/lm/weights.h"

namespace tinyemo::lm {

struct LmLinear {
  Tensor weight;  // [out, in]: F32, F16, BF16, Q8_0, Q4_0 (or their interleaved Q8_0x16, Q4_0x16), Q4_K, Q5_K, Q6_K
  Tensor bias;    // [out] F32, or undefined
  bool defined() const { return weight.ndim() == 2; }
  const float* bias_data() const { return bias.ndim() == 1 ? bias.data<float>() : nullptr; }
};

struct LmNorm {
  Tensor weight;  // [dim] F32
  Tensor bias;    // [dim] F32 (LayerNorm), or undefined
  const float* bias_data() const { return bias.ndim() == 1 ? bias.data<float>() : nullptr; }
};

struct LmLayer {
  LmLayerConfig shape;
  LmNorm attn_norm;
  LmNorm mlp_norm;        // unused by Phi's parallel block
  LmLinear qkv;           // OpenELM: one projection, rows [q heads | k heads | v heads]
  LmLinear q, k, v;       // LLaMA, Phi
  LmNorm q_norm, k_norm;  // per head (config.qk_norm)
  LmLinear o;
  LmLinear gate_up;  // OpenELM proj_1: rows [gate | up], the first half goes through the activation
  LmLinear gate;     // LLaMA gate_proj
  LmLinear up;       // LLaMA up_proj; Phi fc1 (not gated)
  LmLinear down;
};

struct LoadOptions {
  // Converts every weight matrix (attention, MLP, embeddings, output) to this
  // dtype (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K); rows whose length is
  // not a multiple of 256 cannot hold k-quants and become Q8_0, rows whose
  // length is not a multiple of 32 become F16. Unset: kept as stored.
  std::optional<DType> weight_dtype;
  // A safetensors file (or index) in the model folder to read instead of
  // model.safetensors / model.safetensors.index.json.
  std::filesystem::path weights_file;
  // Rearranges quantised matrices into the layout linear() reads fastest
  // (prepare_linear_weight: Q8_0 -> Q8_0x16, Q4_0 -> Q4_0x16). Off for a model
  // that is only written back to a file.
  bool compute_layout = true;
  // How prefill (linear()'s GEMM path: 8 rows or more for quantised weights,
  // 5 for f32/16-bit) multiplies: F32, or BF16 (x and the
  // weights rounded to bf16 per call, f32 sums: ~1.8x the GEMM speed on
  // AVX512-BF16 CPUs, ~2e-3 relative per product; docs/lm.md). Decode is unchanged.
  LinearCompute prefill_compute = LinearCompute::F32;
};

// --compute / te_lm_params.compute by name: "f32" (or empty) or "bf16"; bf16 is
// refused on a CPU or build without AVX512-BF16 (it would run on scalar code).
// Throws naming `where`.
LinearCompute parse_prefill_compute(const std::string& name, const std::string& where);

class LmModel {
 public:
  // `path`: a Hugging Face model folder (config.json + model.safetensors or a
  // sharded model.safetensors.index.json) or a .gguf file written by `tinyemo convert`.
  static LmModel load(const std::filesystem::path& path, const LoadOptions& options = {});
  // Binds tensors named as in Hugging Face checkpoints, each name prefixed with
  // `prefix` (e.g. "language_model." inside a TinyLLaVA checkpoint). Checks
  // every shape against the config; fills per-layer FFN widths from the weights.
  static LmModel bind(LmConfig config, nlohmann::json hf_config, const WeightSource& weights,
                      const LoadOptions& options = {}, const std::string& prefix = "");

  const LmConfig& config() const { return config_; }
  // The config.json this model was built from (kept for GGUF export).
  const nlohmann::json& hf_config() const { return hf_config_; }
  const Tensor& token_embeddings() const { return embeddings_; }  // [vocab, hidden]
  const std::vector<LmLayer>& layers() const { return layers_; }
  const LmNorm& final_norm() const { return final_norm_; }
  const LmLinear& lm_head() const { return lm_head_; }  // weight is token_embeddings() when tied
  // Every tensor under its checkpoint name (without prefix), in binding order;
  // the tied output appears once, as the embeddings.
  const NamedTensors& tensors() const { return tensors_; }

  // Bytes one decode step reads: every matrix and vector once, one embedding row.
  int64_t weight_bytes_per_token() const;
  // Multiply-adds x2 per token through the matrices (attention scores excluded).
  int64_t matmul_flops_per_token() const;
  int64_t parameter_count() const;

  // Where this model came from (a folder or a .gguf file); tokenizer files are looked up there.
  const std::filesystem::path& source() const { return source_; }
  // LoadOptions::prefill_compute; sessions read it when they prefill.
  LinearCompute prefill_compute() const { return prefill_compute_; }
  void set_prefill_compute(LinearCompute compute) { prefill_compute_ = compute; }

 private:
  friend LmModel load_lm_gguf(const std::filesystem::path& path, const LoadOptions& options);

  LmConfig config_;
  nlohmann::json hf_config_;
  Tensor embeddings_;
  std::vector<LmLayer> layers_;
  LmNorm final_norm_;
  LmLinear lm_head_;
  NamedTensors tensors_;
  std::filesystem::path source_;
  LinearCompute prefill_compute_ = LinearCompute::F32;
};

// Converts a weight matrix to `dtype` (block types via F32, row by row, in parallel).
Tensor convert_weight(const Tensor& weight, DType dtype);

// The checkpoint tensors (names and shapes) a config implies; every layer's
// ffn_dim must be known. For building models without checkpoint files.
std::vector<std::pair<std::string, Shape>> lm_weight_shapes(const LmConfig& config);

}  // namespace tinyemo::lm
