#!/usr/bin/env python3
"""Reference outputs of the Hugging Face image processors TinyLLaVA runs.

Writes tests/data/mm/image_processor.safetensors: one F32 [3, H, W] tensor per
(image, processor) pair, for test images of every Pillow mode in
tests/data/clip/images/. The metadata "cases" maps each key to its image and
processor settings.

`transformers` is not installed here, so the two processors are written out
with the calls their preprocess() makes (transformers' image_processing_siglip.py
and image_processing_clip.py with image_transforms.py):
- TinyLLaVA opens every image with Image.open(f).convert("RGB") (run_tiny_llava.py
  load_image); with image_aspect_ratio "pad" it then runs ImagePreprocess.expand2square
  with background tuple(int(x * 255) for x in image_mean);
- SiglipImageProcessor: resize to (height, width) with PIL bicubic
  (image_transforms.resize -> PIL.Image.resize(..., reducing_gap=None)), no crop;
  do_convert_rgb defaults to None (off), which changes nothing on an RGB image;
- CLIPImageProcessor: resize the shorter side to shortest_edge (the longer to
  int(shortest_edge * long / short)), center_crop at ((H - h) // 2, (W - w) // 2);
- both: rescale = (x.astype(float64) * rescale_factor).astype(float32), then
  normalize = (x - float32(mean)) / float32(std) in float32, channels first.

Run from the repo root with /usr/bin/python3 (Pillow 9.4, numpy, torch).
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

IMAGES = "tests/data/clip/images"
OUT = "tests/data/mm/image_processor.safetensors"
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

PROCESSORS = {
    "siglip": {"image_processor_type": "SiglipImageProcessor", "size": {"height": 24, "width": 24},
               "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "rescale_factor": 1 / 255},
    "siglip_rect": {"image_processor_type": "SiglipImageProcessor", "size": {"height": 20, "width": 28},
                    "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "rescale_factor": 1 / 255},
    "clip": {"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 24},
             "crop_size": {"height": 24, "width": 24}, "do_center_crop": True, "image_mean": CLIP_MEAN,
             "image_std": CLIP_STD, "rescale_factor": 1 / 255},
}

# image -> (processor, aspect ratio) pairs
CASES = {
    "rgb.png": [("siglip", "square"), ("siglip", "pad"), ("clip", "square"), ("clip", "pad"), ("siglip_rect", "square")],
    "rgb_tall.png": [("siglip", "square"), ("siglip", "pad"), ("clip", "square"), ("clip", "pad")],
    "rgb_big.png": [("siglip", "square"), ("clip", "pad")],
    "grey.png": [("siglip", "square"), ("siglip", "pad")],
    "rgba.png": [("siglip", "square"), ("clip", "square")],
    "palette4_trns.png": [("siglip", "pad")],
    "cmyk.jpg": [("siglip", "square")],
    "rgb420.jpg": [("siglip_rect", "square"), ("clip", "square")],
}


def expand2square(img, background):
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    out = Image.new(img.mode, (side, side), background)
    out.paste(img, (0, (w - h) // 2) if w > h else ((h - w) // 2, 0))
    return out


def hf_process(img, p, aspect):
    img = img.convert("RGB")
    if aspect == "pad":
        img = expand2square(img, tuple(int(x * 255) for x in p["image_mean"]))
    size = p["size"]
    if "shortest_edge" in size:
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        s = size["shortest_edge"]
        new_short, new_long = s, int(s * long / short)
        target = (new_short, new_long) if w <= h else (new_long, new_short)
    else:
        target = (size["width"], size["height"])
    img = img.resize(target, resample=Image.BICUBIC, reducing_gap=None)
    arr = np.array(img)
    if p.get("do_center_crop"):
        ch, cw = p["crop_size"]["height"], p["crop_size"]["width"]
        top, left = (arr.shape[0] - ch) // 2, (arr.shape[1] - cw) // 2
        arr = arr[top:top + ch, left:left + cw]
    arr = (arr.astype(np.float64) * p["rescale_factor"]).astype(np.float32)
    arr = (arr - np.array(p["image_mean"], dtype=np.float32)) / np.array(p["image_std"], dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def main():
    tensors, cases = {}, {}
    for name, pairs in CASES.items():
        img = Image.open(os.path.join(IMAGES, name))
        for proc, aspect in pairs:
            key = f"{name}/{proc}/{aspect}"
            tensors[key] = hf_process(img, PROCESSORS[proc], aspect)
            cases[key] = {"image": name, "processor": PROCESSORS[proc], "image_aspect_ratio": aspect}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    write_safetensors(OUT, tensors, {"cases": json.dumps(cases)})
    print(f"wrote {len(tensors)} tensors to {OUT}")


if __name__ == "__main__":
    main()
