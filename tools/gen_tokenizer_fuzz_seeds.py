#!/usr/bin/env python3
"""Seeds for fuzz/tokenizer_json_fuzz.cpp: small byte-level tokenizer.json files
cut from GPT-2's (the 256 byte tokens, the first merges and the tokens they
make), each followed by a NUL byte and a text to encode (the fuzz target's
input format).

    python3 tools/gen_tokenizer_fuzz_seeds.py ../shared/fixtures/gpt2-bpe fuzz/corpus/tokenizer_json
"""
import json
import os
import sys


def subset(folder, n_merges):
    with open(f"{folder}/tokenizer.json", encoding="utf-8") as f:
        full = json.load(f)
    vocab = full["model"]["vocab"]
    merges = full["model"]["merges"][:n_merges]
    keep = {tok: i for tok, i in vocab.items() if i < 256}
    for rule in merges:
        a, b = rule.split(" ")
        keep[a + b] = vocab[a + b]
    ids = {tok: new for new, tok in enumerate(sorted(keep, key=keep.get))}
    eot = len(ids)
    ids["<|endoftext|>"] = eot
    doc = dict(full)
    doc["model"] = dict(full["model"], vocab=ids, merges=merges)
    doc["added_tokens"] = [dict(full["added_tokens"][0], id=eot)]
    return doc


def main():
    folder, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    text = "Hello world! It's 2024 \u2014 na\u00efve caf\u00e9 \U0001F600<|endoftext|>  runs   of\n\nspaces"
    plain = subset(folder, 60)
    pairs = subset(folder, 30)
    pairs["model"]["merges"] = [r.split(" ") for r in pairs["model"]["merges"]]
    pairs["pre_tokenizer"]["add_prefix_space"] = True
    pairs["added_tokens"].append({"id": len(pairs["model"]["vocab"]), "content": "[X]", "single_word": True,
                                  "lstrip": True, "rstrip": True, "normalized": True, "special": False})
    pairs["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [pairs["added_tokens"][0]["id"]],
                                             "tokens": ["<|endoftext|>"]}},
    }
    for name, doc in (("strings_merges", plain), ("pair_merges_template", pairs)):
        with open(os.path.join(out, name), "wb") as f:
            f.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
            f.write(b"\0" + text.encode("utf-8"))


if __name__ == "__main__":
    main()
