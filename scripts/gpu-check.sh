#!/usr/bin/env bash
# Runs scripts/gpu-check.ts on a lent machine with a real GPU, where nothing can be installed
# (about 5 minutes; its report goes to $OUT/gpu-check.json; GPU_CHECK_SMALL=1 shrinks every shape):
# node, Dawn and the GL/Vulkan loaders travel in .gpu-kit/ and .gl/ (git-ignored), made here by
#   xz -c $(command -v node) > .gpu-kit/node.xz
#   tar -C node_modules/webgpu -cJf .gpu-kit/webgpu.tar.xz index.js package.json dist/linux-x64
#   npx esbuild scripts/gpu-check.ts --bundle --platform=node --format=esm --external:webgpu --outfile=.gpu-kit/check.mjs
# Optionally a learning-rate sweep (scripts/lr-sweep.ts) after the check, when .gpu-kit/sweep.args
# holds its arguments after DATA and OUT (STEPS BUNDLE:lr,... with bundles under .gpu-kit/):
#   npx esbuild scripts/lr-sweep.ts --bundle --platform=node --format=esm --external:webgpu --outfile=.gpu-kit/sweep.mjs \
#     --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
#   node -e "require('fs').writeFileSync('.gpu-kit/moby.txt', ...)"   (the text `--data moby-dick` loads)
# and Debian's libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 downloaded into .gl/.
# The adapter is chosen as usual: Vulkan (NVIDIA's ICD), else GLES on NVIDIA's EGL.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}
run=/tmp/lomoc-gpu; mkdir -p "$run/node_modules/webgpu"
xz -dc .gpu-kit/node.xz > "$run/node" && chmod +x "$run/node"
tar -xJf .gpu-kit/webgpu.tar.xz -C "$run/node_modules/webgpu"
cp .gpu-kit/check.mjs "$run/"
kit=$(pwd)/.gpu-kit
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2
# The memory budget of the largest-model and LLaMA-7B-shaped runs (WebGPU does not say how much there is).
if [ -z "${GPU_CHECK_MEMORY:-}" ]; then
  mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null | head -1 | tr -dc 0-9)
  [ -n "$mib" ] && export GPU_CHECK_MEMORY=$((mib * 1048576))
fi
cd "$run" && timeout "${1:-330}" ./node check.mjs "${OUT:-/tmp}" 2>&1 | grep -v 'artificially reduced'
if [ -f "$kit/sweep.args" ]; then
  cp "$kit/sweep.mjs" "$run/" && cd "$kit" && timeout "${2:-300}" "$run/node" "$run/sweep.mjs" "$kit/moby.txt" "${OUT:-/tmp}" $(cat "$kit/sweep.args") 2>&1 | grep -v 'artificially reduced'
fi
