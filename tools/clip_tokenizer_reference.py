#!/usr/bin/python3
"""Reference token ids for tinyemo's CLIP tokenizer (tests/lm/clip_tokenizer_test.cpp).

Re-implements OpenAI CLIP's simple_tokenizer.py step by step (html.unescape
twice, strip, whitespace collapse with the `regex` module's \\s, str.lower(),
its regex, byte-level BPE with </w>, clip.tokenize's start/end tokens and
truncation) over ../shared/data/bpe_simple_vocab_16e6.txt.gz. ftfy.fix_text,
which OpenAI runs first, is left out (not packaged here; tinyemo leaves it out
too); the fixture clip-zeroshot-tiny, made with the real clip.tokenize, is the
check that nothing else differs. Needs Debian's python3-regex.

    /usr/bin/python3 tools/clip_tokenizer_reference.py > tests/data/clip/clip_tokenizer_cases.json
"""
import gzip
import html
import json
import os
import struct
import sys

import regex

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared")
VOCAB = os.path.join(SHARED, "data", "bpe_simple_vocab_16e6.txt.gz")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


class Tokenizer:
    def __init__(self, path, vocab_size=49408):
        self.byte_encoder = bytes_to_unicode()
        lines = gzip.open(path).read().decode("utf-8").split("\n")
        merges = [tuple(m.split()) for m in lines[1:vocab_size - 512 - 2 + 1]]
        vocab = list(self.byte_encoder.values())
        vocab = vocab + [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {v: i for i, v in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.pat = regex.compile(
            r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE)

    def bpe(self, token):
        if token in ("<|startoftext|>", "<|endoftext|>"):
            return [token]
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return word

    @staticmethod
    def clean(text):
        text = html.unescape(html.unescape(text)).strip()
        return regex.sub(r"\s+", " ", text).strip().lower()

    def encode(self, text):
        ids = []
        for token in regex.findall(self.pat, self.clean(text)):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(token))
        return ids

    def tokenize(self, text, context=77):
        ids = [self.encoder["<|startoftext|>"]] + self.encode(text) + [self.encoder["<|endoftext|>"]]
        if len(ids) > context:
            ids = ids[:context]
            ids[-1] = self.encoder["<|endoftext|>"]
        return ids


CASES = [
    "a photo of a dog", "A SCENE evoking Fear to viewers!", "surprise, surprise: it's 5 o'clock",
    "café déjà vu", "  spaced   out  text  ",
    "Fish &amp; chips &amp;amp; more", "&lt;3 &gt; &quot;quoted&quot; &apos;x&apos;", "&notit; &notin; &amp &ampx",
    "&#x1F600; &#128512; &#0; &#128; &#x80; &#xD800; &#99999999; &#65;&#x42;c", "& alone &; &#; &#x; &#xyz",
    "\u00c9COLE \u0130stanbul STRASSE Stra\u00dfe", "\u039f\u0394\u039f\u03a3 \u03a3\u039f\u03a6\u039f\u03a3 \u03a3",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u4e2d\u6587", "emoji \U0001F600\U0001F389 and \u2764\ufe0f",
    "12345 3.14 1,000", "we're they'll I'D you've I'm can't it'd", "O'NEIL's rock'n'roll ''s",
    "<|endoftext|> hi", "hi!<|endoftext|> <|startoftext|>x", "tab\there\nnew\u00a0nbsp\u3000ideo\u2028ls \u001c fs",
    "\u001ccontrol\u001f", "x" * 300, " ".join(["word"] * 100), "", "   ",
    "e\u0301 combining", "ﬁne ligature", "fullwidth \uff21\uff22\uff23",
    "\u2018curly\u2019 \u201cquotes\u201d", "mixed-case HeLLo WoRLD", "punct!!! ... ??? ---",
]


def fixture_texts():
    path = os.path.join(SHARED, "fixtures", "clip-zeroshot-tiny", "io.safetensors")
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    texts = json.loads(header["__metadata__"]["texts"])
    meta = header["input_ids"]
    start, end = meta["data_offsets"]
    flat = struct.unpack(f"<{(end - start) // 8}q", data[start:end])
    rows = [list(flat[i * 77:(i + 1) * 77]) for i in range(len(texts))]
    return texts, rows


def main():
    tok = Tokenizer(VOCAB)
    texts, rows = fixture_texts()
    for text, row in zip(texts, rows):
        mine = tok.tokenize(text)
        mine += [0] * (77 - len(mine))
        assert mine == row, (text, mine, row)
    cases = [{"text": t, "cleaned": Tokenizer.clean(t), "ids": tok.tokenize(t)} for t in CASES]
    json.dump({"source": "tools/clip_tokenizer_reference.py (OpenAI simple_tokenizer without ftfy)",
               "context_length": 77, "cases": cases}, sys.stdout, ensure_ascii=True, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
