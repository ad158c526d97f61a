#!/usr/bin/env bash
# Installs the peers of scripts/peers/side-by-side.sh under PEERS_DIR (default /tmp/peers), offline, from:
#   - Debian packages: PyTorch 1.13.1 (oneDNN 2.6, OpenBLAS) for /usr/bin/python3 and its pure-Python deps;
#   - git checkouts (or snapshots) of huggingface/diffusers (tag v0.27.2: runs on torch 1.13),
#     huggingface/huggingface_hub (tag v0.23.5), leejet/stable-diffusion.cpp (tested at 97d2990807fe) and its
#     ggml submodule (ggml-org/ggml at the commit the sd.cpp tree pins: 8e800cef2948).
# usage: DIFFUSERS=dir HFHUB=dir SDCPP=dir GGML=dir scripts/peers/install-peers.sh [--no-apt] [--no-sdcpp]
# Each dir is a git repository (a bare mirror is fine): the script exports the pinned revision with git archive.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
P="${PEERS_DIR:-/tmp/peers}"
DIFFUSERS_REV="${DIFFUSERS_REV:-v0.27.2}"
HFHUB_REV="${HFHUB_REV:-v0.23.5}"
SDCPP_REV="${SDCPP_REV:-HEAD}"
apt=1; sdcpp=1
for a in "$@"; do
  case "$a" in --no-apt) apt=0 ;; --no-sdcpp) sdcpp=0 ;; *) echo "unknown option $a" >&2; exit 2 ;; esac
done
mkdir -p "$P/py"

if [ "$apt" = 1 ]; then
  apt-get install -y python3-torch python3-numpy python3-pil python3-regex python3-filelock python3-requests \
    python3-yaml python3-tqdm python3-packaging python3-fsspec python3-typing-extensions \
    python3-importlib-metadata cmake g++ time
fi

# export REV of git repository SRC into DEST, skipping blobs the snapshot lacks (large files of a partial mirror)
export_tree() {
  local src="$1" rev="$2" dest="$3" sub="${4:-.}"
  rm -rf "$dest"; mkdir -p "$dest"
  local missing
  missing=$(git -C "$src" ls-tree -r "$rev" -- "$sub" | awk '$2=="blob"{print $3" "$4}' |
            while read -r h path; do
              if ! git -C "$src" cat-file -e "$h" 2>/dev/null; then printf ':(exclude)%s\n' "$path"; fi
            done)
  # shellcheck disable=SC2086
  git -C "$src" archive "$rev" -- "$sub" $missing | tar -x -C "$dest"
  [ -z "$missing" ] || echo "$dest: left out (absent from the snapshot):" $missing
}

# diffusers + huggingface_hub as plain source trees on PYTHONPATH, and an import-only safetensors stand-in:
# the Rust package cannot be built offline, and the benchmarks never read or write .safetensors files.
: "${DIFFUSERS:?set DIFFUSERS to a huggingface/diffusers git repository}"
: "${HFHUB:?set HFHUB to a huggingface/huggingface_hub git repository}"
export_tree "$DIFFUSERS" "$DIFFUSERS_REV" "$P/diffusers-src" src
export_tree "$HFHUB" "$HFHUB_REV" "$P/hfhub-src" src
ln -sfn "$P/diffusers-src/src/diffusers" "$P/py/diffusers"
ln -sfn "$P/hfhub-src/src/huggingface_hub" "$P/py/huggingface_hub"
mkdir -p "$P/py/safetensors"
cat > "$P/py/safetensors/__init__.py" <<'PY'
"""Import-only stand-in for the Rust `safetensors` package (not installable offline): the peer benchmarks build
their models from configs with random weights and never read or write .safetensors files."""
__version__ = "0.0.0-shim"


class SafetensorError(Exception):
    pass


def _unavailable(*args, **kwargs):
    raise SafetensorError("safetensors shim: reading/writing .safetensors files is not available here")


safe_open = _unavailable
PY
cat > "$P/py/safetensors/torch.py" <<'PY'
from . import _unavailable as load_file, _unavailable as save_file, _unavailable as load, _unavailable as save  # noqa
from . import safe_open  # noqa
PY
PYTHONPATH="$P/py" /usr/bin/python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)"

# stable-diffusion.cpp, CPU only, -march=native (AVX-512 on this Zen 5), OpenMP, llamafile's sgemm
if [ "$sdcpp" = 1 ]; then
  : "${SDCPP:?set SDCPP to a leejet/stable-diffusion.cpp git repository}"
  : "${GGML:?set GGML to a ggml-org/ggml git repository (holding the commit sd.cpp pins)}"
  export_tree "$SDCPP" "$SDCPP_REV" "$P/sdcpp"
  ggml_rev=$(git -C "$SDCPP" ls-tree "$SDCPP_REV" ggml | awk '{print $3}')
  rm -rf "$P/sdcpp/ggml"; mkdir -p "$P/sdcpp/ggml"
  git -C "$GGML" archive "$ggml_rev" | tar -x -C "$P/sdcpp/ggml"
  # the tokenizer headers are multi-MB blobs a snapshot may lack: T5's is rebuilt from the real tokenizer.json
  python3 "$here/sdcpp_vocab.py" "$P/sdcpp" "${T5_TOKENIZER_JSON:-$here/../../../shared/vocab/t5/tokenizer.json}"
  cmake -S "$P/sdcpp" -B "$P/sdcpp/build" -DCMAKE_BUILD_TYPE=Release -DSD_WEBP=OFF -DSD_WEBM=OFF \
    -DGGML_NATIVE=ON -DGGML_LLAMAFILE=ON -DGGML_OPENMP=ON
  cmake --build "$P/sdcpp/build" --target sd-cli -j "$(nproc)"
  ls -l "$P/sdcpp/build/bin/sd-cli"
fi
echo "peers installed under $P"
