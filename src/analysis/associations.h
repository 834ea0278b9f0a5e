// Embedding-association audit of an LM without training: where do two sets of
// target terms (e.g. terms for two groups of people) sit relative to the
// emotion labels, in the label-embedding space the Metric Projector targets
// (the LM's input embeddings; the anchor of a text is the mean of its tokens'
// embedding rows, BOS included as TinyEmo's anchors do)?
//
// For each emotion, a WEAT (weat.h) with the label's anchor against the other
// labels' anchors ("anger vs the rest"), and on request for every label pair
// (15 more tests for 6 labels, each answering a narrower question);
// Benjamini-Hochberg over all tests; per target set the labels ranked by mean
// cosine; flags for tests with adjusted p < alpha and |d| > min_effect.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "analysis/weat.h"
#include "models/lm/model.h"
#include "models/lm/tokenizer.h"

namespace tinyemo::analysis {

// A word list: one term (word or phrase) per line; blank lines and lines
// starting with '#' are skipped; a line `ids: 12 7 305` gives token ids
// directly (pre-tokenised, used as is). Duplicates are dropped with a warning.
struct TermList {
  std::string name;    // the file's stem
  std::string source;  // the path, for messages
  std::vector<std::string> terms;
  std::vector<std::vector<int32_t>> given_ids;  // per term; empty = tokenise the text
  std::vector<std::string> warnings;
};
TermList parse_term_list(std::string_view text, const std::string& source, const std::string& name);
TermList load_term_list(const std::filesystem::path& path);

struct EmbeddedTerms {
  Vectors vectors;
  std::vector<std::vector<int32_t>> ids;
};
// Anchors of the terms: the mean embedding row of each term's tokens. Text is
// tokenised with add_special = `with_bos` (prepending BOS where the tokenizer
// does); `tokenizer` may be null when every term gives its ids.
// `template_text` ("{label}", "a scene evoking {label} to viewers") wraps each text.
EmbeddedTerms embed_terms(const lm::LmModel& model, const lm::Tokenizer* tokenizer, const TermList& terms, bool with_bos,
                          std::string_view template_text = "{label}");

struct AssociationOptions {
  WeatOptions weat;
  double alpha = 0.01;
  double min_effect = 0.5;  // |d|; 0.2 / 0.5 / 0.8 are Cohen's small / medium / large
  bool label_pairs = false;  // also every label pair, not only each label vs the rest
};

struct AssociationInput {
  TermList x, y, labels;
  EmbeddedTerms x_vectors, y_vectors, label_vectors;
  std::string template_text = "{label}";
};

// The full result as JSON (tests, rankings, flags, warnings); `inputs` is copied in.
nlohmann::json run_associations(const AssociationInput& input, const AssociationOptions& options,
                                const nlohmann::json& inputs);

}  // namespace tinyemo::analysis
