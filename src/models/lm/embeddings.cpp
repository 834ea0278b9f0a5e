#include "models/lm/embeddings.h"

namespace tinyemo::lm {

namespace {

void check_id(const LmModel& model, int32_t id, size_t position) {
  TE_CHECK(id >= 0 && id < model.config().vocab, "token id {} at position {} is outside the vocabulary [0, {})", id,
           position, model.config().vocab);
}

}  // namespace

Tensor embed_tokens(const LmModel& model, std::span<const int32_t> ids) {
  const int64_t H = model.config().hidden;
  Tensor out = Tensor::empty(DType::F32, {static_cast<int64_t>(ids.size()), H});
  float* dst = out.mutable_data<float>();
  for (size_t t = 0; t < ids.size(); ++t) {
    check_id(model, ids[t], t);
    model.token_embeddings().row_to_f32(ids[t], dst + t * H);
  }
  return out;
}

Tensor embed_with_inserted(const LmModel& model, std::span<const int32_t> ids, int32_t placeholder,
                           const std::vector<Tensor>& inserted) {
  const int64_t H = model.config().hidden;
  int64_t rows = 0;
  size_t used = 0;
  for (int32_t id : ids) {
    if (id != placeholder) {
      ++rows;
      continue;
    }
    TE_CHECK(used < inserted.size(), "{} placeholders ({}) in the ids but only {} inserted tensors", used + 1,
             placeholder, inserted.size());
    const Tensor& t = inserted[used++];
    TE_CHECK(t.ndim() == 2 && t.dim(1) == H, "inserted embeddings #{} have shape {}, expected [n, {}]", used - 1,
             shape_str(t.shape()), H);
    rows += t.dim(0);
  }
  TE_CHECK(used == inserted.size(), "{} inserted tensors but {} placeholders ({}) in the ids", inserted.size(), used,
           placeholder);
  Tensor out = Tensor::empty(DType::F32, {rows, H});
  float* dst = out.mutable_data<float>();
  size_t k = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] == placeholder) {
      const Tensor& e = inserted[k++];
      convert(e.dtype(), e.raw(), DType::F32, dst, e.numel());
      dst += e.numel();
    } else {
      check_id(model, ids[t], t);
      model.token_embeddings().row_to_f32(ids[t], dst);
      dst += H;
    }
  }
  return out;
}

Tensor mean_embedding(const LmModel& model, std::span<const int32_t> ids) {
  TE_CHECK(!ids.empty(), "mean embedding of an empty token sequence");
  const Tensor rows = embed_tokens(model, ids);
  const int64_t H = model.config().hidden, T = rows.dim(0);
  std::vector<double> sum(static_cast<size_t>(H), 0.0);
  const float* r = rows.data<float>();
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c = 0; c < H; ++c) sum[c] += r[t * H + c];
  }
  Tensor out = Tensor::empty(DType::F32, {H});
  for (int64_t c = 0; c < H; ++c) out.mutable_data<float>()[c] = static_cast<float>(sum[c] / T);
  return out;
}

Tensor label_anchor(const LmModel& model, const Tokenizer& tokenizer, std::string_view text) {
  const std::vector<int32_t> ids = tokenizer.encode(text, /*add_special=*/true);
  TE_CHECK(!ids.empty(), "label anchor: \"{}\" encodes to no tokens", text);
  return mean_embedding(model, ids);
}

}  // namespace tinyemo::lm
