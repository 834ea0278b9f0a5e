"""Inputs for tests/data/core/kquants.safetensors and llama.cpp's answers on
them (run by tools/make_kquant_reference.sh, which builds the C helper against
llama.cpp's prebuilt libggml-base).

Rows of 256 floats chosen to reach the quantisers' branches: Gaussian, uniform,
all-positive and all-negative blocks (the mins), heavy outliers, a constant
block, an all-zero block, tiny values (near the f16 range's bottom), huge
values, half zeros. Stored: `input` [n] f32, and per type T in q4_k, q5_k,
q6_k: `T.blocks` [bytes] u8 (quantize_row_T_ref) and `T.dequantized` [n] f32
(dequantize_row_T of those blocks); also, over a larger Gaussian set
(`error_input`, 32 super-blocks), `T.error_blocks`, the reference's blocks,
from which the test measures the error a correct quantiser must match."""
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from safetensors_io import write_safetensors  # noqa: E402

BYTES = {"q4_k": 144, "q5_k": 176, "q6_k": 210}


def rows():
    rng = np.random.default_rng(21)
    out = [
        rng.standard_normal(256),
        rng.uniform(-1, 1, 256),
        rng.uniform(0.5, 2.0, 256),            # positive only: min 0
        -rng.uniform(0.1, 3.0, 256),           # negative only
        np.where(rng.random(256) < 0.02, 40.0, 1.0) * rng.standard_normal(256),  # outliers
        np.full(256, 0.75),                    # constant
        np.zeros(256),                         # all zero
        rng.standard_normal(256) * 1e-6,       # tiny
        rng.standard_normal(256) * 3e3,        # huge
        np.where(rng.random(256) < 0.5, 0.0, rng.standard_normal(256)),
        np.concatenate([np.zeros(128), rng.standard_normal(128)]),  # zero sub-blocks
        rng.standard_normal(256) * np.repeat(np.exp(rng.uniform(-4, 2, 16)), 16),  # sub-block scales apart
    ]
    return np.concatenate(out).astype(np.float32)


def run(helper, x):
    n = x.size
    raw = subprocess.run([helper, str(n)], input=x.tobytes(), stdout=subprocess.PIPE, check=True).stdout
    out, pos = {}, 0
    for t, b in BYTES.items():
        nb = n // 256 * b
        out[t] = (np.frombuffer(raw[pos:pos + nb], dtype=np.uint8).copy(),
                  np.frombuffer(raw[pos + nb:pos + nb + 4 * n], dtype=np.float32).copy())
        pos += nb + 4 * n
    assert pos == len(raw)
    return out


def main():
    helper, path = sys.argv[1], sys.argv[2]
    x = rows()
    e = np.random.default_rng(22).standard_normal(32 * 256).astype(np.float32)
    tensors = {"input": torch.from_numpy(x), "error_input": torch.from_numpy(e)}
    for t, (blocks, deq) in run(helper, x).items():
        tensors[t + ".blocks"] = torch.from_numpy(blocks)
        tensors[t + ".dequantized"] = torch.from_numpy(deq)
    for t, (blocks, _) in run(helper, e).items():
        tensors[t + ".error_blocks"] = torch.from_numpy(blocks)
    write_safetensors(path, tensors, {"source": "llama.cpp v0.4.0 (node-llama-cpp 3.21.1) libggml-base"})


if __name__ == "__main__":
    main()
