#!/usr/bin/python3
"""Reference PyTorch archives for tinyemo's reader (tests/data/pytorch/), and a
check that archives tinyemo writes load in real torch.

    /usr/bin/python3 tools/make_pytorch_fixtures.py make [OUT_DIR]
        writes small torch.save archives (every dtype, views sharing a storage,
        nested containers, parameters, 0-d / empty tensors, a module state dict,
        pickle protocols 4 and 5, a deflated re-zip under an unusual folder name)
        and expected.safetensors holding each tensor's values contiguously,
        keyed "<file>:<dotted name>" (the names load_pytorch_tensors gives);
        keys "shared/<path>:<name>" hold values of files in ../shared.

    /usr/bin/python3 tools/make_pytorch_fixtures.py verify DIR
        torch.load(weights_only=True)s every DIR/*.pt that tinyemo wrote (see
        TINYEMO_PYTORCH_WRITE_DIR in tests/io/pytorch_test.cpp) and compares it
        with DIR/expected.safetensors written beside them.

Needs torch (1.13 here); tinyemo's tests never do.
"""
import collections
import json
import os
import struct
import sys
import zipfile

import torch

DTYPES = {  # torch dtype -> safetensors name
    torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        b = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    inverse = {v: k for k, v in DTYPES.items()}
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        raw = bytearray(data[8 + n + b:8 + n + end])
        dtype = inverse[e["dtype"]]
        if dtype == torch.bfloat16:
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if raw else torch.empty(0, dtype=dtype)
        else:
            t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(e["shape"])
    return out


def flatten(obj, prefix=""):
    """The (name, tensor) pairs tinyemo's load_pytorch_tensors reports."""
    join = lambda k: f"{prefix}.{k}" if prefix else str(k)
    if isinstance(obj, torch.Tensor):
        yield prefix, obj.detach()
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from flatten(v, join(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from flatten(v, join(i))


class RebuiltFromType:
    """Pickles a tensor through torch._tensor._rebuild_from_type_v2 (how torch saves tensor subclasses)."""

    def __init__(self, t):
        self.t = t

    def __reduce_ex__(self, protocol):
        t = self.t
        args = (t.storage(), t.storage_offset(), tuple(t.size()), t.stride(), False, collections.OrderedDict())
        return (torch._tensor._rebuild_from_type_v2, (torch._utils._rebuild_tensor_v2, torch.nn.Parameter, args, {}))


def make(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    expected = {}

    def save(name, obj, reference=None, **kwargs):
        path = os.path.join(out, name)
        torch.save(obj, path, **kwargs)
        for key, t in flatten(reference if reference is not None else obj):
            expected[f"{name}:{key}"] = t.contiguous().clone()

    values = torch.tensor([0.0, 1.5, -2.25, 3.0, -0.5, 100.0])
    save("dtypes.pt", {
        "f16": values.half(), "bf16": values.bfloat16(), "f32": values.reshape(2, 3), "f64": values.double() / 3,
        "i64": torch.tensor([-(2 ** 40), -1, 0, 2 ** 40]), "i32": torch.tensor([-7, 0, 2 ** 30], dtype=torch.int32),
        "i16": torch.tensor([-300, 300], dtype=torch.int16), "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255, 7], dtype=torch.uint8), "bool": torch.tensor([True, False, True]),
    })

    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    shared = torch.arange(10, dtype=torch.int64)
    save("views.pt", {
        "transposed": base.t(), "columns": base[:, 1::2], "expanded": torch.arange(3.0).expand(4, 3),
        "permuted": base.reshape(2, 3, 4).permute(2, 0, 1), "row": base[2], "half_t": base.half().t(),
        "shared_a": shared[2:6], "shared_b": shared[5:].reshape(5, 1),
    })

    save("nested.pt", {
        "list": [torch.randn(2), (torch.randn(1, 2), {"deep": torch.randn(3)})],
        "int": 7, "big": 2 ** 40, "neg": -5, "float": 2.5, "str": "hi", "none": None, "yes": True, "raw": b"x\xffy", "no_bytes": b"",
        7: torch.ones(1),
    })

    parameter = torch.nn.Parameter(torch.randn(2, 2))
    from_type = torch.randn(3)
    save("parameter.pt", {"weight": parameter, "from_type": RebuiltFromType(from_type)},
         reference={"weight": parameter, "from_type": from_type})

    save("scalar_empty.pt", {"scalar": torch.tensor(3.5), "long": torch.tensor(7), "empty": torch.zeros(0, 3),
                             "empty_half": torch.zeros(0, dtype=torch.float16)})

    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    module(torch.randn(5, 4))  # updates the running statistics and num_batches_tracked
    save("state_dict.pt", module.state_dict())

    save("feature.pt", torch.randn(8).half())  # TinyEmo's feature files: one fp16 tensor, folder named after the stem
    save("protocol4.pt", {"a": torch.randn(3), "b": [torch.arange(2)]}, pickle_protocol=4)
    save("protocol5.pt", {"a": torch.randn(2, 2).t()}, pickle_protocol=5)

    # The state dict re-zipped with deflate under an unusual folder name.
    src = zipfile.ZipFile(os.path.join(out, "state_dict.pt"))
    with zipfile.ZipFile(os.path.join(out, "deflated.pt"), "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            renamed = zipfile.ZipInfo("some.folder_name/" + info.filename.split("/", 1)[1], (2024, 1, 1, 0, 0, 0))
            renamed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(renamed, src.read(info.filename))
    for key, t in list(expected.items()):
        if key.startswith("state_dict.pt:"):
            expected["deflated.pt:" + key.split(":", 1)[1]] = t

    # Values of files in ../shared that the tests read, as torch sees them.
    shared = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
    feature = "data/emotion6-clip-vit-l-14/train/joy/" + sorted(os.listdir(os.path.join(shared, "data/emotion6-clip-vit-l-14/train/joy")))[0]
    expected[f"shared/{feature}:"] = torch.load(os.path.join(shared, feature))
    projector = torch.load(os.path.join(shared, "fixtures/tinyemo-projector/pytorch_model.bin"))
    for key in ("model.1.running_mean", "model.1.num_batches_tracked"):
        expected[f"shared/fixtures/tinyemo-projector/pytorch_model.bin:{key}"] = projector[key]

    for name in sorted({k.split(":")[0] for k in expected if not k.startswith("shared/")}):  # torch reads back what it wrote
        loaded = dict(flatten(torch.load(os.path.join(out, name))))
        for key, t in expected.items():
            if key.startswith(name + ":"):
                assert torch.equal(loaded[key.split(":", 1)[1]].contiguous(), t), key
    write_safetensors(os.path.join(out, "expected.safetensors"), expected)
    print(f"wrote {len(expected)} tensors to {out}")


def verify(folder):
    expected = read_safetensors(os.path.join(folder, "expected.safetensors"))
    files = sorted(f for f in os.listdir(folder) if f.endswith(".pt"))
    assert files, f"no .pt files in {folder}"
    checked = 0
    for name in files:
        loaded = dict(flatten(torch.load(os.path.join(folder, name), weights_only=True)))
        want = {k.split(":", 1)[1]: v for k, v in expected.items() if k.startswith(name + ":")}
        assert set(loaded) == set(want), (name, sorted(loaded), sorted(want))
        for key, t in want.items():
            assert loaded[key].dtype == t.dtype and torch.equal(loaded[key], t), (name, key)
            checked += 1
        print(f"{name}: torch.load gives the expected {len(want)} tensors")
    print(f"ok: {checked} tensors in {len(files)} files")


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    if len(sys.argv) >= 2 and sys.argv[1] == "make":
        make(sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "tests", "data", "pytorch"))
    elif len(sys.argv) == 3 and sys.argv[1] == "verify":
        verify(sys.argv[2])
    else:
        sys.exit(__doc__)
