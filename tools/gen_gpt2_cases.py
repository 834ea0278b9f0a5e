#!/usr/bin/env python3
"""Expected GPT-2 token ids for tests/data/tokenizers/gpt2_hard_cases.json.

The reference is OpenAI's GPT-2 encoder algorithm (gpt-2/src/encoder.py:
bytes_to_unicode, the pre-tokenizer regex run by the third-party `regex`
module, bpe() merging the lowest-ranked pair everywhere per pass) written out
again here over ../shared/fixtures/gpt2-bpe/{vocab.json,merges.txt}. Before
writing anything it checks itself against cases.json (ids produced by
OpenAI's own encoder) and checks that, for every character of every text, the
`regex` module's \\p{L}, \\p{N} and \\s agree with the Unicode 14.0 tables
tinyemo is built with (tools/gen_unicode_tables.py), so the expected ids do
not depend on the Unicode version of either side.

Needs the `regex` module, which Debian's /usr/bin/python3 lacks; the pyenv
python3 on the team machine has it:

    python3 tools/gen_gpt2_cases.py ../shared/fixtures/gpt2-bpe \\
        > tests/data/tokenizers/gpt2_hard_cases.json
"""
import json
import sys
import unicodedata

import regex

PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
ENDOFTEXT = "<|endoftext|>"
# White_Space outside ASCII, as tinyemo's bpe_pretokenizer.cpp lists it.
WHITE_SPACE = {0x9, 0xA, 0xB, 0xC, 0xD, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000}
WHITE_SPACE |= set(range(0x2000, 0x200B))


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class Gpt2Encoder:
    def __init__(self, folder):
        with open(f"{folder}/vocab.json", encoding="utf-8") as f:
            self.encoder = json.load(f)
        self.decoder = {v: k for k, v in self.encoder.items()}
        with open(f"{folder}/merges.txt", encoding="utf-8") as f:
            lines = f.read().split("\n")[1:-1]  # as encoder.py: drop the #version line and the final ""
        self.bpe_ranks = {tuple(line.split()): i for i, line in enumerate(lines)}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            bigram = min(pairs, key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
        self.cache[token] = word
        return word

    def encode(self, text):
        ids = []
        for token in regex.findall(PATTERN, text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(token))
        return ids

    def decode(self, ids):
        text = "".join(self.decoder[i] for i in ids)
        return bytearray(self.byte_decoder[c] for c in text).decode("utf-8")


def check_unicode_agreement(text):
    for ch in text:
        cat = unicodedata.category(ch)
        pairs = [(r"\p{L}", cat.startswith("L")), (r"\p{N}", cat.startswith("N")), (r"\s", ord(ch) in WHITE_SPACE)]
        for prop, ours in pairs:
            theirs = regex.fullmatch(prop, ch) is not None
            if theirs != ours:
                sys.exit(f"U+{ord(ch):04X}: regex {prop} says {theirs}, Unicode {unicodedata.unidata_version} tables say {ours}")


HARD_TEXTS = [
    # Letters of other scripts, titlecase/modifier letters, letters outside the BMP.
    "Ελληνικά κείμενα και Привет, мир!",
    "日本語のテキストと한국어 텍스트",
    "עברית والعربية नमस्ते",
    "ǅemal ʰaspirated ꟹ",
    "𝒜𝓁𝓅𝒽𝒶 and 𐍈 and 𝟘𝟙𝟚",
    "e\u0301cole vs \u00e9cole (combining accent is not a letter)",
    # Numbers: decimal digits of other scripts, letter-numbers, other numbers.
    "٣٤٥ and ١٢٣ and １２３",
    "Ⅻ Ⅳ ½ ¾ ² ³ ① ⑩",
    "1234567890 -42 +3.5e-10 0x1F 1,000,000.00",
    "version 2.10.3-rc1 on 2024-05-09T12:00:00Z",
    # Emoji: modifiers, ZWJ sequences, flags, variation selectors.
    "👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ ✨🔥💯",
    "I feel 😢 but also 😂😂😂!",
    # Contractions: only lower-case ASCII ones split; curly apostrophes do not.
    "don't I'm we're they've she'll he'd it's",
    "DON'T I'M WE'RE rock'n'roll l'amour ''quoted'' 'tis",
    "it\u2019s a curly apostrophe, isn\u2019t it?",
    "'s 't 're 've 'm 'll 'd",
    # Whitespace runs and newlines.
    "a  b   c    d",
    "   leading and trailing   ",
    "tabs\t\tand\t mixed \t whitespace",
    "line1\nline2\r\nline3\n\n\nend\n",
    " \n \n\n  \n",
    "non\u00a0breaking\u3000ideographic\u2028line\u2029para\u2003em",
    "zero\u200bwidth\ufeffbom are not whitespace",
    "\x00\x01\x1f control \x7f characters \x1c\x1d\x1e",
    "    ",
    "\n",
    "x",
    # Code and punctuation.
    "def f(x):\n    return x**2  # square\n\n\nprint(f(3))\n",
    "https://example.com/path?q=a&b=c#frag",
    "!!!???... --- *** ((([[[{{{}}}]]])))",
    'He said: "I can\'t"\u2014and left\u2026',
    # Long pieces: beyond the BPE cache's piece limit and many merges.
    "pneumonoultramicroscopicsilicovolcanoconiosis supercalifragilisticexpialidocious",
    "a" * 300,
    "9" * 257,
    "ab" * 150 + " " + "=" * 200,
    "The image shows a crowd cheering at a concert; the bright lights and raised hands convey excitement and joy.",
]

# Hugging Face splits <|endoftext|> out as its id before BPE (OpenAI's encoder
# would spell it with pieces); the stretches between are encoded on their own.
SPECIAL_TEXTS = [
    "<|endoftext|>",
    "Hello<|endoftext|>world",
    "end of one document.<|endoftext|>Start of the next",
    "<|endoftext|><|endoftext|> two in a row",
    "trailing spaces   <|endoftext|>   leading spaces",
    "<|endoftext|", "not special: <|endoftext |>",
]


def random_pretokenizer_texts(count, seed=1234):
    """Random strings over the characters the regex distinguishes: ASCII and
    non-ASCII letters, numbers, whitespace (U+0020 and others), apostrophes and
    contraction letters, punctuation, emoji and format characters."""
    import random
    rng = random.Random(seed)
    pool = list(" " * 8 + "'" * 4 + "stremvld" * 2 + "\t\n\r\x0b\x0c") + [
        "a", "Z", "é", "ß", "Ж", "日", "ǅ", "ʰ", "𝒜", "0", "7", "٣", "Ⅻ", "½", "１", "𐍈",
        "\u00a0", "\u3000", "\u2028", "\u0085", "\u2009", "\u200b", "\ufeff", "\u0301",
        ".", ",", "!", "-", "_", "#", "\u2019", "\u2014", "😀", "👍🏽", "\x00", "\x1c",
    ]
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 40))) for _ in range(count)]


def main():
    folder = sys.argv[1]
    enc = Gpt2Encoder(folder)
    with open(f"{folder}/cases.json", encoding="utf-8") as f:
        for case in json.load(f):
            got = enc.encode(case["text"])
            if got != case["ids"]:
                sys.exit(f"reference disagrees with cases.json on {case['text']!r}: {got} != {case['ids']}")
    cases = []
    for text in HARD_TEXTS:
        check_unicode_agreement(text)
        ids = enc.encode(text)
        assert enc.decode(ids) == text
        cases.append({"text": text, "pieces": regex.findall(PATTERN, text), "ids": ids})
    special = []
    for text in SPECIAL_TEXTS:
        check_unicode_agreement(text)
        ids = []
        for i, part in enumerate(text.split(ENDOFTEXT)):
            if i:
                ids.append(enc.encoder[ENDOFTEXT])
            ids.extend(enc.encode(part))
        special.append({"text": text, "ids": ids})
    pretokenizer = []
    for text in random_pretokenizer_texts(300):
        check_unicode_agreement(text)
        pretokenizer.append({"text": text, "pieces": regex.findall(PATTERN, text), "ids": enc.encode(text)})
    out = {
        "generator": "tools/gen_gpt2_cases.py (OpenAI encoder.py algorithm, regex " + regex.__version__ + ")",
        "unicode": unicodedata.unidata_version,
        "cases": cases,
        "special_cases": special,
        "random_cases": pretokenizer,
    }
    # One case per line: small, and diffs show which case changed.
    lines = ["{"]
    for key, value in out.items():
        if isinstance(value, list):
            body = ",\n".join("  " + json.dumps(case) for case in value)
            lines.append(f"{json.dumps(key)}: [\n{body}\n],")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value)},")
    lines[-1] = lines[-1].rstrip(",")
    lines.append("}")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
