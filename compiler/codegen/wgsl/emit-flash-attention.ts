// FlashAttention-2-style attention for GPUs (the `gpu` kernel target; the `cpu` target keeps
// emit-attention.ts's row kernels). A workgroup takes BR rows of one sequence, a thread each;
// the rows it streams over are staged BC at a time in workgroup memory, loaded once per tile
// for all BR threads (the row kernels load them from storage per thread).
//   forward: a workgroup per BR query rows; K and V tiles staged; online softmax (running max m
//            and sum l) in registers, rescaled once per tile; writes y and lse = m + log(l).
//   dq:      a workgroup per BR query rows; K and V tiles staged; p = exp(s - lse) straight from
//            the forward's lse (no max/sum pass); dq = scale * (sum p dp k - D sum p k) with
//            D = sum_j p dp accumulated in the same pass (D_i = rowsum(dout * y) without y, so
//            the backward saves nothing but lse); writes D per row into scratch (the row
//            kernels' scratch rule, emit-attention.ts, whose first half it uses).
//   dkv:     a workgroup per BR key rows; Q, dout, lse and D tiles staged; dk, dv in registers.
// No atomics (WGSL has none for floats): each output row is one thread's. Causal workgroups skip
// the tiles every row of theirs masks (keys past the block's last query; queries before its
// first key). Work per row: forward 2 T Dh multiply-adds, backward 8 T Dh (the row kernels' 9).
// Baked: BR, BC, the private rows' capacity and the load width (vec4f when Dh % 4 == 0); T, Dh,
// the scale and the causal flag are uniforms (baking Dh makes lavapipe unroll and JIT for tens
// of seconds: emit-attention.ts). Rows past T compute on clamped rows and store nothing.
// Measured on lavapipe (bench/attention.ts, causal f32 fwd + bwd, best of 3 alternated, load
// 12-15 on 2 cores): gpt small [8, 4, 128, 32] flash 263 ms, the gpu target's row kernels 277, the
// cpu target's 72; [8, 12, 256, 64] 7.8 s, 6.6, 3.1; [1, 12, 1024, 64] 11.6 s, 8.6, 4.8. A software
// adapter gains nothing from workgroup memory and pays for barriers, so the cpu target (what
// lavapipe gets) keeps the row kernels; on a real GPU the tiles cut storage reads BR-fold (unmeasured).
import { CompilerBug } from '../../diagnostics.ts';
import { numel } from '../../ir/shape.ts';
import type { NodeOf } from '../../ir/types.ts';
import { bindOnce, type Operand } from './bind-once.ts';
import { type EmitContext, f32bits, grid, type KernelCall } from './emitter.ts';
import { floatStorage } from './f16-storage.ts';
import type { KernelTarget } from './target.ts';

/** Whether `target` runs attention with head dim `d` as flash kernels. */
export const usesFlash = (target: KernelTarget, d: number): boolean => !!target.attention.flash && d > 0 && d <= target.attention.flash.maxHeadDim;

interface Shape {
  readonly seqs: number;
  readonly t: number;
  readonly d: number;
  /** Elements per load: 4 (vec4f) when Dh is a multiple of 4, else 1. */
  readonly w: number;
  /** Capacity of a private or staged row in units of w floats: Dh rounded up to a power of two. */
  readonly cap: number;
  readonly half: 'f16' | 'bf16' | null;
  readonly br: number;
}

function shapeOf(n: NodeOf<'attention' | 'attentionGrad'>, c: EmitContext): Shape {
  const qv = c.g.values[n.inputs[0]];
  const [t, d] = qv.shape.slice(-2);
  const w = d % 4 === 0 ? 4 : 1;
  const cap = Math.max(w, 2 ** Math.ceil(Math.log2(d))) / w;
  const half = qv.dtype === 'f16' || qv.dtype === 'bf16' ? qv.dtype : null;
  return { seqs: numel(qv.shape) / (t * d), t, d, w, cap, half, br: c.target.attention.flash!.rows };
}

/** Staged rows per tile: the largest power of two (at most BR) whose tiles fit workgroup storage. */
function tileRows(s: Shape, tiles: number, rowStats: number, c: EmitContext): number {
  const rowBytes = tiles * s.cap * s.w * 4 + rowStats * 4;
  let bc = 1;
  while (bc * 2 <= s.br && bc * 2 * rowBytes <= c.limits.maxWorkgroupStorageBytes) bc *= 2;
  return bc;
}

/** Stage rows r0..r0+BC-1 of each `[binding, workgroup array]` (clamped to the last row), all threads together. */
const stage = (pairs: readonly (readonly [string, string])[], r0: string) => `for (var e = lid; e < BC * u.dw; e += BR) {
      let r = e / u.dw;
      let o = base + min(${r0} + r, u.t - 1u) * u.dw + e % u.dw;
      ${pairs.map(([from, to]) => `${to}[r * MAXD + e % u.dw] = ${from}[o];`).join('\n      ')}
    }`;
const loadRow = (name: string, from: string, f = '') => `var ${name}: array<E, MAXD>;
  for (var c = 0u; c < u.dw; c++) { ${name}[c] = ${from}[ro + c]${f}; }`;
/** Causal: keys past the block's last row are masked for all its rows; `last`: this row's last key. */
const keyRange = `let keys = select(u.t, min(lo + BR, u.t), u.causal != 0u);
  let last = vec4u(select(u.t - 1u, i, u.causal != 0u));`;
const four = [0, 1, 2, 3];
/** Staged rows j..j+3 of tile `tile` at element c, as `as`0..3 (tiles hold BC rows, BC a multiple of 4). */
const rows4 = (tile: string, as: string, j: string) => four.map((x) => `let ${as}${x} = ${tile}[(${j} + ${x}u) * MAXD + c];`).join(' ');
const dot4 = (mine: string, as: string) => `vec4f(${four.map((x) => `dotE(${mine}[c], ${as}${x})`).join(', ')})`;
const axpy4 = (w: string, as: string) => four.map((x) => `${w}.${'xyzw'[x]} * ${as}${x}`).join(' + ');

// Rows are taken four at a time (vec4 scores): the row kernels' measured shape, a quarter of the
// loop overhead and four independent dot products per element loaded.
const forwardBody = `  ${loadRow('qs', 'q', ' * u.scale')}
  var acc: array<E, MAXD>;
  var m = NEG;  // running max of the scores
  var l = 0.0;  // running sum of exp(score - m)
  var sc: array<vec4f, BC / 4u>;
  ${keyRange}
  for (var j0 = 0u; j0 < keys; j0 += BC) {
    workgroupBarrier();  // the previous tile is consumed
    ${stage([['k', 'kt'], ['v', 'vt']], 'j0')}
    workgroupBarrier();
    let n = min(BC, keys - j0);
    var top = m;
    for (var j = 0u; j < n; j += 4u) {
      var s = vec4f();
      for (var c = 0u; c < u.dw; c++) {
        ${rows4('kt', 'k', 'j')}
        s += ${dot4('qs', 'k')};
      }
      s = select(s, vec4f(NEG), vec4u(j0 + j) + vec4u(0u, 1u, 2u, 3u) > last);
      sc[j / 4u] = s;
      top = max(top, max(max(s.x, s.y), max(s.z, s.w)));
    }
    if (top > m) {  // once per tile: tile 0 holds key 0, so m is a real score from then on
      let a = exp(m - top);
      l *= a;
      for (var c = 0u; c < u.dw; c++) { acc[c] *= a; }
      m = top;
    }
    for (var j = 0u; j < n; j += 4u) {
      let p = exp(sc[j / 4u] - vec4f(m));  // masked: exp(NEG - m) = 0
      l += p.x + p.y + p.z + p.w;
      for (var c = 0u; c < u.dw; c++) {
        ${rows4('vt', 'v', 'j')}
        acc[c] += ${axpy4('p', 'v')};
      }
    }
  }
  if (i < u.t) {
    for (var c = 0u; c < u.dw; c++) { y[ro + c] = acc[c] / l; }
    lse[seq + i] = m + log(l);
  }`;

const dqBody = `  ${loadRow('qs', 'q', ' * u.scale')}
  ${loadRow('gs', 'dout')}
  var pdk: array<E, MAXD>;  // sum_j p dp k_j
  var pk: array<E, MAXD>;   // sum_j p k_j
  var dd = 0.0;             // D = sum_j p dp
  let li = vec4f(lse[seq + min(i, u.t - 1u)]);
  ${keyRange}
  for (var j0 = 0u; j0 < keys; j0 += BC) {
    workgroupBarrier();
    ${stage([['k', 'kt'], ['v', 'vt']], 'j0')}
    workgroupBarrier();
    let n = min(BC, keys - j0);
    for (var j = 0u; j < n; j += 4u) {
      var s = vec4f();
      var dp = vec4f();
      for (var c = 0u; c < u.dw; c++) {
        ${rows4('kt', 'k', 'j')}
        ${rows4('vt', 'v', 'j')}
        s += ${dot4('qs', 'k')};
        dp += ${dot4('gs', 'v')};
      }
      // masked (or past the tile's rows): 0, whatever exp gave
      let p = select(exp(s - li), vec4f(), vec4u(j0 + j) + vec4u(0u, 1u, 2u, 3u) > last);
      dd += dot(p, dp);
      let pdp = p * dp;
      for (var c = 0u; c < u.dw; c++) {
        ${rows4('kt', 'k', 'j')}
        pdk[c] += ${axpy4('pdp', 'k')};
        pk[c] += ${axpy4('p', 'k')};
      }
    }
  }
  if (i < u.t) {
    for (var c = 0u; c < u.dw; c++) { dq[ro + c] = (pdk[c] - dd * pk[c]) * u.scale; }
    drow[seq + i] = dd;
  }`;

const dkvBody = `  ${loadRow('kr', 'k', ' * u.scale')}
  ${loadRow('vr', 'v')}
  var ak: array<E, MAXD>;
  var av: array<E, MAXD>;
  // Causal: queries before the block's first key see none of its keys.
  let first = select(0u, lo, u.causal != 0u);
  for (var x0 = first; x0 < u.t; x0 += BC) {
    workgroupBarrier();
    ${stage([['q', 'qt'], ['dout', 'gt']], 'x0')}
    for (var e = lid; e < BC; e += BR) {
      let r = seq + min(x0 + e, u.t - 1u);
      lt[e] = lse[r];
      dt[e] = drow[r];
    }
    workgroupBarrier();
    let n = min(BC, u.t - x0);
    for (var x = 0u; x < n; x += 4u) {
      var s = vec4f();
      var dp = vec4f();
      for (var c = 0u; c < u.dw; c++) {
        ${rows4('qt', 'q', 'x')}
        ${rows4('gt', 'g', 'x')}
        s += ${dot4('kr', 'q')};
        dp += ${dot4('vr', 'g')};
      }
      let rows = vec4u(x0 + x) + vec4u(0u, 1u, 2u, 3u);
      let masked = (rows >= vec4u(u.t)) | (vec4<bool>(u.causal != 0u) & (rows < vec4u(i)));
      let p = select(exp(s - vec4f(lt[x], lt[x + 1u], lt[x + 2u], lt[x + 3u])), vec4f(), masked);
      let ds = p * (dp - vec4f(dt[x], dt[x + 1u], dt[x + 2u], dt[x + 3u]));
      for (var c = 0u; c < u.dw; c++) {
        ${rows4('qt', 'q', 'x')}
        ${rows4('gt', 'g', 'x')}
        av[c] += ${axpy4('p', 'g')};
        ak[c] += ${axpy4('ds', 'q')};
      }
    }
  }
  if (i < u.t) {
    for (var c = 0u; c < u.dw; c++) {
      dk[ro + c] = ak[c] * u.scale;
      dv[ro + c] = av[c];
    }
  }`;

interface Kernel {
  readonly kind: string;
  readonly body: string;
  /** Staged [T, Dh] tiles (E arrays) and per-row f32 tiles. */
  readonly tiles: readonly string[];
  readonly rowStats: readonly string[];
}

function kernel(k: Kernel, operands: readonly Operand[], s: Shape, a: { scale: number; causal: boolean }, c: EmitContext): KernelCall {
  const bc = tileRows(s, k.tiles.length, k.rowStats.length, c);
  if (bc < 4) throw new CompilerBug(`flash attention: tiles of ${bc} rows at head dim ${s.d} (four at a time needs 4): maxHeadDim is too large for ${c.limits.maxWorkgroupStorageBytes} bytes of workgroup storage`);
  const { bound, alias, code } = bindOnce(operands, k.body);
  // 16-bit operands are declared f16/bf16 (vec4 when E is a vec4) and read as E by f16-storage.ts.
  const stored = (name: string) => (name === 'lse' || name === 'drow' ? 'f32' : s.half ? floatStorage(s.half, s.w === 4) : 'E');
  const decls = bound.map(([name, , write], b) =>
    `@group(0) @binding(${b}) var<storage, ${write ? 'read_write' : 'read'}> ${name}: array<${stored(name)}>;`);
  const blocks = Math.ceil(s.t / s.br);
  return {
    key: `flash.${k.kind}.br${s.br}.bc${bc}.w${s.w}.cap${s.cap}${alias.map((x) => `.${x}`).join('')}`,
    code: `${decls.join('\n')}
struct U { seqs: u32, t: u32, blocks: u32, causal: u32, scale: f32, dw: u32 }
@group(0) @binding(${bound.length}) var<uniform> u: U;
const BR = ${s.br}u;   // rows per workgroup, a thread each
const BC = ${bc}u;    // rows per staged tile
const MAXD = ${s.cap}u;
alias E = ${s.w === 4 ? 'vec4f' : 'f32'};
fn dotE(a: E, b: E) -> f32 { return ${s.w === 4 ? 'dot(a, b)' : 'a * b'}; }
// A finite "minus infinity": exp(NEG - m) is 0 without inf - inf = NaN.
const NEG = -3.0e38;
${k.tiles.map((t) => `var<workgroup> ${t}: array<E, ${bc * s.cap}>;`).join('\n')}
${k.rowStats.map((t) => `var<workgroup> ${t}: array<f32, ${bc}>;`).join('\n')}

@compute @workgroup_size(BR)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= u.seqs * u.blocks) { return; }  // uniform: the grid's fold into 2D may overshoot
  let lo = (w % u.blocks) * BR;  // the workgroup's first row in its sequence
  let seq = (w / u.blocks) * u.t;  // the sequence's first row
  let base = seq * u.dw;  // and its first element (in units of E)
  let i = lo + lid;  // this thread's row
  let ro = (seq + min(i, u.t - 1u)) * u.dw;
${code}
}
`,
    bindings: bound.map(([, ref, write]) => ({ ...ref, write })),
    uniforms: [s.seqs, s.t, blocks, a.causal ? 1 : 0, f32bits(a.scale), s.d / s.w],
    workgroups: grid(s.seqs * blocks, 1, c.limits),
  };
}

const forward: Kernel = { kind: 'fwd', body: forwardBody, tiles: ['kt', 'vt'], rowStats: [] };
const dqKernel: Kernel = { kind: 'dq', body: dqBody, tiles: ['kt', 'vt'], rowStats: [] };
const dkvKernel: Kernel = { kind: 'dkv', body: dkvBody, tiles: ['qt', 'gt'], rowStats: ['lt', 'dt'] };

/** The forward: y and lse (the caller has checked usesFlash and that there are rows). */
export function flashAttention(n: NodeOf<'attention'>, c: EmitContext): KernelCall[] {
  const s = shapeOf(n, c);
  const [q, k, v] = n.inputs.map((x) => c.slot(x).ref);
  const [y, lse] = n.outputs.map((x) => c.slot(x).ref);
  return [kernel(forward, [['q', q, false], ['k', k, false], ['v', v, false], ['y', y, true], ['lse', lse, true]], s, n.attrs, c)];
}

/** The gradient: dq (and D into scratch 0), then dk and dv. */
export function flashAttentionGrad(n: NodeOf<'attentionGrad'>, c: EmitContext): KernelCall[] {
  const s = shapeOf(n, c);
  const [q, k, v, lse, dout] = n.inputs.map((x) => c.slot(x).ref);
  const [dq, dk, dv] = n.outputs.map((x) => c.slot(x).ref);
  const drow = c.scratch(0);
  const ins: Operand[] = [['q', q, false], ['k', k, false], ['v', v, false], ['dout', dout, false], ['lse', lse, false]];
  return [
    kernel(dqKernel, [...ins, ['drow', drow, true], ['dq', dq, true]], s, n.attrs, c),
    kernel(dkvKernel, [...ins, ['drow', drow, false], ['dk', dk, true], ['dv', dv, true]], s, n.attrs, c),
  ];
}
