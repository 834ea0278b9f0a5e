#!/usr/bin/env python3
"""Expected prompt ids of TinyLLaVA Factory's conversation templates.

Writes tests/data/mm/template_ids.json: for every template (llama, phi, gemma,
qwen2_base, qwen2_instruct, pretrain), a few conversations (an image question,
an image marker inside the text, a second turn after an answer, a text-only
question, TinyEmo's EmoReason question) rendered as Template._prompt renders
them and tokenised as Template.tokenizer_image_token does, over two
tokenizers available here:

- "spm": the LLaMA-style SentencePiece model tests/lm/tokenizer_spm_training.h
  trains (same corpus and arguments, one thread: the C++ test trains the same
  model with the same libsentencepiece 0.1.97 and checks the vocabulary
  recorded here first). `tokenizer(text).input_ids` is Hugging Face's slow
  LlamaTokenizer: BOS, then the text split at the special pieces (<s>, </s>,
  <unk>), each stretch encoded with its own dummy prefix.
- "gpt2": ../shared/fixtures/gpt2-bpe with OpenAI's encoder algorithm
  (tools/gen_gpt2_cases.py), "<|endoftext|>" in the text split out as id
  50256 as Hugging Face does; no BOS is added (bos_token_id is 50256).

The template classes, StringFormatter/EmptyFormatter and tokenizer_image_token
below are written out from tinyllava/data/template/{base,formatter,*_template}.py
(TinyLLaVA Factory), whose imports (transformers, torch) are not needed for them.

Run from the repo root: /usr/bin/python3 tools/tinyllava_template_reference.py
(needs python3-sentencepiece and python3-regex from Debian).
"""
import json
import os
import sys
import tempfile

import sentencepiece as spm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_gpt2_cases import Gpt2Encoder  # noqa: E402

OUT = "tests/data/mm/template_ids.json"
GPT2 = "../shared/fixtures/gpt2-bpe"
IMAGE_TOKEN_INDEX = -200
SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
          "detailed, and polite answers to the user's questions.")


class EmptyFormatter:
    def __init__(self, slot):
        self.slot = slot

    def apply(self, **kwargs):
        return self.slot


class StringFormatter:
    def __init__(self, slot):
        self.slot = slot

    def apply(self, **kwargs):
        msg = ""
        for name, value in kwargs.items():
            if value is None:
                return self.slot.split(':')[0] + ":"
            msg = self.slot.replace("{{" + name + "}}", value, 1)
        return msg


def chat_template(eos):
    return {"image": StringFormatter("<image>\n{{content}}"), "user": StringFormatter("USER: {{content}} "),
            "assistant": StringFormatter("ASSISTANT: {{content}}" + eos), "system": EmptyFormatter(SYSTEM + " "),
            "separator": EmptyFormatter([" ASSISTANT: ", eos])}


TEMPLATES = {
    "llama": chat_template("</s>"),
    "phi": chat_template("<|endoftext|>"),
    "gemma": chat_template("<eos>"),
    "qwen2_base": chat_template("<|endoftext|>"),
    "qwen2_instruct": chat_template("<|im_end|>"),
    "pretrain": {"image": EmptyFormatter(""), "user": EmptyFormatter("<image>"),
                 "assistant": StringFormatter("{{content}}\n"), "system": EmptyFormatter(""),
                 "separator": EmptyFormatter(["", ""])},
}


def render(t, questions, answers):
    msg = ""
    for i, (question, answer) in enumerate(zip(questions, answers)):
        if i == 0:
            msg += t["system"].apply()
        if "<image>" in question:
            question = question.replace("<image>", "").strip()
            question = t["image"].apply(content=question).strip()
        msg += t["user"].apply(content=question)
        msg += t["assistant"].apply(content=answer)
    return msg


def tokenizer_image_token(prompt, tokenizer):
    def insert_separator(x, sep):
        return [ele for sublist in zip(x, [sep] * len(x)) for ele in sublist][:-1]
    chunks = [tokenizer(chunk) for chunk in prompt.split("<image>")]
    input_ids, offset = [], 0
    if len(chunks) > 0 and len(chunks[0]) > 0 and chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        input_ids.append(chunks[0][0])
    for x in insert_separator(chunks, [IMAGE_TOKEN_INDEX] * (offset + 1)):
        input_ids.extend(x[offset:])
    return input_ids


class SpmLlamaTokenizer:
    """Hugging Face's slow LlamaTokenizer over a SentencePiece model."""

    def __init__(self, model_file):
        self.sp = spm.SentencePieceProcessor(model_file=model_file)
        self.bos_token_id = self.sp.bos_id()
        self.special = sorted(((self.sp.id_to_piece(i), i) for i in range(self.sp.get_piece_size())
                               if self.sp.is_control(i) or self.sp.is_unknown(i)), key=lambda p: -len(p[0]))

    def __call__(self, text):
        ids, start, pos = [self.bos_token_id], 0, 0
        while pos < len(text):
            hit = next(((p, i) for p, i in self.special if text.startswith(p, pos)), None)
            if hit is None:
                pos += 1
                continue
            if pos > start:
                ids += self.sp.encode(text[start:pos])
            ids.append(hit[1])
            pos += len(hit[0])
            start = pos
        if start < len(text):
            ids += self.sp.encode(text[start:])
        return ids

    def pieces(self):
        return [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]


class Gpt2Tokenizer:
    def __init__(self, folder):
        self.enc = Gpt2Encoder(folder)
        self.bos_token_id = 50256

    def __call__(self, text):
        ids = []
        for i, part in enumerate(text.split("<|endoftext|>")):
            if i:
                ids.append(50256)
            ids += self.enc.encode(part)
        return ids


def train_spm(folder):
    # The arguments of tests/lm/tokenizer_spm_training.h.
    args = ("--input=tests/data/tokenizers/spm_corpus.txt --model_type=bpe --vocab_size=600"
            " --byte_fallback=true --split_digits=true --add_dummy_prefix=true --remove_extra_whitespaces=false"
            " --normalization_rule_name=identity --allow_whitespace_only_pieces=true --character_coverage=1.0"
            " --num_threads=1 --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --minloglevel=2"
            f" --model_prefix={folder}/spm")
    spm.SentencePieceTrainer.train(args)
    return f"{folder}/spm.model"


def emoreason_question(labels, label):
    return ("Provide emotional reasoning about the image, on what you feel and how is the depicted emotion. Also "
            "choose the emotion that best corresponds to the image from the following options:\n\n"
            f"Labels: {labels}\n\nImportant: note that the correct label is {label}.")


CONVERSATIONS = [
    {"turns": [["<image>\nWhat emotion does this image evoke?", None]]},
    {"turns": [["Describe  the mood of <image> this photo, please.", None]]},
    {"turns": [["<image>\nWhat is shown?", "A dog running on the beach."], ["How does it feel?", None]]},
    {"turns": [["Hello there!", None]]},
    {"turns": [["<image>\n" + emoreason_question(["amusement", "anger", "awe", "contentment", "disgust"], "awe"), None]]},
]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        spm_tok = SpmLlamaTokenizer(train_spm(tmp))
        pieces = spm_tok.pieces()
    tokenizers = {"spm": spm_tok, "gpt2": Gpt2Tokenizer(GPT2)}
    cases = []
    for name, template in TEMPLATES.items():
        for conv in CONVERSATIONS:
            questions = [q for q, _ in conv["turns"]]
            answers = [a for _, a in conv["turns"]]
            prompt = render(template, questions, answers)
            for tok_name, tok in tokenizers.items():
                cases.append({"template": name, "tokenizer": tok_name, "turns": conv["turns"], "prompt": prompt,
                              "stop": template["separator"].apply()[1],
                              "ids": tokenizer_image_token(prompt, tok)})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"spm_pieces": pieces, "image_token_index": IMAGE_TOKEN_INDEX, "cases": cases}, f,
                  ensure_ascii=False)
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
