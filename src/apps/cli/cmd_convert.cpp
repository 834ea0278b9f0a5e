// `tinyemo convert --to gguf --quant f16|q8_0|q4_0 --model DIR --out FILE.gguf`:
// a Hugging Face LM folder to one GGUF file tinyemo loads back (see
// models/lm/gguf_model.h for what the file holds).
#include <cstdio>
#include <filesystem>

#include "apps/cli/command.h"
#include "models/lm/gguf_model.h"

namespace tinyemo::cli {
namespace {

struct ConvertOptions {
  std::string to, quant, model, out;
  bool json = false;
};

const CommandRegistration kConvert("convert", [](CLI::App& root) {
  auto o = std::make_shared<ConvertOptions>();
  auto* cmd = root.add_subcommand("convert", "convert an LM checkpoint to GGUF");
  cmd->add_option("--to", o->to, "output format: gguf")->required();
  cmd->add_option("--quant", o->quant,
                  "weight matrices as f16, q8_0 or q4_0 (also f32, bf16); norms and biases stay f32")
      ->required();
  cmd->add_option("--model", o->model, "Hugging Face model folder (config.json + safetensors) or a .gguf")->required();
  cmd->add_option("--out", o->out, "output .gguf file (written atomically)")->required();
  cmd->add_flag("--json", o->json, "print a JSON summary");
  cmd->callback([o] {
    TE_CHECK(o->to == "gguf", "--to \"{}\": only gguf is supported", o->to);
    DType d;
    TE_CHECK(parse_dtype(o->quant, &d) && (d == DType::F16 || d == DType::Q8_0 || d == DType::Q4_0 ||
                                           d == DType::F32 || d == DType::BF16),
             "--quant \"{}\": expected f16, q8_0 or q4_0 (or f32, bf16)", o->quant);
    LoadOptions options;
    options.weight_dtype = d;
    options.compute_layout = false;
    const LmModel model = LmModel::load(o->model, options);
    save_lm_gguf(model, o->out);
    const nlohmann::json summary = {{"out", o->out},
                                    {"architecture", model.config().architecture},
                                    {"quant", o->quant},
                                    {"tensors", model.tensors().size()},
                                    {"bytes", std::filesystem::file_size(o->out)}};
    if (o->json) {
      print_json(summary);
    } else {
      std::printf("wrote %s (%s, %s, %zu tensors, %ju bytes)\n", o->out.c_str(), model.config().architecture.c_str(),
                  o->quant.c_str(), model.tensors().size(), static_cast<uintmax_t>(std::filesystem::file_size(o->out)));
    }
  });
});

}  // namespace
}  // namespace tinyemo::cli
