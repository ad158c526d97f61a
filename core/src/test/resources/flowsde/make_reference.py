#!/usr/bin/python3
"""Second-implementation reference for FlowSamplersTest: ComfyUI's k-diffusion samplers on a rectified-flow (CONST)
toy model, with recorded noise.

Needs ComfyUI's own sampler code beside this script (NOT in this repository): `sampling.py` (the text of
comfy/k_diffusion/sampling.py, or the part of it with the sample_* functions listed in SAMPLERS and the helpers they
call) and `sa_solver.py` (comfy/k_diffusion/sa_solver.py). Everything else they import (comfy.*, torchsde, tqdm) is
stubbed here. Runs with torch 1.13 and scipy:

    /usr/bin/python3 make_reference.py [--comfy DIR] [--out flow_samplers.json]

The toy model: every latent element k has data x0_k ~ N(mu_k, s_k^2) under two "conditions" (cond mu_c, uncond mu_u),
noised as x_t = (1 - t) x0 + t eps. Its denoiser is the exact posterior mean
    E[x0 | x_t] = mu + (1 - t) s^2 / ((1 - t)^2 s^2 + t^2) * (x_t - (1 - t) mu),
computed in float64 and rounded to float32; CFG combines uncond + (cond - uncond) * cfg in float32 and hands both to
ComfyUI's post-CFG hooks (the _cfg_pp samplers read uncond from there). The model sampling is ModelSamplingDiscreteFlow
+ CONST with shift 3 (ModelSamplingSD3's default); the schedules are ComfyUI's "simple" scheduler on its sigma table.
Noise: a fixed list of standard-normal draws handed out in call order (the sampler's noise_sampler), so the Java side
can replay them exactly (RecordedNoise).
"""
import argparse
import importlib.util
import inspect
import json
import os
import sys
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))

# every ComfyUI sampler function whose flow form is checked; the *_gpu names run the same function
SAMPLERS = ["euler", "euler_ancestral", "euler_cfg_pp", "euler_ancestral_cfg_pp", "dpm_2_ancestral",
            "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_2m", "dpmpp_2m_cfg_pp",
            "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde", "ddpm", "lcm", "res_multistep",
            "res_multistep_cfg_pp", "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp",
            "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2", "seeds_3", "exp_heun_2_x0",
            "exp_heun_2_x0_sde", "sa_solver", "sa_solver_pece"]

SHIFT = 3.0
CFG = 1.5
SHAPE = [1, 4, 4, 4]
DRAWS = 48


def time_snr_shift(alpha, t):
    if alpha == 1.0:
        return t
    return alpha * t / (1 + (alpha - 1) * t)


class CONST:
    """Stand-in for comfy.model_sampling.CONST (rectified flow)."""

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        return sigma * noise + (1.0 - sigma) * latent_image


class FlowSampling(CONST):
    """Stand-in for ModelSamplingDiscreteFlow(shift) + CONST: the 1000-entry sigma table and percent_to_sigma."""

    def __init__(self, shift):
        self.shift = shift
        multiplier = 1000
        self.sigmas = time_snr_shift(shift, ((torch.arange(1, 1001, 1) / 1000) * multiplier) / multiplier)

    def percent_to_sigma(self, percent):
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return time_snr_shift(self.shift, 1.0 - percent)


def simple_sigmas(ms, steps):
    """ComfyUI's simple scheduler."""
    ss = len(ms.sigmas) / steps
    sigs = [float(ms.sigmas[-(1 + int(x * ss))]) for x in range(steps)] + [0.0]
    return torch.FloatTensor(sigs)


def install_stubs():
    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    def post_cfg(model_options, fn, disable_cfg1_optimization=False):
        opts = dict(model_options)
        opts["sampler_post_cfg_function"] = opts.get("sampler_post_cfg_function", []) + [fn]
        if disable_cfg1_optimization:
            opts["disable_cfg1_optimization"] = True
        return opts

    comfy = module("comfy")
    comfy.__path__ = []
    comfy.model_patcher = module("comfy.model_patcher", set_model_options_post_cfg_function=post_cfg)
    comfy.model_sampling = module("comfy.model_sampling", CONST=CONST)
    comfy.memory_management = module("comfy.memory_management")
    comfy.utils = module("comfy.utils", model_trange=lambda n, disable=None: range(n))
    kd = module("comfy.k_diffusion")
    kd.__path__ = []
    comfy.k_diffusion = kd
    kd.utils = module("comfy.k_diffusion.utils",
                      append_dims=lambda x, n: x[(...,) + (None,) * (n - x.ndim)])
    kd.deis = module("comfy.k_diffusion.deis")
    module("torchsde")
    tqdm = module("tqdm")
    tqdm.auto = module("tqdm.auto", tqdm=None)


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


class ToyModel:
    """The CFG-combined posterior-mean denoiser, shaped like ComfyUI's model wrapper as the samplers see it."""

    def __init__(self, ms, mu_c, mu_u, std, cfg):
        self.mu_c, self.mu_u, self.std, self.cfg = mu_c, mu_u, std, cfg
        self.calls = []
        patcher = types.SimpleNamespace(get_model_object=lambda name: ms)
        self.inner_model = types.SimpleNamespace(inner_model=types.SimpleNamespace(model_sampling=ms),
                                                 model_patcher=patcher)

    @staticmethod
    def posterior(x, t, mu, std):
        x = x.double()
        s2 = std.double() ** 2
        gain = (1 - t) * s2 / ((1 - t) ** 2 * s2 + t * t)
        return (mu.double() + gain * (x - (1 - t) * mu.double())).float()

    def __call__(self, x, sigma, model_options=None, seed=None):
        t = float(sigma.reshape(-1)[0])
        self.calls.append(t)
        cond = self.posterior(x, t, self.mu_c, self.std)
        uncond = self.posterior(x, t, self.mu_u, self.std)
        denoised = uncond + (cond - uncond) * self.cfg
        for fn in (model_options or {}).get("sampler_post_cfg_function", []):
            denoised = fn({"denoised": denoised, "uncond_denoised": uncond, "cond_denoised": cond, "sigma": sigma,
                           "input": x, "model_options": model_options})
        return denoised


class Recorded:
    def __init__(self, draws):
        self.draws = draws
        self.used = 0

    def __call__(self, sigma, sigma_next):
        if self.used >= len(self.draws):
            raise RuntimeError("out of recorded noise draws")
        d = self.draws[self.used]
        self.used += 1
        return d.clone()


def flat(t):
    return [float(v) for v in t.reshape(-1).tolist()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--comfy", default=HERE, help="folder holding ComfyUI's sampling.py and sa_solver.py")
    ap.add_argument("--out", default=os.path.join(HERE, "flow_samplers.json"))
    args = ap.parse_args()

    install_stubs()
    sys.modules["comfy.k_diffusion"].sa_solver = load("comfy.k_diffusion.sa_solver",
                                                      os.path.join(args.comfy, "sa_solver.py"))
    kd = load("comfy.k_diffusion.sampling", os.path.join(args.comfy, "sampling.py"))

    g = torch.Generator().manual_seed(20260517)
    mu_c = torch.randn(SHAPE, generator=g) * 0.8
    mu_u = mu_c + torch.randn(SHAPE, generator=g) * 0.3
    std = torch.rand(SHAPE, generator=g) * 0.9 + 0.1
    draws = [torch.randn(SHAPE, generator=g) for _ in range(DRAWS)]
    noise0 = torch.randn(SHAPE, generator=g)
    latent = torch.randn(SHAPE, generator=g) * 0.5

    ms = FlowSampling(SHIFT)
    full = simple_sigmas(ms, 10)
    partial = simple_sigmas(ms, 14)[-9:]  # img2img-like tail: the first sigma is below 1, no offset
    cases = []
    for name, sigmas in (("full10", full), ("tail8", partial)):
        s0 = float(sigmas[0])
        x = (s0 * noise0 + (1 - s0) * latent).float()
        outputs = {}
        for sampler in SAMPLERS:
            model = ToyModel(ms, mu_c, mu_u, std, CFG)
            noise = Recorded(draws)
            fn = getattr(kd, "sample_" + sampler)
            kwargs = {"extra_args": {}}
            if "noise_sampler" in inspect.signature(fn).parameters:
                kwargs["noise_sampler"] = noise
            out = fn(model, x.clone(), sigmas.clone(), **kwargs)
            outputs[sampler] = {"x": flat(out), "draws": noise.used, "model_sigmas": model.calls}
            print(f"{name:7s} {sampler:32s} draws {noise.used:3d} evals {len(model.calls):3d} "
                  f"|x| max {float(out.abs().max()):.4f}")
        cases.append({"name": name, "sigmas": flat(sigmas), "x": flat(x), "outputs": outputs})

    ref = {
        "about": "ComfyUI k-diffusion samplers on a CONST (rectified-flow) toy model; see make_reference.py",
        "comfyui_sources": {"sampling.py": "comfyanonymous/ComfyUI@02159d814dee609acc27994c1bf25fc5b40e2aaa",
                            "sa_solver.py": "comfyanonymous/ComfyUI@4328fa894d96811bde5bcdce56b6a4106f62feed"},
        "torch": torch.__version__,
        "shape": SHAPE, "shift": SHIFT, "cfg": CFG,
        "toy": {"mu_cond": flat(mu_c), "mu_uncond": flat(mu_u), "std": flat(std)},
        "noise": [flat(d) for d in draws],
        "cases": cases,
    }
    with open(args.out, "w") as f:
        json.dump(ref, f, separators=(",", ":"))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
