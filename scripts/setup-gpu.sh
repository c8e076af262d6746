#!/usr/bin/env bash
# Installs a software GPU for WebGPU (Dawn) on a machine without one, from Debian's packages:
#   - Vulkan through Mesa's lavapipe, from bookworm-backports: bookworm's own Mesa 22.3 is too
#     old for Dawn (it lacks shaderUniform*ArrayDynamicIndexing); backports' Mesa 25 works at
#     the core feature level with shader-f16, subgroups and timestamp queries;
#   - GLES/EGL through llvmpipe (stock packages), the fallback adapter.
# Idempotent: installs only what is missing and says what it did. Needs root (CI runs as root).
set -euo pipefail

say() { echo "setup-gpu: $*"; }
sudo_if() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
backports="${codename}-backports"
list=/etc/apt/sources.list.d/lomoc-backports.sources

lavapipe_ok() {
  # lvp_icd is lavapipe's Vulkan driver manifest; its Mesa must come from backports (>= 23).
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  [ -n "$v" ] && dpkg --compare-versions "$v" ge 23 && ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1
}
gles_ok() { dpkg-query -W -f='${Status}' libegl-mesa0 libgles2 2>/dev/null | grep -q 'install ok installed'; }

if lavapipe_ok && gles_ok; then
  say "lavapipe (Mesa $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)) and GLES/EGL already installed; nothing to do"
  exit 0
fi

if [ ! -f "$list" ]; then
  say "adding ${backports} to apt sources"
  sudo_if tee "$list" >/dev/null <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: ${backports}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
export DEBIAN_FRONTEND=noninteractive
say "apt-get update"
sudo_if apt-get update -qq
if ! lavapipe_ok; then
  say "installing Mesa's Vulkan drivers (lavapipe) from ${backports}"
  sudo_if apt-get install -y -qq -t "$backports" mesa-vulkan-drivers libvulkan1 >/dev/null
fi
if ! gles_ok; then
  say "installing GLES/EGL (llvmpipe) for the compatibility adapter"
  sudo_if apt-get install -y -qq libegl-mesa0 libgles2 libegl1 >/dev/null
fi
lavapipe_ok || { say "lavapipe is still missing after install"; exit 1; }
say "installed: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers), GLES/EGL"
