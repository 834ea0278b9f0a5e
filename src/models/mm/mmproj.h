// llama.cpp's "mmproj" GGUF: the vision tower and the projector of a
// LLaVA-style model, as llama.cpp's tools/mtmd reads it (clip.cpp, graph
// models/llava.cpp) and its legacy-models/convert_image_encoder_to_gguf.py
// writes it. Paired with an LM GGUF in llama.cpp's layout (lm/gguf_model.h),
// it holds a TinyLLaVA model whose parts llama.cpp's llava graph can express:
//
//   general.architecture "clip", clip.has_vision_encoder true,
//   clip.has_llava_projector true, clip.projector_type "mlp";
//   clip.vision.{image_size, patch_size, embedding_length, feed_forward_length,
//     block_count, attention.head_count, attention.layer_norm_epsilon,
//     projection_dim (the projector's output width; unused by the llava graph),
//     image_mean, image_std, feature_layer ([k]: the hidden state TinyLLaVA
//     reads, 0 the embeddings, k the output of block k; only blocks 0..k-1 are
//     written and run), image_aspect_ratio ("pad" / "square": TinyLLaVA's, read
//     by tinyemo, ignored by llama.cpp)};
//   clip.use_gelu (true: the tower's gelu_pytorch_tanh, false: quick_gelu);
//   tensors v.patch_embd.weight [hidden, 3, p, p], v.patch_embd.bias (SigLIP),
//     v.class_embd (CLIP), v.position_embd.weight, v.pre_ln.* (CLIP),
//     v.blk.N.{attn_q, attn_k, attn_v, attn_out, ln1, ln2, ffn_down, ffn_up},
//     mm.0.*, mm.2.*. Blocks carry fc1 as ffn_down and fc2 as ffn_up, the
//     converter's naming, which clip.cpp recognises by ffn_down's width and
//     swaps back for every size (the other naming is swapped by mistake when
//     intermediate_size == hidden_size). Norms, biases and embeddings are F32.
//
// Refused by name (llama.cpp's llava graph would compute something else):
// connectors other than mlp2x_gelu (the graph runs mm.0, GELU, mm.2: a lone
// mm.0 gets a GELU no TinyLLaVA connector has), cls_patch on a CLIP tower and
// patch on a SigLIP tower (the graph drops the class token and nothing else),
// the exact-erf GELU in the tower (use_gelu runs the tanh approximation),
// feature layer 0, towers of other than 3 channels. llama.cpp's own GELU in
// the projector is ggml_gelu (tanh approximation); tinyemo runs the exact GELU
// TinyLLaVA trained with.
#pragma once

#include <filesystem>

#include "core/dtype.h"

namespace tinyemo::mm {

class TinyLlavaModel;

// Writes `model`'s vision tower (the blocks up to its feature layer) and
// connector as an mmproj file, atomically. Matrices in `matrix_dtype` (F32 or
// F16, as llama.cpp's converter offers). Throws naming the setting llama.cpp
// cannot express. Returns the number of tensors written.
size_t save_mmproj_gguf(const TinyLlavaModel& model, const std::filesystem::path& out, DType matrix_dtype);

}  // namespace tinyemo::mm
