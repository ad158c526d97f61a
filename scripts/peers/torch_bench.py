#!/usr/bin/env python3
"""PyTorch (diffusers) side of jdiffusion's `bench` measurements, on random full-size weights built from configs.

    torch_bench.py unet    --arch sd15|sdxl --precision fp32|bf16|autocast [--size PX] [--batch N]
    torch_bench.py vae     --precision fp32|bf16 [--size PX]
    torch_bench.py upscale --precision fp32|bf16 [--size PX] [--tile PX] [--overlap PX]

Each process builds one model from its published config (diffusers `UNet2DConditionModel(**config)`,
`AutoencoderKL(**config)`, or the RRDBNet below), with PyTorch's default random initialisation: nothing is
downloaded or read. Precisions: fp32; bf16 = the weights cast to bfloat16 and bf16 inputs (what ComfyUI's
`--cpu --bf16-unet` style runs do); autocast = fp32 weights under `torch.autocast("cpu", dtype=torch.bfloat16)`.
It then runs --warmup untimed and --runs timed evaluations under `torch.no_grad()` and prints one line

    RESULT peer=torch what=... precision=... runs=s1,s2,... median=S peak_rss_gb=G build_rss_gb=G

peak_rss_gb is the process's peak resident memory during the evaluations (the kernel's high-water mark is reset
after the model is built; bf16 models are built in bf16 directly, torch.set_default_dtype(torch.bfloat16));
build_rss_gb is the high-water mark before that reset. Threads: --threads (default 2), set with
torch.set_num_threads; set OMP_NUM_THREADS and OPENBLAS_NUM_THREADS to the same (the driver does).
"""
import argparse
import gc
import os
import statistics
import sys
import time

import torch

# diffusers' published configs (config.json of the SD1.5 and SDXL base repositories), trimmed to what differs
# from the constructors' defaults.
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, norm_eps=1e-5,
    flip_sin_to_cos=True, freq_shift=0, act_fn="silu", downsample_padding=1, mid_block_scale_factor=1,
    center_input_sample=False,
)
SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=2048, attention_head_dim=(5, 10, 20), transformer_layers_per_block=(1, 2, 10),
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816, norm_num_groups=32, flip_sin_to_cos=True, freq_shift=0,
    act_fn="silu",
)
SD_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32, act_fn="silu",
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512,
)


def reset_peak_rss():
    """Resets the kernel's peak-RSS mark (VmHWM) of this process; returns the old mark in GB."""
    old = read_peak_rss()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError as e:
        print("warning: cannot reset the peak-RSS mark (%s); peak_rss_gb includes the build" % e, file=sys.stderr)
    return old


def read_peak_rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def cast(model, precision):
    model.eval()
    if precision == "bf16":
        model.to(torch.bfloat16)
    return model


def in_dtype(precision):
    return torch.bfloat16 if precision == "bf16" else torch.float32


def autocast_ctx(precision):
    if precision == "autocast":
        patch_norms_for_autocast()
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def patch_norms_for_autocast():
    """torch 1.13's CPU autocast has no fp32 policy for group_norm / layer_norm (later versions run them in fp32):
    a bf16 activation meets fp32 weights and the op fails. Run them in fp32 as torch 2.x autocast does."""
    for cls, fn in ((torch.nn.GroupNorm, "group_norm"), (torch.nn.LayerNorm, "layer_norm")):
        original = cls.forward

        def forward(self, x, _original=original):
            if x.dtype == torch.bfloat16 and self.weight is not None and self.weight.dtype == torch.float32:
                x = x.float()
            return _original(self, x)

        cls.forward = forward


# ---------------------------------------------------------------- RRDBNet (ESRGAN / Real-ESRGAN x4 generator)
class DenseBlock(torch.nn.Module):
    """Residual dense block: five 3x3 convolutions, each seeing the block input and every earlier output."""

    def __init__(self, feats, growth):
        super().__init__()
        self.convs = torch.nn.ModuleList(
            torch.nn.Conv2d(feats + i * growth, growth if i < 4 else feats, 3, padding=1) for i in range(5))
        self.act = torch.nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        seen = [x]
        for i, conv in enumerate(self.convs):
            y = conv(torch.cat(seen, 1))
            if i < 4:
                seen.append(self.act(y))
        return x + 0.2 * y


class RRDB(torch.nn.Module):
    def __init__(self, feats, growth):
        super().__init__()
        self.blocks = torch.nn.Sequential(*(DenseBlock(feats, growth) for _ in range(3)))

    def forward(self, x):
        return x + 0.2 * self.blocks(x)


class RRDBNet(torch.nn.Module):
    """ESRGAN x4: conv_first, N RRDBs, trunk conv, two (nearest x2 upsample + conv), HR conv, last conv."""

    def __init__(self, blocks=23, feats=64, growth=32, in_ch=3, out_ch=3):
        super().__init__()
        self.conv_first = torch.nn.Conv2d(in_ch, feats, 3, padding=1)
        self.body = torch.nn.Sequential(*(RRDB(feats, growth) for _ in range(blocks)))
        self.conv_body = torch.nn.Conv2d(feats, feats, 3, padding=1)
        self.conv_up1 = torch.nn.Conv2d(feats, feats, 3, padding=1)
        self.conv_up2 = torch.nn.Conv2d(feats, feats, 3, padding=1)
        self.conv_hr = torch.nn.Conv2d(feats, feats, 3, padding=1)
        self.conv_last = torch.nn.Conv2d(feats, out_ch, 3, padding=1)
        self.act = torch.nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        f = self.conv_first(x)
        f = f + self.conv_body(self.body(f))
        f = self.act(self.conv_up1(torch.nn.functional.interpolate(f, scale_factor=2, mode="nearest")))
        f = self.act(self.conv_up2(torch.nn.functional.interpolate(f, scale_factor=2, mode="nearest")))
        return self.conv_last(self.act(self.conv_hr(f)))


def tiled_upscale(model, image, scale, tile, overlap):
    """ComfyUI's tiled_scale: tiles of `tile` px stepping by tile - overlap, outputs blended with a feathered
    mask of `overlap * scale` px at inner edges (same work as ImageUpscaleWithModel; one tile when it fits)."""
    b, c, h, w = image.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return model(image)
    out = torch.zeros((b, c, h * scale, w * scale), dtype=torch.float32)
    div = torch.zeros_like(out)
    step = tile - overlap
    ys = list(range(0, max(h - overlap, 1), step))
    xs = list(range(0, max(w - overlap, 1), step))
    feather = overlap * scale
    for y in ys:
        for x in xs:
            y0, x0 = min(y, max(h - tile, 0)), min(x, max(w - tile, 0))
            part = model(image[:, :, y0:y0 + tile, x0:x0 + tile]).float()
            mask = torch.ones_like(part)
            for t in range(feather):
                a = (t + 1) / feather
                mask[:, :, t, :] *= a
                mask[:, :, -1 - t, :] *= a
                mask[:, :, :, t] *= a
                mask[:, :, :, -1 - t] *= a
            ph, pw = part.shape[2], part.shape[3]
            out[:, :, y0 * scale:y0 * scale + ph, x0 * scale:x0 * scale + pw] += part * mask
            div[:, :, y0 * scale:y0 * scale + ph, x0 * scale:x0 * scale + pw] += mask
    return out / div


# ---------------------------------------------------------------- the three measurements
def build(args):
    """Returns (description, model, the evaluation as a no-argument function)."""
    dt = in_dtype(args.precision)
    g = torch.Generator().manual_seed(args.seed)
    if args.what == "unet":
        from diffusers import UNet2DConditionModel
        config = SD15_UNET if args.arch == "sd15" else SDXL_UNET
        size = args.size or (512 if args.arch == "sd15" else 1024)
        batch = args.batch if args.batch else (2 if args.arch == "sd15" else 1)
        model = cast(UNet2DConditionModel(**config), args.precision)
        lat = size // 8
        x = torch.randn(batch, 4, lat, lat, generator=g).to(dt)
        t = torch.full((batch,), 500, dtype=torch.long)
        ctx = torch.randn(batch, 77, config["cross_attention_dim"], generator=g).to(dt)
        extra = {}
        if args.arch == "sdxl":
            extra = dict(added_cond_kwargs=dict(text_embeds=torch.randn(batch, 1280, generator=g).to(dt),
                                                time_ids=torch.tensor([[size, size, 0, 0, size, size]] * batch,
                                                                      dtype=dt)))
        desc = "%s UNet %dx%d latent (%d px), batch %d, 77 tokens" % (args.arch, lat, lat, size, batch)
        return desc, model, lambda: model(x, t, encoder_hidden_states=ctx, return_dict=False, **extra)[0]
    if args.what == "vae":
        from diffusers import AutoencoderKL
        size = args.size or 512
        model = cast(AutoencoderKL(**SD_VAE), args.precision)
        z = torch.randn(1, 4, size // 8, size // 8, generator=g).to(dt)
        return "VAE decode %d px" % size, model, lambda: model.decode(z, return_dict=False)[0]
    if args.what == "upscale":
        size = args.size or 512
        model = cast(RRDBNet(args.blocks, args.features, args.growth), args.precision)
        img = torch.rand(1, 3, size, size, generator=g).to(dt)
        desc = "RRDBNet x4 (%d blocks, %d feats) %d -> %d px, tile %d overlap %d" % (
            args.blocks, args.features, size, 4 * size, args.tile, args.overlap)
        return desc, model, lambda: tiled_upscale(model, img, 4, args.tile, args.overlap)
    raise SystemExit("unknown measurement " + args.what)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["unet", "vae", "upscale"])
    p.add_argument("--arch", choices=["sd15", "sdxl"], default="sd15")
    p.add_argument("--precision", choices=["fp32", "bf16", "autocast"], default="fp32")
    p.add_argument("--size", type=int, default=0, help="image size in px (default: the model's)")
    p.add_argument("--batch", type=int, default=0, help="UNet batch (default: 2 for sd15 = one cfg step, 1 sdxl)")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--blocks", type=int, default=23)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--growth", type=int, default=32)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    if args.precision == "bf16":
        # build straight in bf16 (no fp32 copy first: SDXL would need 10 GB for a moment)
        torch.set_default_dtype(torch.bfloat16)
    desc, model, step = build(args)
    torch.set_default_dtype(torch.float32)
    gc.collect()
    build_s = time.perf_counter() - t0
    build_rss = reset_peak_rss()
    print("torch %s, %d threads, oneDNN %s; %s, %s; built in %.1f s" % (
        torch.__version__, torch.get_num_threads(), torch.backends.mkldnn.is_available(), desc, args.precision,
        build_s), flush=True)
    times = []
    with torch.no_grad(), autocast_ctx(args.precision):
        for i in range(args.warmup + args.runs):
            t0 = time.perf_counter()
            out = step()
            s = time.perf_counter() - t0
            finite = bool(torch.isfinite(out.float()).all())
            print("%s %d: %.2f s (output %s, %s)" % ("warm-up" if i < args.warmup else "run", i + 1, s,
                                                    tuple(out.shape), "finite" if finite else "NOT finite"),
                  flush=True)
            if i >= args.warmup:
                times.append(s)
            del out
    print("RESULT peer=torch what=%s arch=%s precision=%s runs=%s median=%.3f peak_rss_gb=%.2f build_rss_gb=%.2f" % (
        args.what, args.arch if args.what == "unet" else "-", args.precision, ",".join("%.3f" % s for s in times),
        statistics.median(times), read_peak_rss(), build_rss), flush=True)


if __name__ == "__main__":
    main()
