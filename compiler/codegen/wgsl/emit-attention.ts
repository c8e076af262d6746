// Fused scaled dot-product attention and its gradient. Nothing T x T is ever stored: the forward
// pass is an online softmax over the keys (writing y and each row's log-sum-exp, the op's lse);
// the backward pass recomputes the probabilities from q, k and two numbers per query row
// (log-sum-exp and D = sum_j p_ij dp_ij), found again and kept in scratch. These are the row
// kernels: the cpu target's, and the gpu target's past its flash head dims (emit-flash-attention.ts).
//
// A thread takes up to R rows (query rows; key rows for dk and dv), each with its q (or k and v)
// row and its accumulators in private arrays; no workgroup memory and no barriers. A workgroup
// takes WG * R consecutive rows of one sequence, so every address into the rows it streams over
// is the same for all its threads: a GPU broadcasts the load, and lavapipe (which runs a workgroup
// as SIMD lanes) loads once for all lanes; each streamed row loaded serves the thread's R rows.
// Causal threads mask the keys they must not see. A row's max and sum never cross threads, so
// subgroup operations (subgroup-reduce.ts) have nothing to replace here.
//
// Baked into a shader: R, the load width (vec4f when Dh % 4 == 0), the private rows' capacity (64
// floats for every Dh up to 64, else Dh rounded up to a power of two; R shrinks so that a thread's
// rows fit rowBudget) and which inputs share storage. T, Dh, the scale and the causal flag are
// uniforms. Dh itself is not baked: lavapipe unrolls loops of a constant trip count, and then took
// tens of seconds to JIT one shader; as it is, the first dispatch of each shader costs it seconds
// of JIT (Mesa caches the result on disk). Baking Dh <= 64 with the rows as vec4f registers
// (no private arrays) measured 2-3x slower on lavapipe than the arrays, with R = 1.
//
// Work per row: the forward pass 2 T Dh multiply-adds, the gradient 9 T Dh (kernel 1 scores the
// keys twice, 2 dot products each, then one axpy; kernel 2 two dots and two axpys per query).
import { LomocError } from '../../diagnostics.ts';
import { numel } from '../../ir/shape.ts';
import type { NodeOf } from '../../ir/types.ts';
import { bindOnce, type Operand } from './bind-once.ts';
import { flashAttention, flashAttentionGrad, usesFlash } from './emit-flash-attention.ts';
import { floatStorage } from './f16-storage.ts';
import { type EmitContext, type Emitter, f32bits, grid, type KernelCall, type ScratchRule } from './emitter.ts';

/**
 * Threads per workgroup WG, and the most rows a thread takes R (rows i, i + WG, ...), are the
 * kernel target's (target.ts). On the cpu target WG = 8, R <= 4: one SIMD row of lavapipe lanes,
 * like the matmul's 8 x 1 workgroups. Each key (or query) row a thread loads
 * serves all of its rows, so loads (gathers on lavapipe) per multiply-add drop R-fold. Measured on
 * lavapipe (B=8, H=4, T=128, Dh=32, causal; machine shared, best of 40): WG=64, R=1 fwd 22 ms and
 * dq+dkv 141-178 ms; WG=8, R=4 fwd 8 ms and dq+dkv 66-72 ms; R=8 ties R=4 with twice the code to
 * compile; WG=16 and 32 (R=4) were slower. On the gpu target (head dims past its flash
 * kernels') WG = 64, R = 1 (as before that tuning): 8-thread workgroups fill a quarter of a
 * 32-wide warp, and the step it belonged to ran 10-20% slower on an H200.
 */
/** Bytes of private rows a thread may keep (below WGSL's 8192-byte cap on a function's variables). */
const rowBudget = 6144;
/** WGSL caps a function's private variables at 8192 bytes: the dk/dv kernel keeps four private rows per row (R = 1 here). */
const maxHeadDim = 512;

interface Dims {
  readonly rows: number;
  readonly t: number;
  readonly d: number;
  /** Elements per load: 4 (vec4f) when Dh is a multiple of 4, else 1. */
  readonly w: number;
  /** Elements (of w floats) a private row holds: baked, while Dh is a uniform. */
  readonly cap: number;
  /** Whether q, k, v and the outputs are stored as f16 or bf16 (the row statistics stay f32). */
  readonly half: 'f16' | 'bf16' | null;
}

function dims(n: NodeOf<'attention' | 'attentionGrad'>, c: EmitContext): Dims {
  const { minCap } = c.target.attention;
  const shape = c.g.values[n.inputs[0]].shape;
  const [t, d] = shape.slice(-2);
  if (d > maxHeadDim) throw new LomocError(`${n.op}: head dimensions up to ${maxHeadDim} are implemented, got ${d}`, n.loc);
  const w = d % 4 === 0 ? 4 : 1;
  // One capacity for every Dh up to minCap (64 on cpu, 128 on gpu), so that few shaders serve every model; powers of two past it.
  const cap = Math.max(minCap, 2 ** Math.ceil(Math.log2(Math.max(1, d)))) / w;
  // lse (attention's output 1, attentionGrad's input 3) is f32 whatever q's type.
  const operands = n.op === 'attention' ? [...n.inputs, n.outputs[0]] : [...n.inputs.filter((_, i) => i !== 3), ...n.outputs];
  const dtypes = new Set(operands.map((v) => c.g.values[v].dtype));
  if (dtypes.size !== 1) throw new LomocError(`${n.op}: operands of one float type expected, got ${[...dtypes].join(' and ')}`, n.loc);
  return { rows: d === 0 ? 0 : numel(shape) / d, t, d, w, cap, half: dtypes.has('f16') ? 'f16' : dtypes.has('bf16') ? 'bf16' : null };
}

/** Workgroups: one per block of WG * R rows of one sequence (B * blocks in all). */
const blocksOf = (s: Dims, R: number, WG: number) => Math.ceil(s.t / (WG * R));

/** Rows per thread for a kernel that keeps `arrays` private rows per row: a power of two up to maxRows within rowBudget. */
function rowsPerThread(s: Dims, arrays: number, maxRows: number): number {
  let R = 1;
  while (R * 2 <= maxRows && R * 2 * arrays * s.cap * s.w * 4 <= rowBudget) R *= 2;
  return R;
}

/**
 * The kernel: each operand bound once (an input in the same storage as an earlier one reads the
 * earlier binding: WebGPU forbids overlapping bindings when any is writable, and the runtime
 * binds all storage writable), the uniform struct, and the entry every attention kernel shares:
 * workgroup w takes rows lo..hi-1 of the sequence starting at row `seq`; this thread row i.
 */
function kernel(kind: string, operands: readonly Operand[], body: (R: number) => string, arrays: number, s: Dims, a: { scale: number; causal: boolean }, c: EmitContext): KernelCall {
  const { workgroup: WG, maxRows } = c.target.attention;
  const R = rowsPerThread(s, arrays, maxRows);
  const { bound, alias, code } = bindOnce(operands, body(R));
  // 16-bit operands are declared f16/bf16 (vec4 when E is a vec4) and read as E by f16-storage.ts.
  const stored = (name: string) => (name === 'stats' || name === 'lse' ? 'f32' : s.half ? floatStorage(s.half, s.w === 4) : 'E');
  const decls = bound.map(([name, , write], k) =>
    `@group(0) @binding(${k}) var<storage, ${write ? 'read_write' : 'read'}> ${name}: array<${stored(name)}>;`);
  return {
    key: `attention.${kind}.wg${WG}.r${R}.w${s.w}.cap${s.cap}${alias.map((x) => `.${x}`).join('')}`,
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
  let lo = (w % u.blocks) * ${R}u * WG;   // the workgroup's first row in its sequence
  let hi = min(lo + ${R}u * WG, u.t);    // and one past its last
  let seq = (w / u.blocks) * u.t;        // the sequence's first row
  let base = seq * u.dw;                 // and its first element (in units of E)
  let i = lo + lid;                      // this thread's first row in the sequence (then i + WG, ...)
${code}`,
    bindings: bound.map(([, ref, write]) => ({ ...ref, write })),
    uniforms: [s.rows / s.t, s.t, blocksOf(s, R, WG), a.causal ? 1 : 0, f32bits(a.scale), s.d / s.w],
    workgroups: grid((s.rows / s.t) * blocksOf(s, R, WG), 1, c.limits),
  };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
/** `f` of each of a thread's R rows, joined. */
const per = (R: number, f: (r: number) => string, sep = '\n  ') => range(R).map(f).join(sep);
/** Row r of this thread: index i<r> in the sequence and offset ro<r> (clamped to the last row). */
const rowOf = (r: number) => `let i${r} = i + ${r}u * WG;
  let ro${r} = (seq + min(i${r}, u.t - 1u)) * u.dw;`;
const load = (dst: string, src: string, r: number, f = '') => `var ${dst}${r}: array<E, MAXD>;
  for (var c = 0u; c < u.dw; c++) { ${dst}${r}[c] = ${src}[ro${r} + c]${f}; }`;
/** Offsets o0..o3 of the streamed rows x..x+3, clamped to row end - 1 (the caller masks). */
const offsets = (x: string, end: string) => range(4).map((k) => `let o${k} = base + min(${x} + ${k}u, ${end} - 1u) * u.dw;`).join('\n    ');
/** The four streamed rows of `mat` at element c, loaded once for all of the thread's rows. */
const rows4 = (mat: string, as: string) => range(4).map((k) => `let ${as}${k} = ${mat}[o${k} + c];`).join(' ');
const dot4 = (mine: string, as: string) => `vec4f(${range(4).map((k) => `dotE(${mine}[c], ${as}${k})`).join(', ')})`;
const axpy4 = (weight: string, as: string) => range(4).map((k) => `${weight}.${'xyzw'[k]} * ${as}${k}`).join(' + ');

// Keys 0..hi-1 (causal) or all, the same for every thread of a workgroup; a causal thread masks
// keys after its row (last<r> = the last key row r sees).
const keyRange = (R: number) => `let keys = select(u.t, hi, u.causal != 0u);
  let js = vec4u(0u, 1u, 2u, 3u);
  ${per(R, (r) => `let last${r} = vec4u(select(keys - 1u, i${r}, u.causal != 0u));`)}`;

function forwardBody(R: number): string {
  return `  ${per(R, (r) => `${rowOf(r)}
  ${load('qs', 'q', r, ' * u.scale')}
  var m${r} = NEG;  // running max of the scores
  var l${r} = 0.0;  // running sum of exp(score - m)
  var acc${r}: array<E, MAXD>;`)}
  ${keyRange(R)}
  for (var j = 0u; j < keys; j += 4u) {
    ${offsets('j', 'keys')}
    ${per(R, (r) => `var s${r} = vec4f();`, ' ')}
    for (var c = 0u; c < u.dw; c++) {
      ${rows4('k', 'k')}
      ${per(R, (r) => `s${r} += ${dot4(`qs${r}`, 'k')};`, '\n      ')}
    }
    ${per(R, (r) => `s${r} = select(s${r}, vec4f(NEG), vec4u(j) + js > last${r});
    let top${r} = max(max(s${r}.x, s${r}.y), max(s${r}.z, s${r}.w));
    if (top${r} > m${r}) {  // rescale only when the max grows (O(log T) times for random scores)
      let a = exp(m${r} - top${r});
      l${r} *= a;
      for (var c = 0u; c < u.dw; c++) { acc${r}[c] *= a; }
      m${r} = top${r};
    }
    let p${r} = exp(s${r} - vec4f(m${r}));
    l${r} += p${r}.x + p${r}.y + p${r}.z + p${r}.w;`, '\n    ')}
    for (var c = 0u; c < u.dw; c++) {
      ${rows4('v', 'v')}
      ${per(R, (r) => `acc${r}[c] += ${axpy4(`p${r}`, 'v')};`, '\n      ')}
    }
  }
  ${per(R, (r) => `if (i${r} < u.t) {
    for (var c = 0u; c < u.dw; c++) { y[ro${r} + c] = acc${r}[c] / l${r}; }
    lse[seq + i${r}] = m${r} + log(l${r});
  }`)}
}
`;
}

/**
 * Gradient kernel 1, per query row i: lse_i and D_i = sum_j p_ij dp_ij (into scratch, for kernel
 * 2), then dq_i = scale * sum_j ds_ij k_j with ds_ij = p_ij (dp_ij - D_i), dp_ij = dout_i . v_j.
 */
function dqBody(R: number): string {
  return `  ${per(R, (r) => `${rowOf(r)}
  ${load('qs', 'q', r, ' * u.scale')}
  ${load('gs', 'dout', r)}
  var m${r} = NEG;
  var l${r} = 0.0;
  var dsum${r} = 0.0;  // sum_j exp(s_ij - m) dp_ij
  var lse${r} = 0.0;
  var dd${r} = 0.0;
  var acc${r}: array<E, MAXD>;`)}
  ${keyRange(R)}
  // Two passes over the keys with one body (half the code for the driver to compile): the
  // statistics, then dq.
  for (var phase = 0u; phase < 2u; phase++) {
    for (var j = 0u; j < keys; j += 4u) {
      ${offsets('j', 'keys')}
      ${per(R, (r) => `var s${r} = vec4f(); var dp${r} = vec4f();`, ' ')}
      for (var c = 0u; c < u.dw; c++) {
        ${rows4('k', 'k')}
        ${rows4('v', 'v')}
        ${per(R, (r) => `s${r} += ${dot4(`qs${r}`, 'k')};
        dp${r} += ${dot4(`gs${r}`, 'v')};`, '\n        ')}
      }
      ${per(R, (r) => `s${r} = select(s${r}, vec4f(NEG), vec4u(j) + js > last${r});`, '\n      ')}
      if (phase == 0u) {
        ${per(R, (r) => `let top${r} = max(max(s${r}.x, s${r}.y), max(s${r}.z, s${r}.w));
        if (top${r} > m${r}) {
          let a = exp(m${r} - top${r});
          l${r} *= a;
          dsum${r} *= a;
          m${r} = top${r};
        }
        let e${r} = exp(s${r} - vec4f(m${r}));
        l${r} += e${r}.x + e${r}.y + e${r}.z + e${r}.w;
        dsum${r} += dot(e${r}, dp${r});`, '\n        ')}
      } else {
        // masked: exp(NEG - lse) = 0
        ${per(R, (r) => `let ds${r} = exp(s${r} - vec4f(lse${r})) * (dp${r} - vec4f(dd${r}));`, '\n        ')}
        for (var c = 0u; c < u.dw; c++) {
          ${rows4('k', 'k')}
          ${per(R, (r) => `acc${r}[c] += ${axpy4(`ds${r}`, 'k')};`, '\n          ')}
        }
      }
    }
    ${per(R, (r) => `lse${r} = m${r} + log(l${r});
    dd${r} = dsum${r} / l${r};`, '\n    ')}
  }
  ${per(R, (r) => `if (i${r} < u.t) {
    stats[2u * (seq + i${r})] = lse${r};
    stats[2u * (seq + i${r}) + 1u] = dd${r};
    for (var c = 0u; c < u.dw; c++) { dq[ro${r} + c] = acc${r}[c] * u.scale; }
  }`)}
}
`;
}

/** Gradient kernel 2, per key row j: dk_j = scale * sum_i ds_ij q_i and dv_j = sum_i p_ij dout_i. */
function dkvBody(R: number): string {
  return `  ${per(R, (r) => `${rowOf(r)}
  ${load('ks', 'k', r, ' * u.scale')}
  ${load('vs', 'v', r)}
  var dka${r}: array<E, MAXD>;
  var dva${r}: array<E, MAXD>;`)}
  // Queries lo..t-1 (causal: those that may see a key of this workgroup) or all. This thread's
  // keys are rows i<r>: a causal thread masks the queries before each.
  let first = select(0u, lo, u.causal != 0u);
  for (var x = first; x < u.t; x += 4u) {
    ${offsets('x', 'u.t')}
    ${per(R, (r) => `var s${r} = vec4f(); var dp${r} = vec4f();`, ' ')}
    for (var c = 0u; c < u.dw; c++) {
      ${rows4('q', 'q')}
      ${rows4('dout', 'g')}
      ${per(R, (r) => `s${r} += ${dot4(`ks${r}`, 'q')};
      dp${r} += ${dot4(`vs${r}`, 'g')};`, '\n      ')}
    }
    let rows = vec4u(x, x + 1u, x + 2u, x + 3u);
    let at = 2u * (vec4u(seq) + min(rows, vec4u(u.t - 1u)));
    let lse = vec4f(stats[at.x], stats[at.y], stats[at.z], stats[at.w]);
    let dd = vec4f(stats[at.x + 1u], stats[at.y + 1u], stats[at.z + 1u], stats[at.w + 1u]);
    ${per(R, (r) => `let p${r} = select(vec4f(), exp(s${r} - lse), (rows < vec4u(u.t)) & !select(vec4<bool>(), rows < vec4u(i${r}), u.causal != 0u));
    let ds${r} = p${r} * (dp${r} - dd);`, '\n    ')}
    for (var c = 0u; c < u.dw; c++) {
      ${rows4('q', 'q')}
      ${rows4('dout', 'g')}
      ${per(R, (r) => `dka${r}[c] += ${axpy4(`ds${r}`, 'q')};
      dva${r}[c] += ${axpy4(`p${r}`, 'g')};`, '\n      ')}
    }
  }
  ${per(R, (r) => `if (i${r} < u.t) {
    for (var c = 0u; c < u.dw; c++) {
      dk[ro${r} + c] = dka${r}[c] * u.scale;
      dv[ro${r} + c] = dva${r}[c];
    }
  }`)}
}
`;
}

const attention: Emitter<'attention'> = (n, c) => {
  const s = dims(n, c);
  if (s.rows === 0) return [];
  if (usesFlash(c.target, s.d)) return flashAttention(n, c);
  const [q, k, v] = n.inputs.map((x) => c.slot(x).ref);
  const [y, lse] = n.outputs.map((x) => c.slot(x).ref);
  return [kernel('fwd', [['q', q, false], ['k', k, false], ['v', v, false], ['y', y, true], ['lse', lse, true]], forwardBody, 2, s, n.attrs, c)];
};

const attentionGrad: Emitter<'attentionGrad'> = (n, c) => {
  const s = dims(n, c);
  if (s.rows === 0) return [];
  if (usesFlash(c.target, s.d)) return flashAttentionGrad(n, c);
  // This kernel pair finds lse again itself (with D, in one pass): it does not bind input 3.
  const [q, k, v, , dout] = n.inputs.map((x) => c.slot(x).ref);
  const [dq, dk, dv] = n.outputs.map((x) => c.slot(x).ref);
  const ins: Operand[] = [['q', q, false], ['k', k, false], ['v', v, false], ['dout', dout, false]];
  const stats = c.scratch(0);
  return [
    kernel('dq', [...ins, ['stats', stats, true], ['dq', dq, true]], dqBody, 3, s, n.attrs, c),
    kernel('dkv', [...ins, ['stats', stats, false], ['dk', dk, true], ['dv', dv, true]], dkvBody, 4, s, n.attrs, c),
  ];
};

export const attentionEmitters = { attention, attentionGrad } satisfies { readonly [O in 'attention' | 'attentionGrad']: Emitter<O> };

/**
 * attentionGrad: (lse, D) per query row, f32. The flash kernels keep D only, in the first half:
 * one size on both targets keeps the plan (and `lomoc plan`) the same for either, for 4 bytes a
 * query row, live during one attention gradient at a time.
 */
const attentionGradScratch: ScratchRule<'attentionGrad'> = (n, g) => {
  const shape = g.values[n.inputs[0]].shape;
  const d = shape[shape.length - 1];
  return [d === 0 ? 4 : (numel(shape) / d) * 8];
};

export const attentionScratch: { readonly [O in 'attentionGrad']?: ScratchRule<O> } = {
  attentionGrad: attentionGradScratch,
};
