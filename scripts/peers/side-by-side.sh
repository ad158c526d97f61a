#!/usr/bin/env bash
# jdiffusion's bench commands beside PyTorch (diffusers) and stable-diffusion.cpp, alternating in one window.
# Install the peers first (scripts/peers/install-peers.sh). Options: scripts/peers/side-by-side.sh --help
exec /usr/bin/python3 "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/side_by_side.py" "$@"
