// Metric losses between projected image embeddings and label anchors, with
// their gradients. TinyEmo compares each image embedding u_i (L2-normalised)
// with text_embds[j] = the normalised anchor of sample j's label, so every
// similarity it uses is an entry of the cosine matrix
//   C[i, l] = u_i . anchor_l        [B, L]
// and each loss here is a function of C and the labels; the chain back to u
// and to the anchors is two small products (dU = dC A, dA = dC^T U).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tinyemo::projector {

enum class LossKind {
  // TinyEmo's pos_neg_infoNCE (utils.py, temperature 0.1), as written: the
  // logits list is [pos, negatives in batch order]; the "positive" mass sums
  // its first P entries, P = number of other same-label samples in the batch.
  InfoNCE,
  // torch.nn.CosineEmbeddingLoss(margin=0.5) with target +1: mean(1 - cos).
  Cosine,
  // pytorch_metric_learning NTXentLoss(temperature=0.07) called as TinyEmo
  // does (embeddings=images, ref_emb=label embeddings, ref_labels=labels, the
  // same tensor): every (i, j != i) pair with equal labels is a positive,
  // every (i, k) with different labels a negative of i; mean over positive pairs.
  NTXent,
  // Softmax cross-entropy over the label anchors (logits C / temperature),
  // with optional label smoothing: tinyemo's own loss for `--recipe best`.
  SoftmaxCE,
};

std::string_view loss_name(LossKind kind);
// "infonce", "cosine", "ntxent", "ce"; throws naming the value otherwise.
LossKind parse_loss(std::string_view name);
// The temperature TinyEmo uses with each loss (0.1 InfoNCE, 0.07 NT-Xent).
double default_temperature(LossKind kind);

struct LossSpec {
  LossKind kind = LossKind::InfoNCE;
  double temperature = 0.1;
  double label_smoothing = 0.0;  // SoftmaxCE only
};

// Loss of one batch from its cosine matrix cos [B, L] and labels [B] (values
// in [0, L)); writes dLoss/dcos into dcos [B, L] when not null. A batch where
// the loss is undefined (no positive/negative pair) gives 0 and zero gradients,
// as TinyEmo's code does.
template <class T>
T loss_from_cosines(const LossSpec& spec, const T* cos, const int64_t* labels, int64_t B, int64_t L, T* dcos);

template <class T>
struct EmbeddingLossBuffers {
  std::vector<T> u, a, cos, dcos, du, da;  // sized on use
};

// The whole chain TinyEmo's step() runs after the projector: normalise the
// projector outputs z [B, H] and the anchors [L, H], take the cosine matrix and
// the loss. Writes dLoss/dz into dz [B, H] and, when not null, dLoss/danchors
// into danchors [L, H] (learned anchors).
template <class T>
T embedding_loss(const LossSpec& spec, const T* z, const T* anchors, const int64_t* labels, int64_t B, int64_t L,
                 int64_t H, T* dz, T* danchors, EmbeddingLossBuffers<T>& buffers);

}  // namespace tinyemo::projector
