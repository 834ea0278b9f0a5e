// The LM's input side: token embedding rows, sequences with rows spliced in
// (how image features enter, e.g. TinyLLaVA's connector output at its -200
// placeholder), and TinyEmo's label anchors. Used by the projector and bias
// code as well as by generation.
//
// Every row here is the embedding layer's raw row, as
// model.get_input_embeddings()(ids) gives in transformers. A model's own input
// scale (Gemma's sqrt(hidden_size), LmConfig::embedding_scale) is not in them:
// LmSession::forward applies it to every row it is given, token and inserted
// rows alike, as GemmaModel does to inputs_embeds. Label anchors stay unscaled,
// as TinyEmo's anchors (means of get_input_embeddings()(ids)) are.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "models/lm/model.h"
#include "models/lm/tokenizer.h"

namespace tinyemo::lm {

// The input embedding table [vocab, hidden] as stored (any weight dtype;
// Tensor::row(i).to_f32_vector() or embed_tokens give F32 rows).
inline const Tensor& input_embedding_table(const LmModel& model) { return model.token_embeddings(); }

// F32 [ids.size(), hidden]; ids outside [0, vocab) are refused.
Tensor embed_tokens(const LmModel& model, std::span<const int32_t> ids);

// F32 rows of `ids` where the k-th occurrence of `placeholder` is replaced by
// all rows of inserted[k] ([n_k, hidden], any float dtype). The count of
// placeholders must equal inserted.size().
Tensor embed_with_inserted(const LmModel& model, std::span<const int32_t> ids, int32_t placeholder,
                           const std::vector<Tensor>& inserted);

// TinyEmo's label anchor for `text`: the mean of the embedding rows of
// tokenizer.encode(text, add_special = true), BOS included where the tokenizer
// adds one (as `tokenizer(text).input_ids` does). F32 [hidden].
Tensor label_anchor(const LmModel& model, const Tokenizer& tokenizer, std::string_view text);
// The same from ids already tokenised.
Tensor mean_embedding(const LmModel& model, std::span<const int32_t> ids);

}  // namespace tinyemo::lm
