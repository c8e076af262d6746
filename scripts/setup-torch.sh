#!/usr/bin/env bash
# Installs PyTorch for /usr/bin/python3 from Debian's packages (python3-torch, 1.13 on bookworm),
# the peer the Hugging Face parity tests compare against (test/peers/hf_peer.py, test/hf/*.test.ts)
# and the bench peers use. Idempotent: installs only when `import torch` fails, and says what it did.
# Needs root (CI runs as root) or sudo.
set -euo pipefail

say() { echo "setup-torch: $*"; }
sudo_if() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
  say "torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') already importable by /usr/bin/python3; nothing to do"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
say "installing python3-torch and python3-numpy with apt-get"
sudo_if apt-get update -qq
sudo_if apt-get install -y -qq --no-install-recommends python3-torch python3-numpy
say "installed: torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)')"
