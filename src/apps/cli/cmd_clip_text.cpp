// `tinyemo clip encode-text --model DIR --text T [--text T ...] --out OUT.safetensors`:
// CLIP's tokenizer and text tower; writes input_ids I64 [T, context] (as
// clip.tokenize) and text_embeds F32 [T, D] (unnormalised).
#include <nlohmann/json.hpp>

#include "apps/cli/clip_text.h"
#include "apps/cli/command.h"
#include "data/zero_shot.h"
#include "io/safetensors.h"

namespace tinyemo::cli {

void add_clip_encode_text(CLI::App& clip) {
  struct Opts {
    std::string model, vocab, out;
    std::vector<std::string> texts;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = clip.add_subcommand("encode-text", "run CLIP's tokenizer and text tower on texts");
  cmd->add_option("--model", o->model, "CLIP model directory or weights file (HF CLIPModel or OpenAI state dict)")
      ->required();
  cmd->add_option("--text", o->texts, "a text to encode (repeat for several)")->required();
  cmd->add_option("--vocab", o->vocab,
                  "CLIP's BPE merges (bpe_simple_vocab_16e6.txt.gz; default: that file beside the model)");
  cmd->add_option("--out", o->out, "output .safetensors: input_ids I64 [T, context], text_embeds F32 [T, D]")
      ->required();
  cmd->add_flag("--json", o->json, "print {texts, shape, model} when done");
  cmd->callback([o] {
    const data::ClipTextEncoder encoder = data::ClipTextEncoder::load(o->model, vocab_option(o->vocab));
    const data::EncodedTexts encoded = data::encode_texts(encoder, o->texts);
    write_safetensors(o->out, {{"input_ids", encoded.input_ids}, {"text_embeds", encoded.text_embeds}},
                      {{"texts", nlohmann::json(o->texts).dump()}, {"model", encoder.model.description()}});
    report_written(o->out, "input_ids " + shape_str(encoded.input_ids.shape()) + ", text_embeds " +
                               shape_str(encoded.text_embeds.shape()));
    if (o->json) {
      print_json({{"texts", o->texts},
                  {"input_ids", shape_str(encoded.input_ids.shape())},
                  {"text_embeds", shape_str(encoded.text_embeds.shape())},
                  {"model", encoder.model.description()},
                  {"out", o->out}});
    }
  });
}

}  // namespace tinyemo::cli
