// Fused scaled dot-product attention and its gradient. Nothing T x T is ever stored: the forward
// pass is an online softmax over the keys; the backward pass recomputes the probabilities from
// q, k and two numbers per query row (log-sum-exp and D = sum_j p_ij dp_ij) kept in scratch.
//
// One thread per row (a query row; a key row for dk and dv), its q (or k and v) row, and its
// accumulators in private arrays; no workgroup memory and no barriers. A workgroup takes WG
// consecutive rows of one sequence, so every address into the rows it streams over is the same
// for all its threads: a GPU broadcasts the load, and lavapipe (which runs a workgroup as SIMD
// lanes) loads once for all lanes. Causal threads mask the keys they must not see.
//
// Baked into a shader: the load width (vec4f when Dh % 4 == 0), the private rows' capacity (128
// floats for every Dh up to 128, else Dh rounded up to a power of two) and which inputs share
// storage. T, Dh, the scale and the causal flag are uniforms. Dh itself is not baked: lavapipe
// unrolls loops of a constant trip count, and then took tens of seconds to JIT one shader; as it
// is, the first dispatch of each shader costs it 0.5 to 5 s of JIT (Mesa caches the result on disk).
//
// Work per row: the forward pass 2 T Dh multiply-adds, the gradient 9 T Dh (kernel 1 scores the
// keys twice, 2 dot products each, then one axpy; kernel 2 two dots and two axpys per query).
import { LomocError } from '../../diagnostics.ts';
import { numel } from '../../ir/shape.ts';
import type { NodeOf } from '../../ir/types.ts';
import type { BufferRef } from '../../../runtime/program.ts';
import { type EmitContext, type Emitter, f32bits, grid, type KernelCall, type ScratchRule } from './emitter.ts';

const WG = 64;
/** WGSL caps a function's private variables at 8192 bytes: the dk/dv kernel keeps four rows. */
const maxHeadDim = 512;

interface Dims {
  readonly rows: number;
  readonly t: number;
  readonly d: number;
  /** Elements per load: 4 (vec4f) when Dh is a multiple of 4, else 1. */
  readonly w: number;
  /** Elements (of w floats) a private row holds: baked, while Dh is a uniform. */
  readonly cap: number;
}

function dims(n: NodeOf<'attention' | 'attentionGrad'>, c: EmitContext): Dims {
  for (const v of [...n.inputs, ...n.outputs])
    if (c.g.values[v].dtype !== 'f32') throw new LomocError(`${n.op}: f16 kernels are not implemented yet`, n.loc);
  const shape = c.g.values[n.inputs[0]].shape;
  const [t, d] = shape.slice(-2);
  if (d > maxHeadDim) throw new LomocError(`${n.op}: head dimensions up to ${maxHeadDim} are implemented, got ${d}`, n.loc);
  const w = d % 4 === 0 ? 4 : 1;
  // One capacity for every Dh up to 128, so that few shaders serve every model; powers of two past it.
  const cap = Math.max(128, 2 ** Math.ceil(Math.log2(Math.max(1, d)))) / w;
  return { rows: d === 0 ? 0 : numel(shape) / d, t, d, w, cap };
}

/** Workgroups: one per block of WG rows of one sequence (B * blocks in all). */
const blocksOf = (s: Dims) => Math.ceil(s.t / WG);

/** A kernel's storage operands in binding order: WGSL name, value or buffer, written. */
type Operand = readonly [name: string, ref: BufferRef, write: boolean];

/**
 * The kernel: each operand bound once (an input in the same storage as an earlier one reads the
 * earlier binding: WebGPU forbids overlapping bindings when any is writable, and the runtime
 * binds all storage writable), the uniform struct, and the entry every attention kernel shares:
 * workgroup w takes rows lo..hi-1 of the sequence starting at row `seq`; this thread row i.
 */
function kernel(kind: string, operands: readonly Operand[], body: string, s: Dims, a: { scale: number; causal: boolean }, c: EmitContext): KernelCall {
  const bound: Operand[] = [];
  const alias: string[] = [];
  let code = body;
  for (const [name, ref, write] of operands) {
    const same = bound.find(([, r]) => r.arena === ref.arena && r.offset === ref.offset);
    if (same && !write && !same[2]) {
      alias.push(`${name}=${same[0]}`);
      code = code.replace(new RegExp(`\\b${name}\\[`, 'g'), `${same[0]}[`);
    } else bound.push([name, ref, write]);
  }
  const decls = bound.map(([name, , write], k) =>
    `@group(0) @binding(${k}) var<storage, ${write ? 'read_write' : 'read'}> ${name}: array<${name === 'stats' ? 'f32' : 'E'}>;`);
  return {
    key: `attention.${kind}.wg${WG}.w${s.w}.cap${s.cap}${alias.map((x) => `.${x}`).join('')}`,
    code: `${decls.join('\n')}
struct U { seqs: u32, t: u32, blocks: u32, causal: u32, scale: f32, dw: u32 }
@group(0) @binding(${bound.length}) var<uniform> u: U;
const WG = ${WG}u;
const MAXD = ${s.cap}u;
alias E = ${s.w === 4 ? 'vec4f' : 'f32'};
fn dotE(a: E, b: E) -> f32 { return ${s.w === 4 ? 'dot(a, b)' : 'a * b'}; }
// A finite "minus infinity": exp(NEG - m) is 0 without inf - inf = NaN.
const NEG = -3.0e38;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= u.seqs * u.blocks) { return; }
  let lo = (w % u.blocks) * WG;          // the workgroup's first row in its sequence
  let hi = min(lo + WG, u.t);            // and one past its last
  let seq = (w / u.blocks) * u.t;        // the sequence's first row
  let base = seq * u.dw;                 // and its first element (in units of E)
  let i = lo + lid;                      // this thread's row in the sequence
  let valid = i < u.t;
  let ro = (seq + min(i, u.t - 1u)) * u.dw;
${code}`,
    bindings: bound.map(([, ref, write]) => ({ ...ref, write })),
    uniforms: [s.rows / s.t, s.t, blocksOf(s), a.causal ? 1 : 0, f32bits(a.scale), s.d / s.w],
    workgroups: grid((s.rows / s.t) * blocksOf(s), 1, c.limits),
  };
}

const load = (dst: string, src: string, f = '') => `var ${dst}: array<E, MAXD>;
  for (var c = 0u; c < u.dw; c++) { ${dst}[c] = ${src}[ro + c]${f}; }`;

/**
 * Rows r..r+3 of the streamed matrices (clamped to row `end` - 1, and masked by the caller), at
 * offsets o0..o3, dotted with this thread's private rows: one vec4f per (name, private, matrix).
 * Each pass over Dh serves four rows, so the private rows are read a quarter as often.
 */
function dots4(r: string, end: string, dots: readonly [name: string, mine: string, mat: string][]): string {
  const dot = (mine: string, mat: string) => [0, 1, 2, 3].map((k) => `dotE(${mine}[c], ${mat}[o${k} + c])`).join(', ');
  return `${[0, 1, 2, 3].map((k) => `let o${k} = base + min(${r} + ${k}u, ${end} - 1u) * u.dw;`).join('\n    ')}
    ${dots.map(([name]) => `var ${name} = vec4f();`).join(' ')}
    for (var c = 0u; c < u.dw; c++) {
      ${dots.map(([name, mine, mat]) => `${name} += vec4f(${dot(mine, mat)});`).join('\n      ')}
    }`;
}
/** sum over the four rows of weight.k * mat[ok + c]. */
const axpy4 = (weight: string, mat: string) => ['x', 'y', 'z', 'w'].map((x, k) => `${weight}.${x} * ${mat}[o${k} + c]`).join(' + ');

// Keys 0..hi-1 (causal) or all, the same for every thread of a workgroup; a causal thread masks
// keys after its row (last = the last key it sees).
const keyRange = `let keys = select(u.t, hi, u.causal != 0u);
  let last = vec4u(select(keys - 1u, i, u.causal != 0u));`;
const masked = (j: string) => `vec4u(${j}, ${j} + 1u, ${j} + 2u, ${j} + 3u) > last`;

function forwardBody(): string {
  return `  ${load('qs', 'q', ' * u.scale')}
  ${keyRange}
  var m = NEG;  // running max of the scores
  var l = 0.0;  // running sum of exp(score - m)
  var acc: array<E, MAXD>;
  for (var j = 0u; j < keys; j += 4u) {
    ${dots4('j', 'keys', [['s', 'qs', 'k']])}
    s = select(s, vec4f(NEG), ${masked('j')});
    let top = max(max(s.x, s.y), max(s.z, s.w));
    if (top > m) {  // rescale only when the max grows (O(log T) times for random scores)
      let a = exp(m - top);
      l *= a;
      for (var c = 0u; c < u.dw; c++) { acc[c] *= a; }
      m = top;
    }
    let p = exp(s - vec4f(m));
    l += p.x + p.y + p.z + p.w;
    for (var c = 0u; c < u.dw; c++) { acc[c] += ${axpy4('p', 'v')}; }
  }
  if (valid) {
    for (var c = 0u; c < u.dw; c++) { y[ro + c] = acc[c] / l; }
  }
}
`;
}

/**
 * Gradient kernel 1, per query row i: lse_i and D_i = sum_j p_ij dp_ij (into scratch, for kernel
 * 2), then dq_i = scale * sum_j ds_ij k_j with ds_ij = p_ij (dp_ij - D_i), dp_ij = dout_i . v_j.
 */
function dqBody(): string {
  return `  ${load('qs', 'q', ' * u.scale')}
  ${load('gs', 'dout')}
  ${keyRange}
  var m = NEG;
  var l = 0.0;
  var dsum = 0.0;  // sum_j exp(s_ij - m) dp_ij
  var lse = 0.0;
  var dd = 0.0;
  var acc: array<E, MAXD>;
  // Two passes over the keys with one body (half the code for the driver to compile): the
  // statistics, then dq.
  for (var phase = 0u; phase < 2u; phase++) {
    for (var j = 0u; j < keys; j += 4u) {
      ${dots4('j', 'keys', [['s', 'qs', 'k'], ['dp', 'gs', 'v']]).replace(/\n/g, '\n  ')}
      s = select(s, vec4f(NEG), ${masked('j')});
      if (phase == 0u) {
        let top = max(max(s.x, s.y), max(s.z, s.w));
        if (top > m) {
          let a = exp(m - top);
          l *= a;
          dsum *= a;
          m = top;
        }
        let e = exp(s - vec4f(m));
        l += e.x + e.y + e.z + e.w;
        dsum += dot(e, dp);
      } else {
        let ds = exp(s - vec4f(lse)) * (dp - vec4f(dd));  // masked: exp(NEG - lse) = 0
        for (var c = 0u; c < u.dw; c++) { acc[c] += ${axpy4('ds', 'k')}; }
      }
    }
    lse = m + log(l);
    dd = dsum / l;
  }
  if (valid) {
    stats[2u * (seq + i)] = lse;
    stats[2u * (seq + i) + 1u] = dd;
    for (var c = 0u; c < u.dw; c++) { dq[ro + c] = acc[c] * u.scale; }
  }
}
`;
}

/** Gradient kernel 2, per key row j: dk_j = scale * sum_i ds_ij q_i and dv_j = sum_i p_ij dout_i. */
function dkvBody(): string {
  return `  ${load('ks', 'k', ' * u.scale')}
  ${load('vs', 'v')}
  var dka: array<E, MAXD>;
  var dva: array<E, MAXD>;
  // Queries lo..t-1 (causal: those that may see a key of this workgroup) or all. This thread's
  // key is row i: a causal thread masks the queries before it.
  let first = select(0u, lo, u.causal != 0u);
  for (var r = first; r < u.t; r += 4u) {
    ${dots4('r', 'u.t', [['s', 'ks', 'q'], ['dp', 'vs', 'dout']])}
    let rows = vec4u(r, r + 1u, r + 2u, r + 3u);
    let at = 2u * (vec4u(seq) + min(rows, vec4u(u.t - 1u)));
    let lse = vec4f(stats[at.x], stats[at.y], stats[at.z], stats[at.w]);
    let dd = vec4f(stats[at.x + 1u], stats[at.y + 1u], stats[at.z + 1u], stats[at.w + 1u]);
    let early = select(vec4<bool>(), rows < vec4u(i), u.causal != 0u);
    let p = select(vec4f(), exp(s - lse), (rows < vec4u(u.t)) & !early);
    let ds = p * (dp - dd);
    for (var c = 0u; c < u.dw; c++) {
      dka[c] += ${axpy4('ds', 'q')};
      dva[c] += ${axpy4('p', 'dout')};
    }
  }
  if (valid) {
    for (var c = 0u; c < u.dw; c++) {
      dk[ro + c] = dka[c] * u.scale;
      dv[ro + c] = dva[c];
    }
  }
}
`;
}

const attention: Emitter<'attention'> = (n, c) => {
  const s = dims(n, c);
  if (s.rows === 0) return [];
  const [q, k, v] = n.inputs.map((x) => c.slot(x).ref);
  return [kernel('fwd', [['q', q, false], ['k', k, false], ['v', v, false], ['y', c.slot(n.outputs[0]).ref, true]], forwardBody(), s, n.attrs, c)];
};

const attentionGrad: Emitter<'attentionGrad'> = (n, c) => {
  const s = dims(n, c);
  if (s.rows === 0) return [];
  const [q, k, v, dout] = n.inputs.map((x) => c.slot(x).ref);
  const [dq, dk, dv] = n.outputs.map((x) => c.slot(x).ref);
  const ins: Operand[] = [['q', q, false], ['k', k, false], ['v', v, false], ['dout', dout, false]];
  const stats = c.scratch(0);
  return [
    kernel('dq', [...ins, ['stats', stats, true], ['dq', dq, true]], dqBody(), s, n.attrs, c),
    kernel('dkv', [...ins, ['stats', stats, false], ['dk', dk, true], ['dv', dv, true]], dkvBody(), s, n.attrs, c),
  ];
};

export const attentionEmitters = { attention, attentionGrad } satisfies { readonly [O in 'attention' | 'attentionGrad']: Emitter<O> };

/** attentionGrad: (lse, D) per query row, f32. */
const attentionGradScratch: ScratchRule<'attentionGrad'> = (n, g) => {
  const shape = g.values[n.inputs[0]].shape;
  const d = shape[shape.length - 1];
  return [d === 0 ? 4 : (numel(shape) / d) * 8];
};

export const attentionScratch: { readonly [O in 'attentionGrad']?: ScratchRule<O> } = {
  attentionGrad: attentionGradScratch,
};
