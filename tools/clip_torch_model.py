"""OpenAI CLIP's VisionTransformer (clip/model.py) in plain PyTorch, for the
reference scripts: nn.MultiheadAttention, pre-LN blocks, class token,
learned positions, post-LN on the class token, projection. The activation and
the LayerNorm eps are parameters so that Hugging Face variants (exact GELU,
other eps) can be built too; `hf_state_dict` renames the weights to HF's
CLIPVisionModelWithProjection names."""
import torch
from torch import nn


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"quick_gelu": QuickGELU, "gelu": nn.GELU}


class Block(nn.Module):
    def __init__(self, width, heads, mlp_width, act="quick_gelu", eps=1e-5):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width, eps=eps)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, mlp_width))
        self.mlp.add_module("gelu", ACTIVATIONS[act]())
        self.mlp.add_module("c_proj", nn.Linear(mlp_width, width))
        self.ln_2 = nn.LayerNorm(width, eps=eps)

    def forward(self, x):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class VisionTransformer(nn.Module):
    def __init__(self, width, layers, heads, patch, image, output_dim, mlp_width=None, act="quick_gelu", eps=1e-5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        scale = width ** -0.5
        grid = image // patch
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width, eps=eps)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.Sequential(
            *[Block(width, heads, mlp_width or 4 * width, act, eps) for _ in range(layers)])
        self.ln_post = nn.LayerNorm(width, eps=eps)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim)) if output_dim else None

    def forward(self, x, all_outputs=False):
        x = self.conv1(x).flatten(2).permute(0, 2, 1)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x).permute(1, 0, 2)  # NLD -> LND
        hidden = [x]
        for block in self.transformer.resblocks:
            x = block(x)
            hidden.append(x)
        last = x.permute(1, 0, 2)
        pooled = self.ln_post(last[:, 0, :])
        embeds = pooled @ self.proj if self.proj is not None else None
        if not all_outputs:
            return embeds
        return {"image_embeds": embeds, "pooled_output": pooled, "last_hidden_state": last,
                "penultimate_hidden_state": hidden[-2].permute(1, 0, 2)}


def hf_state_dict(model):
    """The model's weights under Hugging Face CLIPVisionModelWithProjection names."""
    sd, out = model.state_dict(), {}
    v = "vision_model."
    out[v + "embeddings.class_embedding"] = sd["class_embedding"]
    out[v + "embeddings.patch_embedding.weight"] = sd["conv1.weight"]
    out[v + "embeddings.position_embedding.weight"] = sd["positional_embedding"]
    for n in ("weight", "bias"):
        out[v + "pre_layrnorm." + n] = sd["ln_pre." + n]
        out[v + "post_layernorm." + n] = sd["ln_post." + n]
    width = sd["class_embedding"].shape[0]
    for i in range(len(model.transformer.resblocks)):
        src, dst = f"transformer.resblocks.{i}.", f"{v}encoder.layers.{i}."
        w, b = sd[src + "attn.in_proj_weight"], sd[src + "attn.in_proj_bias"]
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[dst + f"self_attn.{name}.weight"] = w[j * width:(j + 1) * width]
            out[dst + f"self_attn.{name}.bias"] = b[j * width:(j + 1) * width]
        for n in ("weight", "bias"):
            out[dst + "self_attn.out_proj." + n] = sd[src + "attn.out_proj." + n]
            out[dst + "layer_norm1." + n] = sd[src + "ln_1." + n]
            out[dst + "layer_norm2." + n] = sd[src + "ln_2." + n]
            out[dst + "mlp.fc1." + n] = sd[src + "mlp.c_fc." + n]
            out[dst + "mlp.fc2." + n] = sd[src + "mlp.c_proj." + n]
    if model.proj is not None:
        out["visual_projection.weight"] = sd["proj"].t()
    return {k: t.contiguous() for k, t in out.items()}
