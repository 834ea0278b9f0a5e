// Speed of an LM on this machine: prefill throughput and batch-1 decode, each
// set against a physical limit measured in the same run (decode: the weight
// bytes one token reads over the measured copy bandwidth, as issue 4 defines
// the bound, and over the read bandwidth; prefill: peak f32 FMA throughput). Used by `tinyemo lm bench` and bench/lm_bench.cpp.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "models/lm/model.h"

namespace tinyemo::lm {

// Prefills `prompt_tokens` random ids (best of two runs), then decodes
// `gen_tokens` greedily from the KV cache in a few chunks, probing read and
// copy bandwidth before the prefill and after every chunk (the best probe is
// the machine's limit). Returns one JSON object with prefill_tokens_per_s,
// prefill_gflops, peak_f32_gflops, decode_tokens_per_s (all chunks),
// decode_chunk_tokens_per_s, weight_bytes_per_token, read_bandwidth_gb_s and
// copy_bandwidth_gb_s (best probes) and every probe, decode_bound_tokens_per_s
// and decode_fraction_of_bound (against the copy bandwidth), and
// decode_read_bound_tokens_per_s and decode_fraction_of_read_bound.
nlohmann::json benchmark_lm(const LmModel& model, int64_t prompt_tokens, int64_t gen_tokens);

}  // namespace tinyemo::lm
