#!/usr/bin/env python3
"""Writes random full-size SD3 text encoders as separate files, in Hugging Face CLIPTextModelWithProjection names
(what ComfyUI's clip_l.safetensors / clip_g.safetensors hold), fp16:

    random_clip.py OUT_DIR      -> OUT_DIR/clip_l-random-f16.safetensors (123 M parameters, CLIP ViT-L/14 text)
                                   OUT_DIR/clip_g-random-f16.safetensors (695 M parameters, OpenCLIP bigG text)

stable-diffusion.cpp crashes on an SD3.5 file without text encoders (Stability's sd3.5_medium.safetensors has
none, nor has `jdiffusion dev random-checkpoint --arch sd35m`): give it these with --clip_l / --clip_g.
Weights: normal(0, 0.02), layer-norm scales 1 and biases 0. Needs numpy only.
"""
import json
import os
import struct
import sys

import numpy as np

VOCAB, POSITIONS = 49408, 77
ENCODERS = {"clip_l": (768, 12, 3072), "clip_g": (1280, 32, 5120)}


def tensors(width, layers, ff):
    yield "text_model.embeddings.token_embedding.weight", (VOCAB, width), "normal"
    yield "text_model.embeddings.position_embedding.weight", (POSITIONS, width), "normal"
    for i in range(layers):
        p = "text_model.encoder.layers.%d." % i
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            yield p + "self_attn.%s.weight" % proj, (width, width), "normal"
            yield p + "self_attn.%s.bias" % proj, (width,), "zeros"
        for norm in ("layer_norm1", "layer_norm2"):
            yield p + norm + ".weight", (width,), "ones"
            yield p + norm + ".bias", (width,), "zeros"
        yield p + "mlp.fc1.weight", (ff, width), "normal"
        yield p + "mlp.fc1.bias", (ff,), "zeros"
        yield p + "mlp.fc2.weight", (width, ff), "normal"
        yield p + "mlp.fc2.bias", (width,), "zeros"
    yield "text_model.final_layer_norm.weight", (width,), "ones"
    yield "text_model.final_layer_norm.bias", (width,), "zeros"
    yield "text_projection.weight", (width, width), "normal"


def write(path, specs, seed):
    rng = np.random.default_rng(seed)
    header, offset = {}, 0
    for name, shape, _ in specs:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for name, shape, init in specs:
            if init == "normal":
                a = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype("<f2")
            else:
                a = np.full(shape, 1.0 if init == "ones" else 0.0, dtype="<f2")
            f.write(a.tobytes())
    os.replace(tmp, path)
    return offset // 2


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    for seed, (name, (width, layers, ff)) in enumerate(ENCODERS.items()):
        path = os.path.join(out, "%s-random-f16.safetensors" % name)
        if os.path.exists(path):
            print("exists:", path)
            continue
        params = write(path, list(tensors(width, layers, ff)), seed)
        print("wrote %s (%d parameters)" % (path, params))


if __name__ == "__main__":
    main()
