// Every shape scripts/gpu-check.ts runs, in one table: the real sizes for a lent GPU, and a small
// set (GPU_CHECK_SMALL=1, with a stand-in memory budget of 64 MiB unless GPU_CHECK_MEMORY says)
// that runs the same code end to end on lavapipe in about two minutes, so the
// script is tested where there is no GPU (test/gpu-check.test.ts) and cannot rot between loans.
import type { CheckpointPolicy } from '../compiler/passes/checkpoint-policy.ts';
import { parseCheckpointPolicy } from '../compiler/passes/checkpoint-policy.ts';

/** A gpt or llama config: a preset and `key=value` overrides (as `--set`). */
export interface Shape {
  readonly preset: string;
  readonly sets: readonly string[];
}

export interface CheckSizes {
  readonly small: boolean;
  /** Square matmul sizes of the sweep, and its rounds. */
  readonly matmul: readonly number[];
  readonly matmulRounds: number;
  /** Only the baked-in tile, not every candidate (each candidate compiles a pipeline: a second apiece on lavapipe). */
  readonly matmulWinnerOnly: boolean;
  /** The step bench's gpt (LOMO, SGD, AdamW, and LOMO on the other kernel target), steps each. */
  readonly step: Shape;
  readonly stepSteps: number;
  /** GPT-2-shaped steps: [label, shape, f16?]; vocabulary 8192 keeps f32 logits in one binding. */
  readonly gpt2: readonly (readonly [string, Shape, boolean])[];
  /** The largest-model ladder, largest first: the first whose plan fits the memory budget runs. */
  readonly ladder: readonly (readonly [string, Shape])[];
  /** The LLaMA-7B-shaped LOMO step: packed f16, this checkpoint policy, random init. */
  readonly llama: Shape;
  readonly llamaPolicy: CheckpointPolicy;
  readonly llamaSteps: number;
  /** Timed steps of the GPT-2-shaped and largest runs (the first is not counted). */
  readonly timedSteps: number;
}

const policy = 'blocks,runs=6,chunks=16';

/** GPT-2 family widths and depths (124M, 355M, 774M, 1.5B), then 2.7B- and 6.7B-like, at seq 1024, batch 8. */
const gptLadder: readonly (readonly [string, number, number, number])[] = [
  ['gpt 6.7B-like (width 4096, 32 layers)', 4096, 32, 32],
  ['gpt 2.7B-like (width 2560, 32 layers)', 2560, 32, 32],
  ['gpt2-xl-shaped (1.5B)', 1600, 48, 25],
  ['gpt2-large-shaped (774M)', 1280, 36, 20],
  ['gpt2-medium-shaped (355M)', 1024, 24, 16],
  ['gpt2-shaped (124M)', 768, 12, 12],
];

const full: CheckSizes = {
  small: false,
  matmul: [256, 512, 1024, 2048, 4096],
  matmulRounds: 2,
  matmulWinnerOnly: false,
  step: { preset: 'small', sets: [] },
  stepSteps: 8,
  gpt2: [
    ['gpt2-shaped, vocab 8192, seq 256, batch 8, lomo', { preset: 'gpt2', sets: ['seq=256', 'batch=8', 'vocab=8192'] }, false],
    ['gpt2 (vocab 50257), seq 256, batch 4, f16, lomo', { preset: 'gpt2', sets: ['seq=256', 'batch=4'] }, true],
  ],
  ladder: gptLadder.map(([label, width, layers, heads]) => [`${label}, seq 1024, batch 8, f16, lomo`, { preset: 'gpt2', sets: [`width=${width}`, `layers=${layers}`, `heads=${heads}`] }]),
  llama: { preset: 'llama-7b', sets: [] },
  llamaPolicy: parseCheckpointPolicy(policy),
  llamaSteps: 2,
  timedSteps: 4,
};

/** Every shape shrunk: tiny widths and sequences, the same code paths (split bindings excepted). */
const small: CheckSizes = {
  small: true,
  matmul: [32, 64],
  matmulRounds: 1,
  matmulWinnerOnly: true,
  step: { preset: 'tiny', sets: [] },
  stepSteps: 2,
  gpt2: [
    ['gpt2-shaped (small switch: width 32, 2 layers, seq 16, batch 2, vocab 64), lomo', { preset: 'gpt2', sets: ['width=32', 'layers=2', 'heads=2', 'seq=16', 'batch=2', 'vocab=64'] }, false],
    ['gpt2-shaped (small switch), f16, lomo', { preset: 'gpt2', sets: ['width=32', 'layers=2', 'heads=2', 'seq=16', 'batch=2', 'vocab=64'] }, true],
  ],
  // The first (about 200 MB of f16 params) exceeds the small switch's 64 MiB: the ladder goes down one.
  ladder: [[2048, 16], [48, 2], [32, 2]].map(([width, heads]) => [`gpt width ${width} (small switch), f16, lomo`, { preset: 'gpt2', sets: [`width=${width}`, 'layers=2', `heads=${heads}`, 'seq=16', 'batch=2', 'vocab=64'] }]),
  llama: { preset: 'llama-7b', sets: ['width=64', 'layers=2', 'heads=4', 'ffn=176', 'vocab=128', 'seq=32', 'batch=2'] },
  llamaPolicy: parseCheckpointPolicy(policy),
  llamaSteps: 2,
  timedSteps: 2,
};

/** The sizes for this run: small when GPU_CHECK_SMALL is set (to anything but 0 or empty). */
export function checkSizes(env: NodeJS.ProcessEnv = process.env): CheckSizes {
  const v = env.GPU_CHECK_SMALL;
  return v !== undefined && v !== '' && v !== '0' ? small : full;
}
