// The pre-LayerNorm transformer block CLIP's two towers share (OpenAI's
// ResidualAttentionBlock / HF's CLIPEncoderLayer):
//   x += out_proj(attention(ln_1(x)));  x += fc2(act(fc1(ln_2(x))))
// with an optional causal mask (the text tower). Both checkpoint layouts of a
// block are read here: HF's separate q/k/v projections and OpenAI's fused
// nn.MultiheadAttention in-projection (viewed in place, not copied).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/clip/checkpoint.h"
#include "models/clip/config.h"

namespace tinyemo::clip {

struct LayerWeights {
  Tensor q, k, v, out, fc1, fc2;  // [out, in] matrices, as stored
  std::vector<float> q_bias, k_bias, v_bias, out_bias, fc1_bias, fc2_bias;
  std::vector<float> ln1_weight, ln1_bias, ln2_weight, ln2_bias;
};

struct EncoderShape {
  int64_t hidden = 0, heads = 0, intermediate = 0;
  float layer_norm_eps = 1e-5f;
  Activation activation = Activation::QuickGelu;
  bool causal = false;  // each token sees only itself and the tokens before it (text tower)
};

// Activations one block needs, sized for `rows` tokens and reused across blocks.
struct EncoderScratch {
  void resize(int64_t rows, const EncoderShape& shape);
  std::vector<float> h, q, k, v, attn, mlp;
};

// One block in place on `x`: the sequences `sequence_lengths` (tokens each)
// stored one after the other, hidden floats per token. Attention never
// crosses from one sequence into another.
void encoder_block(const LayerWeights& layer, const EncoderShape& shape, const std::vector<int64_t>& sequence_lengths,
                   float* x, EncoderScratch& scratch);

// Row-parallel helpers the towers use around their blocks.
void layer_norm_rows(const float* x, int64_t rows, int64_t cols, const std::vector<float>& weight,
                     const std::vector<float>& bias, float eps, float* out);
void add_rows(float* y, const float* x, int64_t rows, int64_t cols);

// Block `layer_prefix` ("...encoder.layers.3." or "...resblocks.3.") of a
// checkpoint in `layout`, every tensor checked for presence, shape [hidden /
// intermediate] and dtype (F32/F16/BF16); `tower` ("CLIP text tower described
// by config.json") completes the error messages.
enum class CheckpointLayout : uint8_t { HuggingFace, OpenAI };
LayerWeights read_encoder_layer(const CheckpointTensors& tensors, CheckpointLayout layout,
                                const std::string& layer_prefix, int64_t hidden, int64_t intermediate,
                                const std::string& tower);
// A tensor as read_encoder_layer checks it (present, `shape`, F32/F16/BF16).
const Tensor& require_weight(const CheckpointTensors& tensors, const std::string& name, const Shape& shape,
                             const std::string& tower);

// Number of numbered children under `prefix` ("transformer.resblocks."):
// the largest index + 1.
int64_t count_numbered(const CheckpointTensors& tensors, const std::string& prefix);

}  // namespace tinyemo::clip
