// Hand-written StepPrograms for the runtime tests: small WGSL written here, so the executor and
// the trainer are tested without the compiler. `linearRegression` is a whole SGD step of
// loss = mean((x·w + c - y)^2), with a host oracle in f64.
import type { Dispatch, StepProgram, TensorSlot } from '../../contract/program.ts';

const header = (names: readonly string[], writes: readonly string[], uniforms?: string) =>
  names
    .map((n, i) => `@group(0) @binding(${i}) var<storage, ${writes.includes(n) ? 'read_write' : 'read'}> ${n}: array<f32>;`)
    .concat(uniforms ? [`struct U { ${uniforms} }`, `@group(0) @binding(${names.length}) var<uniform> u: U;`] : [])
    .join('\n');

/** A bump allocator over one arena: 256-byte aligned, as the planner places tensors. */
export function layout() {
  let top = 0;
  const slot = (name: string, shape: number[], dtype: 'f32' | 'i32' | 'f16' = 'f32'): TensorSlot => {
    const bytes = shape.reduce((a, b) => a * b, 1) * (dtype === 'f16' ? 2 : 4);
    const s = { name, arena: 0, offset: top, bytes, shape, dtype };
    top += Math.ceil(bytes / 256) * 256;
    return s;
  };
  return { slot, size: () => top };
}

const bind = (s: TensorSlot, write = false) => ({ arena: s.arena, offset: s.offset, bytes: s.bytes, write });

export interface Regression {
  readonly program: StepProgram;
  readonly batch: number;
  readonly features: number;
}

/**
 * SGD on linear regression, three dispatches: residuals, the loss, and the fused gradient +
 * update of w (LOMO-style: the gradient never exists in memory) and c. `wg` is the residual
 * kernel's workgroup size (above 128 it needs the raised compatibility-mode limit).
 */
export function linearRegression(batch = 5, features = 3, wg = 64): Regression {
  const l = layout();
  const x = l.slot('x', [batch, features]);
  const y = l.slot('y', [batch]);
  const w = l.slot('w', [features]);
  const c = l.slot('c', [1]);
  const r = l.slot('r', [batch]);
  const loss = l.slot('loss', []);
  const lr = l.slot('lr', []);
  const wd = l.slot('weightDecay', []);
  const residual = `${header(['x', 'w', 'c', 'y', 'r'], ['r'], 'b: u32, d: u32')}
@compute @workgroup_size(${wg}) fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  if (i >= u.b) { return; }
  var s = c[0];
  for (var k = 0u; k < u.d; k++) { s += x[i * u.d + k] * w[k]; }
  r[i] = s - y[i];
}`;
  const meanSquare = `${header(['r', 'loss'], ['loss'], 'b: u32')}
@compute @workgroup_size(1) fn main() {
  var s = 0.0;
  for (var i = 0u; i < u.b; i++) { s += r[i] * r[i]; }
  loss[0] = s / f32(u.b);
}`;
  // Thread d < features updates w[d]; thread `features` updates c.
  const update = `${header(['x', 'r', 'w', 'c', 'lr', 'wd'], ['w', 'c'], 'b: u32, d: u32')}
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  let d = g.x;
  if (d > u.d) { return; }
  var s = 0.0;
  for (var i = 0u; i < u.b; i++) { s += select(x[i * u.d + d], 1.0, d == u.d) * r[i]; }
  let grad = 2.0 * s / f32(u.b);
  if (d == u.d) { c[0] = c[0] - lr[0] * grad; }
  else { w[d] = w[d] - lr[0] * (grad + wd[0] * w[d]); }
}`;
  const dispatches: Dispatch[] = [
    { shader: `residual${wg}`, label: 'residual @ test/gpu/programs.ts', bindings: [bind(x), bind(w), bind(c), bind(y), bind(r, true)], uniforms: [batch, features], workgroups: [Math.ceil(batch / wg), 1, 1] },
    { shader: 'meanSquare', label: 'meanSquare @ test/gpu/programs.ts', bindings: [bind(r), bind(loss, true)], uniforms: [batch], workgroups: [1, 1, 1] },
    { shader: 'update', label: 'sgdUpdate @ test/gpu/programs.ts', bindings: [bind(x), bind(r), bind(w, true), bind(c, true), bind(lr), bind(wd)], uniforms: [batch, features], workgroups: [Math.ceil((features + 1) / 64), 1, 1] },
  ];
  return {
    batch,
    features,
    program: {
      version: 1,
      name: 'linear-regression',
      arenas: [l.size()],
      inputs: [x, y, lr, wd],
      params: [
        { ...w, init: { kind: 'normal', std: 0.5 } },
        { ...c, init: { kind: 'zeros' } },
      ],
      state: [],
      loss,
      shaders: { [`residual${wg}`]: residual, meanSquare, update },
      dispatches,
      limits: { maxStorageBuffersPerShaderStage: 6, maxComputeInvocationsPerWorkgroup: Math.max(wg, 64), maxComputeWorkgroupStorageSize: 0 },
      features: [],
    },
  };
}

/** The oracle: the same steps in f64 on the host. Returns each step's loss and the final params. */
export function regressionOracle(
  r: Regression,
  start: { w: ArrayLike<number>; c: number },
  batches: readonly { x: Float32Array; y: Float32Array }[],
  hyper: { lr: number; weightDecay: number },
) {
  const w = Array.from(start.w);
  let c = start.c;
  const losses: number[] = [];
  for (const { x, y } of batches) {
    const res = Array.from({ length: r.batch }, (_, i) => w.reduce((s, wk, k) => s + x[i * r.features + k] * wk, c) - y[i]);
    losses.push(res.reduce((s, v) => s + v * v, 0) / r.batch);
    const gw = w.map((_, k) => (2 * res.reduce((s, v, i) => s + x[i * r.features + k] * v, 0)) / r.batch);
    const gc = (2 * res.reduce((s, v) => s + v, 0)) / r.batch;
    w.forEach((wk, k) => (w[k] = wk - hyper.lr * (gw[k] + hyper.weightDecay * wk)));
    c -= hyper.lr * gc;
  }
  return { losses, w, c };
}

/** A program whose one dispatch spins for about a second on lavapipe: to lose the device mid-step. */
export function slowProgram(iterations = 400_000): StepProgram {
  const l = layout();
  const out = l.slot('loss', []);
  const code = `${header(['loss'], ['loss'], 'n: u32')}
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  var s = 0.0;
  for (var i = 0u; i < u.n; i++) { s = fract(s * 1.0001 + 0.5); }
  if (g.x == 0u) { loss[0] = s; }
}`;
  return {
    version: 1,
    name: 'slow',
    arenas: [l.size()],
    inputs: [],
    params: [],
    state: [],
    loss: out,
    shaders: { spin: code },
    dispatches: [{ shader: 'spin', label: 'spin @ test/gpu/programs.ts', bindings: [bind(out, true)], uniforms: [iterations], workgroups: [64, 1, 1] }],
    limits: { maxStorageBuffersPerShaderStage: 1, maxComputeInvocationsPerWorkgroup: 64, maxComputeWorkgroupStorageSize: 0 },
    features: [],
  };
}
