#!/usr/bin/env python3
"""Side-by-side speed table: jdiffusion's `bench` commands and the peers' same measurements, alternating in one
window (see README.md beside this file; run it through side-by-side.sh).

Each measurement is its own process, run in rounds: round 1 runs the columns left to right, round 2 right to
left, and so on, so a drift of the machine's load falls on every column alike. Every process's output goes to the
log folder; the table (markdown) is printed at the end and written beside the logs.
"""
import argparse
import datetime
import os
import re
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROMPT = "a photograph of an astronaut riding a horse"
# sd.cpp crashes on an SD3.5 file without text encoders: random CLIP-L / CLIP-G files from random_clip.py
CLIP_L, CLIP_G = "clip_l-random-f16.safetensors", "clip_g-random-f16.safetensors"


class Col:
    def __init__(self, name, kind, argv, metric="median"):
        self.name, self.kind, self.argv, self.metric = name, kind, argv, metric


class Row:
    def __init__(self, key, title, rounds, cols, minutes):
        # minutes: one round's estimated duration on a quiet 2-thread machine
        self.key, self.title, self.rounds, self.cols, self.minutes = key, title, rounds, cols, minutes


def rows(a, jd_precision):
    """The measurements. a: the options; jd_precision: whether jdiffusion's bench takes --precision."""
    q = a.quick
    T = str(a.threads)
    jd_common = ["-t", T]
    sz = lambda full, small: str(small if q else full)  # noqa: E731
    steps = str(a.steps)
    out = []

    # SD1.5 UNet, batch 2 = one cfg step, 77 tokens
    s = sz(512, 128)
    cols = [Col("jdiffusion fp32", "jd", ["bench", "unet", "--arch", "sd15", "-W", s, "-H", s, "--runs", "1",
                                          "--warmup", "1"] + jd_common)]
    if jd_precision:
        cols.append(Col("jdiffusion bf16", "jd", cols[0].argv + ["--precision", "bf16"]))
    for p in ("fp32", "bf16", "autocast"):
        cols.append(Col("PyTorch " + p, "torch", ["unet", "--arch", "sd15", "--size", s, "--precision", p,
                                                  "--runs", "1", "--warmup", "1"]))
    out.append(Row("sd15-unet", "SD1.5 %sx%s cfg step (UNet, batch 2)" % (s, s), 2, cols, 1.5))

    # VAE decode
    s = sz(512, 128)
    cols = [Col("jdiffusion fp32", "jd", ["bench", "vae", "--arch", "sd15", "-W", s, "-H", s, "--runs", "1",
                                          "--warmup", "1"] + jd_common)]
    if jd_precision:
        cols.append(Col("jdiffusion bf16", "jd", cols[0].argv + ["--precision", "bf16"]))
    for p in ("fp32", "bf16"):
        cols.append(Col("PyTorch " + p, "torch", ["vae", "--size", s, "--precision", p, "--runs", "1",
                                                  "--warmup", "1"]))
    out.append(Row("vae", "VAE decode %sx%s" % (s, s), 1, cols, 2))

    # SDXL UNet pass (batch 1): one round, no warm-up run (each run is 20-50 s; the first-call costs are small)
    s = sz(1024, 256)
    cols = [Col("jdiffusion fp32", "jd", ["bench", "unet", "--arch", "sdxl", "--batch", "1", "-W", s, "-H", s,
                                          "--runs", "1", "--warmup", "0"] + jd_common)]
    if jd_precision:
        cols.append(Col("jdiffusion bf16", "jd", cols[0].argv + ["--precision", "bf16"]))
    for p in ("fp32", "bf16"):
        cols.append(Col("PyTorch " + p, "torch", ["unet", "--arch", "sdxl", "--size", s, "--batch", "1",
                                                  "--precision", p, "--runs", "1", "--warmup", "0"]))
    out.append(Row("sdxl-unet", "SDXL %sx%s UNet pass (batch 1)" % (s, s), 1, cols, 3))

    # RRDBNet x4 upscale (ESRGAN, 23 blocks, 64 features), tile 512 as ComfyUI / ours
    s = sz(512, 64)
    blocks = "4" if q else "23"
    cols = [Col("jdiffusion fp32", "jd", ["bench", "upscale", "-W", s, "-H", s, "--blocks", blocks, "--tile", "512",
                                          "--runs", "1"] + jd_common)]
    for p in ("fp32", "bf16"):
        cols.append(Col("PyTorch " + p, "torch", ["upscale", "--size", s, "--blocks", blocks, "--tile", "512",
                                                  "--precision", p, "--runs", "1", "--warmup", "0"]))
    out.append(Row("upscale", "RRDBNet x4 %s -> %d (%s blocks, tile 512)" % (s, 4 * int(s), blocks), 1, cols, 2))

    # stable-diffusion.cpp: SD1.5 generation on the same random file, seconds per step (cfg 7)
    s = sz(512, 256)
    f = os.path.join(a.files, "sd15-random-f16.safetensors")
    cols = [Col("jdiffusion fp32", "jd", ["bench", "generate", "-c", f, "-W", s, "-H", s, "--steps", steps,
                                          "--cfg", "7"] + jd_common, metric="per-step"),
            Col("stable-diffusion.cpp", "sdcpp", ["-m", f, "-W", s, "-H", s, "--steps", steps, "--cfg-scale", "7"],
                metric="per-step")]
    out.append(Row("sdcpp-sd15", "SD1.5 %sx%s generation, s/step (cfg 7, %s steps)" % (s, s, steps), 1, cols, 2.5))

    # stable-diffusion.cpp: SD3.5 Medium at 1024x1024, s/step (cfg 4.5: two MMDiT evaluations per step); ours is
    # `bench unet` on the same file, batch 2 (154 context tokens), which is the same work as one cfg step.
    s = sz(1024, 256)
    f = os.path.join(a.files, "sd35m-random-f16.safetensors")
    cols = [Col("jdiffusion fp32", "jd", ["bench", "unet", "-c", f, "--batch", "2", "-W", s, "-H", s, "--runs", "1",
                                          "--warmup", "0"] + jd_common),
            Col("stable-diffusion.cpp", "sdcpp", ["-m", f, "--clip_l", os.path.join(a.files, CLIP_L),
                                                  "--clip_g", os.path.join(a.files, CLIP_G), "-W", s, "-H", s,
                                                  "--steps", a.sd35_steps, "--cfg-scale", "4.5"], metric="per-step")]
    out.append(Row("sd35m", "SD3.5 Medium %sx%s, s per cfg step" % (s, s), 1, cols, 10))
    return out


DEFAULT_ROWS = ["sd15-unet", "vae", "sdxl-unet", "upscale", "sdcpp-sd15"]


# ------------------------------------------------------------------------------------------------ running
def command(a, col):
    if col.kind == "jd":
        return [a.jdiffusion] + col.argv
    if col.kind == "torch":
        return ["/usr/bin/python3", os.path.join(HERE, "torch_bench.py")] + col.argv + ["--threads", str(a.threads)]
    if col.kind == "sdcpp":
        return ["/usr/bin/time", "-v", a.sdcpp, "-p", PROMPT, "--sampling-method", "euler", "-s", "42",
                "-t", str(a.threads), "-o", os.path.join(a.log, "sdcpp.png")] + col.argv + shlex.split(a.sdcpp_args)
    raise ValueError(col.kind)


def num(pattern, text, group=1):
    m = re.findall(pattern, text)
    return float(m[-1] if isinstance(m[-1], str) else m[-1][group - 1]) if m else None


def parse(col, text, steps):
    """-> dict(seconds, rss_gb, peak_gflops) from one process's output; seconds None when it failed."""
    r = {"seconds": None, "rss_gb": None, "peak": None}
    if col.kind == "jd":
        r["peak"] = num(r"of the ([0-9.]+) GFLOP/s peak", text) or num(r"FMA peak now: ([0-9.]+)", text) \
            or num(r"peak FMA rate before: ([0-9.]+)", text)
        r["rss_gb"] = num(r"peak resident memory ([0-9.]+) GB", text)
        if col.metric == "per-step":
            sampling = num(r"sampling ([0-9.]+)s", text)
            r["seconds"] = sampling / steps if sampling is not None else None
        else:
            r["seconds"] = num(r"median ([0-9.]+) s", text)
    elif col.kind == "torch":
        m = re.search(r"RESULT .* median=([0-9.]+) peak_rss_gb=([0-9.]+)", text)
        if m:
            r["seconds"], r["rss_gb"] = float(m.group(1)), float(m.group(2))
    elif col.kind == "sdcpp":
        # sd.cpp loads the diffusion model's weights lazily, inside its sampling stage: take those loads out
        # ("loading tensors completed" between the text conditioning and the end of sampling), as jdiffusion's
        # sampling stage excludes its load
        sampling = num(r"sampling completed, taking ([0-9.]+)s", text)
        if sampling is not None:
            start = text.find("get_learned_condition completed")
            end = text.find("sampling completed, taking")
            loads = re.findall(r"loading tensors completed, taking ([0-9.]+)s", text[max(start, 0):end])
            r["load_in_sampling"] = sum(float(x) for x in loads)
            r["seconds"] = (sampling - r["load_in_sampling"]) / steps
        kb = num(r"Maximum resident set size \(kbytes\): ([0-9]+)", text)
        r["rss_gb"] = kb * 1024 / 1e9 if kb is not None else None
    return r


def steps_of(col):
    for flag in ("--steps",):
        if flag in col.argv:
            return int(col.argv[col.argv.index(flag) + 1])
    return 1


def run(a, row, col, rnd, env):
    cmd = command(a, col)
    name = "%s.%s.r%d.log" % (row.key, re.sub(r"[^a-z0-9]+", "-", col.name.lower()), rnd)
    path = os.path.join(a.log, name)
    print("  [%s] %s" % (time.strftime("%H:%M:%S"), " ".join(shlex.quote(c) for c in cmd)), flush=True)
    t0 = time.time()
    with open(path, "w") as log:
        log.write("$ %s\n" % " ".join(shlex.quote(c) for c in cmd))
        log.flush()
        try:
            p = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, timeout=a.timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    wall = time.time() - t0
    with open(path) as f:
        text = f.read()
    r = parse(col, text, steps_of(col))
    r["wall"], r["rc"], r["log"] = wall, rc, path
    state = "ok" if rc == 0 and r["seconds"] is not None else "FAILED (rc %s, see %s)" % (rc, path)
    sec = "%.2f s" % r["seconds"] if r["seconds"] is not None else "-"
    rss = ", peak RSS %.2f GB" % r["rss_gb"] if r["rss_gb"] is not None else ""
    print("    %s: %s%s (process %.0f s) %s" % (col.name, sec, rss, wall, state), flush=True)
    return r


def load_average():
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def ensure_file(a, arch, path, env):
    if arch == "sd35m" and not all(os.path.exists(os.path.join(a.files, f)) for f in (CLIP_L, CLIP_G)):
        print("writing random CLIP-L and CLIP-G files for stable-diffusion.cpp (once, not timed)", flush=True)
        subprocess.run(["/usr/bin/python3", os.path.join(HERE, "random_clip.py"), a.files], check=True)
    if os.path.exists(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    print("writing %s (random %s checkpoint, fp16; once, not timed)" % (path, arch), flush=True)
    subprocess.run([a.jdiffusion, "dev", "random-checkpoint", "--arch", arch, "-o", path], check=True, cwd=ROOT,
                   env=env)


def table(a, selected, results, started, finished):
    cols = []
    for row in selected:
        for c in row.cols:
            if c.name not in cols:
                cols.append(c.name)
    lines = ["Side-by-side, %d threads%s; %s to %s UTC, load average %s at the start; seconds per round "
             "(the columns alternate: odd rounds left to right, even rounds right to left), peak RSS in "
             "parentheses (max over rounds)." % (a.threads, ", QUICK (small sizes: proves the scripts, not a "
                                                 "measurement)" if a.quick else "", started, finished,
                                                 results["load"]), "",
             "| measurement | " + " | ".join(cols) + " | jdiffusion's measured FMA peak |",
             "|---|" + "---|" * (len(cols) + 1)]
    for row in selected:
        cells = []
        for name in cols:
            runs = results.get((row.key, name))
            if runs is None:
                cells.append("")
                continue
            secs = ["%.2f" % r["seconds"] if r["seconds"] is not None else "failed" for r in runs]
            rss = [r["rss_gb"] for r in runs if r["rss_gb"] is not None]
            cell = " / ".join(secs) + " s"
            if rss:
                cell += " (%.1f GB)" % max(rss)
            cells.append(cell)
        peaks = [r["peak"] for c in row.cols for r in results.get((row.key, c.name), []) if r.get("peak")]
        peak = "%.0f GFLOP/s" % statistics.mean(peaks) if peaks else ""
        lines.append("| %s | %s | %s |" % (row.title, " | ".join(cells), peak))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description="jdiffusion vs PyTorch (diffusers) vs stable-diffusion.cpp, "
                                            "alternating in one window")
    p.add_argument("--rows", default=",".join(DEFAULT_ROWS),
                   help="comma-separated rows, or 'all' (default: %(default)s; also: sd35m)")
    p.add_argument("--rounds", type=int, default=0, help="rounds per row (default: the row's: 2 for sd15-unet, "
                                                         "else 1)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=2, help="sampling steps of the sdcpp-sd15 row (default 2)")
    p.add_argument("--sd35-steps", default="1", help="sampling steps of the sd35m row (default 1)")
    p.add_argument("--quick", action="store_true", help="small sizes and models: checks the scripts in minutes")
    p.add_argument("--only", default="", help="comma-separated column kinds to run: jd,torch,sdcpp (default all)")
    p.add_argument("--peers", default=os.environ.get("PEERS_DIR", "/tmp/peers"),
                   help="where install-peers.sh put the peers (default: $PEERS_DIR or /tmp/peers)")
    p.add_argument("--files", default="", help="folder of the random checkpoints (default: PEERS/files)")
    p.add_argument("--log", default="", help="log folder (default: PEERS/logs/<time>)")
    p.add_argument("--sdcpp-args", default="", help="extra sd-cli options, written --sdcpp-args=--diffusion-fa (default none)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per process before it is stopped")
    p.add_argument("--jdiffusion", default=os.path.join(ROOT, "jdiffusion"))
    p.add_argument("--list", action="store_true", help="print the rows and their commands, run nothing")
    a = p.parse_args()
    a.files = a.files or os.path.join(a.peers, "files")
    a.sdcpp = os.path.join(a.peers, "sdcpp", "build", "bin", "sd-cli")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    a.log = a.log or os.path.join(a.peers, "logs", stamp)

    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(a.peers, "py") + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[v] = str(a.threads)

    help_text = subprocess.run([a.jdiffusion, "bench", "unet", "--help"], capture_output=True, text=True, cwd=ROOT,
                               env=env).stdout if not a.list else ""
    jd_precision = "--precision" in help_text
    everything = rows(a, jd_precision)
    by_key = {r.key: r for r in everything}
    keys = [r.key for r in everything] if a.rows == "all" else [k.strip() for k in a.rows.split(",") if k.strip()]
    unknown = [k for k in keys if k not in by_key]
    if unknown:
        sys.exit("unknown row(s) %s (known: %s)" % (", ".join(unknown), ", ".join(by_key)))
    selected = [by_key[k] for k in keys]
    kinds = set(a.only.split(",")) if a.only else {"jd", "torch", "sdcpp"}
    for row in selected:
        row.cols = [c for c in row.cols if c.kind in kinds]
        if a.rounds:
            row.rounds = a.rounds
    selected = [row for row in selected if row.cols]
    keys = [row.key for row in selected]

    if a.list:
        for row in selected:
            print("%s: %s, %d round(s), about %g min on a quiet machine" % (row.key, row.title, row.rounds,
                                                                            row.minutes * row.rounds))
            for c in row.cols:
                print("   %-22s %s" % (c.name, " ".join(shlex.quote(x) for x in command(a, c))))
        return

    os.makedirs(a.log, exist_ok=True)
    if any(c.kind == "sdcpp" for r in selected for c in r.cols) and not os.access(a.sdcpp, os.X_OK):
        sys.exit("no stable-diffusion.cpp at %s: run scripts/peers/install-peers.sh first" % a.sdcpp)
    for row in selected:
        if row.key in ("sdcpp-sd15", "sd35m"):
            ensure_file(a, "sd15" if row.key == "sdcpp-sd15" else "sd35m",
                        row.cols[0].argv[row.cols[0].argv.index("-c") + 1] if row.cols[0].kind == "jd" else
                        row.cols[0].argv[row.cols[0].argv.index("-m") + 1], env)

    print("rows: %s; about %g min on a quiet 2-thread machine" % (", ".join(keys), sum(
        r.minutes * r.rounds for r in selected)), flush=True)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    results = {"load": load_average()}
    print("jdiffusion bench %s --precision; logs in %s" % ("takes" if jd_precision else "has no", a.log))
    for row in selected:
        print("== %s (%d round(s))" % (row.title, row.rounds), flush=True)
        for rnd in range(1, row.rounds + 1):
            order = row.cols if rnd % 2 == 1 else list(reversed(row.cols))
            print(" round %d, load average %s" % (rnd, load_average()), flush=True)
            for col in order:
                results.setdefault((row.key, col.name), []).append(run(a, row, col, rnd, env))
    finished = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M")
    text = table(a, selected, results, started, finished)
    with open(os.path.join(a.log, "table.md"), "w") as f:
        f.write(text + "\n")
    print()
    print(text)
    print("\n(table and every process's output in %s)" % a.log)


if __name__ == "__main__":
    main()
