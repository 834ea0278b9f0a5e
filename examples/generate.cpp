// generate: streams an LM's continuation of a prompt with the C++ wrappers.
//
//   generate MODEL_DIR "prompt" [max-new-tokens] [--tokenizer PATH]
//
// Greedy decoding; the text appears as it is generated.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include <tinyemo.hpp>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR PROMPT [MAX_NEW_TOKENS] [--tokenizer PATH]\n", argv[0]);
    return 1;
  }
  te_lm_params params = te_lm_default_params();
  int max_new = 64;
  for (int i = 3; i < argc; ++i) {
    if (std::strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) {
      params.tokenizer = argv[++i];
    } else {
      max_new = std::atoi(argv[i]);
    }
  }
  try {
    te::Lm lm = te::Lm::load(argv[1], params);
    te::Session session(lm);
    te_generate_params g = te_generate_default_params();
    g.max_new_tokens = max_new;
    const te::Generation out = session.generate(lm.tokenize(argv[2]), g, [](std::string_view piece) {
      std::cout << piece << std::flush;
      return true;
    });
    std::cout << "\n";
    std::fprintf(stderr, "%d tokens in %.3f s (prompt %.3f s)\n", out.result.n_generated,
                 out.result.generate_seconds, out.result.prompt_seconds);
  } catch (const te::Error& e) {
    std::fprintf(stderr, "generate: %s\n", e.what());
    return 1;
  }
  return 0;
}
