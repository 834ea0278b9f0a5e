#!/usr/bin/env python3
"""Reference outputs of OpenAI CLIP's image transform for every Pillow mode.

Writes small test images (one per mode/format Pillow treats differently) to
tests/data/clip/images/ and tests/data/clip/preprocess_modes.safetensors with
the [3, N, N] float32 tensor OpenAI's transform gives each (metadata "files":
{key: relative image path}). The transform is torchvision's
Compose([Resize(N, BICUBIC), CenterCrop(N), convert("RGB"), ToTensor(),
Normalize(mean, std)]) written out with Pillow calls (torchvision itself is not
installed here): Resize -> img.resize((w, h), BICUBIC) with the shorter side N
and the longer int(N * long / short); CenterCrop -> img.crop at
int(round((extent - N) / 2)).

Run with /usr/bin/python3 (Pillow 9.4, numpy, torch) from the repo root.
"""
import json
import os
import struct
import sys
import zlib

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

OUT = "tests/data/clip"
MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073], dtype=torch.float32)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711], dtype=torch.float32)


def openai_transform(img, n):
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = n, int(n * long / short)
    size = (new_short, new_long) if w <= h else (new_long, new_short)
    if size != img.size:
        img = img.resize(size, Image.BICUBIC)
    w, h = img.size
    top, left = int(round((h - n) / 2.0)), int(round((w - n) / 2.0))
    img = img.crop((left, top, left + n, top + n)).convert("RGB")
    t = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    t = t.to(torch.float32).div(255)
    return (t - MEAN[:, None, None]) / STD[:, None, None]


def smooth_noise(rng, h, w, c):
    """Gradients plus noise: edges and flat parts, so resampling is exercised."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 4) % 256], -1)
    base = base[..., :c] if c <= 3 else np.concatenate([base, base[..., :c - 3]], -1)
    noise = rng.integers(-40, 41, size=(h, w, c))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def main():
    rng = np.random.default_rng(1234)
    os.makedirs(f"{OUT}/images", exist_ok=True)
    cases = []  # (key, file name, size N, save function)

    def add(key, name, n, image, **save_args):
        path = f"{OUT}/images/{name}"
        image.save(path, **save_args)
        cases.append((key, f"images/{name}", n))

    rgb = Image.fromarray(smooth_noise(rng, 45, 61, 3), "RGB")
    add("rgb_png", "rgb.png", 24, rgb)
    add("rgb_png_tall", "rgb_tall.png", 20, Image.fromarray(smooth_noise(rng, 73, 30, 3), "RGB"))
    add("rgb_png_upscale", "rgb_small.png", 32, Image.fromarray(smooth_noise(rng, 9, 13, 3), "RGB"))
    add("rgb_png_big_shrink", "rgb_big.png", 16, Image.fromarray(smooth_noise(rng, 150, 211, 3), "RGB"))
    add("grey_png", "grey.png", 24, Image.fromarray(smooth_noise(rng, 40, 50, 1)[..., 0], "L"))
    grey = smooth_noise(rng, 33, 47, 1)[..., 0]
    add("grey1_png", "grey1.png", 24, Image.fromarray(grey > 128).convert("1"))
    add("grey4_png", "grey4.png", 24, Image.fromarray(grey, "L"), bits=4)
    grey16 = (np.arange(33 * 47).reshape(33, 47) * 7 % 420).astype(np.int32)
    add("grey16_png", "grey16.png", 24, Image.fromarray(grey16.astype(np.uint16), "I;16"))
    la = smooth_noise(rng, 35, 44, 2)
    add("la_png", "la.png", 24, Image.fromarray(la, "LA"))
    rgba = smooth_noise(rng, 38, 52, 4)
    rgba[..., 3] = rng.choice([0, 1, 77, 128, 254, 255], size=rgba.shape[:2])
    add("rgba_png", "rgba.png", 24, Image.fromarray(rgba, "RGBA"))
    rgb16 = (smooth_noise(rng, 30, 41, 3).astype(np.uint16) * 257 + rng.integers(0, 257, size=(30, 41, 3))).astype(">u2")
    # Pillow cannot write 16-bit RGB; write the PNG by hand (one IDAT, filter 0).
    add_raw_png(f"{OUT}/images/rgb16.png", rgb16, color_type=2)
    cases.append(("rgb16_png", "images/rgb16.png", 24))
    pal = rgb.convert("P", palette=Image.ADAPTIVE, colors=50)
    add("palette_png", "palette.png", 24, pal)
    pal_t = rgb.convert("P", palette=Image.ADAPTIVE, colors=12)
    add("palette4_trns_png", "palette4_trns.png", 24, pal_t, bits=4, transparency=3)
    add("rgb_jpg_420", "rgb420.jpg", 24, Image.fromarray(smooth_noise(rng, 57, 71, 3), "RGB"), quality=85, subsampling=2)
    add("rgb_jpg_progressive", "progressive.jpg", 24, Image.fromarray(smooth_noise(rng, 50, 66, 3), "RGB"), quality=90,
        progressive=True)
    add("grey_jpg", "grey.jpg", 24, Image.fromarray(smooth_noise(rng, 40, 52, 1)[..., 0], "L"), quality=90)
    add("cmyk_jpg", "cmyk.jpg", 24, Image.fromarray(smooth_noise(rng, 36, 48, 4), "CMYK"), quality=90)
    add("rgb_webp_lossy", "rgb.webp", 24, Image.fromarray(smooth_noise(rng, 42, 58, 3), "RGB"), quality=80)
    add("rgba_webp_lossless", "rgba.webp", 24, Image.fromarray(rgba, "RGBA"), lossless=True)

    tensors, files = {}, {}
    for key, rel, n in cases:
        with Image.open(f"{OUT}/{rel}") as img:
            img.load()
            tensors[key] = openai_transform(img, n).contiguous()
            files[key] = rel
            print(key, img.mode, img.size, "->", n)
    write_safetensors(f"{OUT}/preprocess_modes.safetensors", tensors, {"files": json.dumps(files, sort_keys=True)})


def add_raw_png(path, samples, color_type):
    h, w = samples.shape[:2]
    raw = b"".join(b"\x00" + samples[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


if __name__ == "__main__":
    main()
