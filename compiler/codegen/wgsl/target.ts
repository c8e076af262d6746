// Kernel targets: every shape choice of the WGSL emitters that depends on what runs them. A
// software adapter (lavapipe, llvmpipe, SwiftShader) runs a workgroup's invocations as SIMD lanes
// of one CPU thread and pays ~3 us per workgroup and a lot per barrier; a real GPU wants many
// threads per workgroup and much parallel work. Shapes tuned for one cost the other: on an NVIDIA
// H200 (docs/gpu-check-h200*.json) the lavapipe shapes made the gpt small step 22.3 -> 24.2 ms
// and a GPT-2-shaped step 372 -> 455 ms. Plain data: the plan's scratch rules and the emitters
// read the same target, so the plan and the kernels agree.
import { isSoftwareAdapter, type AdapterInfoLike } from '../../../contract/adapter-kind.ts';

/** How f16 storage is addressed: `array<f16>` with `shader-f16`, or pairs in u32 words without it. */
export type HalfStorage = 'native' | 'packed';

/** The register-blocked matmul's tile (emit-matmul.ts). */
export interface MatmulTile {
  /** Invocations per workgroup along N (x) and M (y). */
  readonly wgX: number;
  readonly wgY: number;
  /** Outputs per invocation along M and N, held in registers. */
  readonly tm: number;
  readonly tn: number;
  /** 'interleaved': invocation x owns columns x, x + wgX, ...; 'blocked': columns x*tn .. x*tn + tn - 1. */
  readonly layout: 'interleaved' | 'blocked';
  /** false: B is always read a float at a time (bench/matmul.ts's baseline); default: as vec4 where the shapes allow. */
  readonly vec4?: boolean;
}

/** How the matrix-vector kernel (emit-matvec.ts) spreads one layout of B over a workgroup. */
export interface MatvecLayout {
  /** Threads along the output columns. */
  readonly wgCols: number;
  /** Threads along the shared dimension K, summed in workgroup memory after one barrier (1: none). */
  readonly wgK: number;
  /** Column groups per thread (a group is 4 adjacent columns where B is read as vec4s, else 1). */
  readonly groups: number;
}

/** Matmuls of at most maxRows rows (a decode step's) run as matrix-vector kernels; `n`: B is [K, N], `t`: B is [N, K]. */
export interface MatvecShape {
  readonly maxRows: number;
  readonly n: MatvecLayout;
  readonly t: MatvecLayout;
}

export type TargetName = 'cpu' | 'gpu';
export const targetNames: readonly TargetName[] = ['cpu', 'gpu'];

export interface KernelTarget {
  readonly name: TargetName;
  /** The register-blocked matmul's tile (emit-matmul.ts). */
  readonly matmul: MatmulTile;
  /** Matmuls with few rows (emit-matvec.ts); null: always the tiled kernel. */
  readonly matvec: MatvecShape | null;
  /**
   * Attention (emit-attention.ts): threads per workgroup, rows per thread at most, private rows'
   * least capacity in floats; `flash`: FlashAttention-2-style kernels (emit-flash-attention.ts)
   * with `rows` rows (a thread each) per workgroup, for head dims up to maxHeadDim.
   */
  readonly attention: {
    readonly workgroup: number;
    readonly maxRows: number;
    readonly minCap: number;
    readonly flash?: { readonly rows: number; readonly maxHeadDim: number };
  };
  /** Row kernels (softmax, norms, cross-entropy): a thread per row for rows of at most maxN elements, at least minRows of them; null: never. */
  readonly threadPerRow: { readonly maxN: number; readonly minRows: number } | null;
  /** Grid-stride maps: at least this many elements per thread (wgsl-map.ts). */
  readonly mapMinPerThread: number;
  /** Pass 2 of split reductions: a thread per output when it has at most this many partials (0: never). */
  readonly shortPartials: number;
  /** f16 storage: 'native' (array<f16>, needs shader-f16; the default) or 'packed' in u32 words (packed-storage.ts). */
  readonly half?: HalfStorage;
  /** Matmul tiles measured best on one adapter, by matmulShapeKey; a shape not here gets `matmul` (cli/tune.ts fills it). */
  readonly tuned?: TunedMatmuls;
  /**
   * true: cross-thread reductions (row kernels, trailing-axis sums) use WGSL subgroup operations,
   * and the program needs the adapter feature `subgroups` (subgroup-reduce.ts). Absent: shared memory only.
   */
  readonly subgroups?: boolean;
}

/** Per-shape matmul tiles: matmulShapeKey -> a tile of the target's matmulCandidates. */
export type TunedMatmuls = Readonly<Record<string, MatmulTile>>;

/** What a matmul's speed depends on, as a tuning table's key: "MxKxN.NT.c3.f32f32" (M, K, N, transA/B, output matrices, A and B storage). */
export function matmulShapeKey(s: { readonly m: number; readonly k: number; readonly n: number; readonly transA: boolean; readonly transB: boolean; readonly count: number }, dtypeA: string, dtypeB: string): string {
  return `${s.m}x${s.k}x${s.n}.${s.transA ? 'T' : 'N'}${s.transB ? 'T' : 'N'}.c${s.count}.${dtypeA}${dtypeB}`;
}

/**
 * lavapipe's shapes (commit db2a08e and bench/matmul.ts; each constant's comment in its emitter
 * has the measurement): 16 x 16 outputs per invocation on 8 x 1 threads, 29-34 GFLOP/s at
 * 256-1024 with B read as vec4s (8 x 16: 19-27; the table in bench/matmul.ts), and a gpt small step
 * 7% faster (517/457/491 against 528/518 ms, back to back), for a cold compile of ~4 s per shader; attention 8 threads x 4 rows (fwd 22 -> 8 ms, grad
 * 141-178 -> 66-72 ms); a thread per short row (layerNorm [1024, 128] 6.4 -> 0.3-0.7 ms); 8+
 * elements per map thread ([1024, 128] add 0.7-1.1 -> 0.26-0.5 ms); barrier-free pass 2.
 */
const cpu: KernelTarget = {
  name: 'cpu',
  matmul: { wgX: 8, wgY: 1, tm: 16, tn: 16, layout: 'interleaved' },
  matvec: { maxRows: 4, n: { wgCols: 8, wgK: 1, groups: 2 }, t: { wgCols: 8, wgK: 1, groups: 2 } },
  attention: { workgroup: 8, maxRows: 4, minCap: 64 },
  threadPerRow: { maxN: 2048, minRows: 256 },
  mapMinPerThread: 8,
  shortPartials: 64,
};

/**
 * A real GPU's: the shapes before db2a08e, and the matmul tile measured best on an H200 at 2048
 * (docs/gpu-check-h200.json, GFLOP/s at 2048): 8 x 8 per invocation on 8 x 8 threads, interleaved,
 * 18.3 TFLOP/s; 4 x 4 on 16 x 16 13.3; the cpu tile (8 x 16 on 8 x 1) 5.2, its 8-thread workgroups
 * filling a quarter of a warp. Attention flash-style: 64 rows a workgroup, a thread each, with
 * key/value (or query) tiles in workgroup memory (head dims up to 256: a tile of 8 rows of 256
 * floats for k and v fills 16 KiB; past it, the row kernels' 64 threads a row each); rows always a workgroup each (parallel within a row); maps a thread per
 * element up to 256 x 256 threads; pass 2 with 32 lanes per output.
 */
const gpu: KernelTarget = {
  name: 'gpu',
  matmul: { wgX: 8, wgY: 8, tm: 8, tn: 8, layout: 'interleaved' },
  matvec: { maxRows: 4, n: { wgCols: 16, wgK: 16, groups: 1 }, t: { wgCols: 8, wgK: 32, groups: 1 } },
  attention: { workgroup: 64, maxRows: 1, minCap: 128, flash: { rows: 64, maxHeadDim: 256 } },
  threadPerRow: null,
  mapMinPerThread: 1,
  shortPartials: 0,
};

export const kernelTargets: Readonly<Record<TargetName, KernelTarget>> = { cpu, gpu };

/**
 * The tiles the tuner times per matmul shape, the target's own first (what an untuned shape
 * gets). Few, since lavapipe compiles each in 2-4 s: cpu, the runners-up of bench/matmul.ts's
 * table (8x16 interleaved and blocked, 16x16 blocked: within noise of 16x16 on some shapes);
 * gpu, the H200 runner-up (4x4 on 16x16) and two 256-thread variants of the 8x8 tile.
 * Every one is checked against the reference by test/gpu/kernels-matmul.test.ts.
 */
export const matmulCandidates: Readonly<Record<TargetName, readonly MatmulTile[]>> = {
  cpu: [
    cpu.matmul,
    { wgX: 8, wgY: 1, tm: 8, tn: 16, layout: 'interleaved' },
    { wgX: 8, wgY: 1, tm: 8, tn: 16, layout: 'blocked' },
    { wgX: 8, wgY: 1, tm: 16, tn: 16, layout: 'blocked' },
  ],
  gpu: [
    gpu.matmul,
    { wgX: 16, wgY: 16, tm: 4, tn: 4, layout: 'interleaved' },
    { wgX: 16, wgY: 16, tm: 8, tn: 8, layout: 'interleaved' },
    { wgX: 16, wgY: 8, tm: 8, tn: 8, layout: 'blocked' },
  ],
};

export type { AdapterInfoLike };

/** 'cpu' for software adapters (runtime/webgpu/adapter-kind.ts says which), 'gpu' for every other adapter. */
export function targetForAdapter(info: AdapterInfoLike): TargetName {
  return isSoftwareAdapter(info) ? 'cpu' : 'gpu';
}

/** A target by name, or the target itself. */
export const kernelTarget = (t: TargetName | KernelTarget): KernelTarget => (typeof t === 'string' ? kernelTargets[t] : t);

/** Whether an adapter offers the WGSL subgroup operations (lavapipe does, with 8 lanes; NVIDIA 32). */
export function subgroupsForAdapter(adapter: { readonly features: { has(feature: string): boolean } }): boolean {
  return adapter.features.has('subgroups');
}

/** f16 storage for an adapter: native where it offers `shader-f16`, else packed in u32 words (Dawn's Vulkan adapter on NVIDIA offers none). */
export function halfForAdapter(adapter: { readonly features: { has(feature: string): boolean } }): HalfStorage {
  return adapter.features.has('shader-f16') ? 'native' : 'packed';
}
