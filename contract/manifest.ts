// The bundle's manifest.json: what `lomoc compile` writes and the runtime reads. It is data only;
// nothing in it is ever evaluated. The schema (zod) is checked before anything else is trusted.
import { z } from 'zod';

const int = z.number().int();
const count = int.nonnegative();
const ref = z.object({ arena: count, offset: count, bytes: int.positive() });
const dtype = z.enum(['f32', 'f16', 'bf16', 'i32']);
const tensor = ref.extend({ name: z.string().min(1), shape: z.array(int.positive()), dtype, pieces: z.array(ref).min(2).optional() });
const init = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('normal'), std: z.number().nonnegative() }),
  z.object({ kind: z.literal('zeros') }),
  z.object({ kind: z.literal('ones') }),
  z.object({ kind: z.literal('fanIn'), gain: z.number() }),
]);
const dispatch = z.object({
  shader: z.string().min(1),
  label: z.string(),
  // Browsers grant 8 to 10 storage buffers per stage: a bundle never asks for more than 8.
  bindings: z.array(ref.extend({ write: z.boolean() })).max(8),
  uniforms: z.array(int.min(0).max(0xffffffff)),
  workgroups: z.tuple([int.min(1).max(65535), int.min(1).max(65535), int.min(1).max(65535)]),
});
/** Kernel files live in kernels/, named plainly: no path can leave the bundle's folder. */
const kernelFile = z.string().regex(/^kernels\/[A-Za-z0-9_-]+\.wgsl$/, 'expected kernels/NAME.wgsl');

/** contract/loss-scale.ts's LossScaleSpec (a run's identity writes it with lossScaleText, whatever the key order here). */
const lossScaleSpec = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('dynamic'), init: z.number().positive().max(Number.MAX_VALUE), interval: int.positive() }),
  z.object({ kind: z.literal('static'), scale: z.number().positive().max(Number.MAX_VALUE) }),
]);

const limits = z.object({ maxStorageBuffersPerShaderStage: count, maxComputeInvocationsPerWorkgroup: count, maxComputeWorkgroupStorageSize: count });
const planTotals = z.object({ peak: count, lowerBound: count, byCategory: z.record(z.string(), count) });

/**
 * The forward-only inference program (compiler/inference): entry points `prefill` (`chunk` prompt
 * tokens at a position) and `decode` (one token) over its own arenas, the key/value caches as
 * `state`, the logits of each as `outputs`. Its params are the step's, by name and shape: a
 * runtime copies the trained values in. Bundles written before it existed, and bundles of models
 * that name no logits, have none and cannot generate.
 */
export const inferenceSchema = z.object({
  dtype: z.enum(['f32', 'f16']),
  /** The longest sequence (prompt and generated tokens): the caches' length. */
  context: int.positive(),
  chunk: int.positive(),
  vocab: int.positive(),
  /** The inference plan's totals by its own categories (params, kvCache, activations, workspace). */
  plan: planTotals,
  program: z.object({
    name: z.string(),
    arenas: z.array(count),
    inputs: z.array(tensor),
    params: z.array(tensor.extend({ init })),
    state: z.array(tensor),
    outputs: z.array(tensor),
    entries: z.record(z.string(), z.object({ from: count, to: count })),
    /** Shader key -> its file; a kernel the step has too shares its file. */
    kernels: z.record(z.string(), kernelFile),
    dispatches: z.array(dispatch),
    limits,
    features: z.array(z.string()),
  }),
});

export const manifestSchema = z.object({
  format: z.literal('lomoc-bundle'),
  version: z.literal(1),
  model: z.string(),
  preset: z.string(),
  config: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])),
  step: z.object({
    /** A registered optimizer's name: contract/ cannot see the compiler's table; the compiler checks it. */
    optimizer: z.string().min(1),
    /** The hyper-parameters the user set (--opt), by name; the rest (all, when absent) had their descriptor's defaults. */
    hyper: z.record(z.string(), z.number()).optional(),
    dtype: z.enum(['f32', 'f16', 'bf16']),
    /** The checkpointing policy as the command line writes it (cli/step-options.ts checkpointText): none, blocks, sqrt, budget=14GiB, each but none optionally followed by ,chunks=N (blocks,chunks=4) or ,width=N (blocks,runs=6,width=16). */
    checkpoint: z.string(),
    /** What the policy chose, e.g. "2 blocks" or "32 blocks, FFNs in 16 token chunks". Bundles written before it existed have none (their `checkpoint` held this). */
    checkpointDetail: z.string().optional(),
    clipNorm: z.number().positive().nullable(),
    clipValue: z.number().positive().nullable(),
    /** How updates store bf16 params, only where not the default (compiler's defaultRounding); absent in older bundles. */
    rounding: z.enum(['nearest', 'stochastic']).optional(),
    /**
     * --clip-mode: how clipNorm finds the norm. 'previous' (one pass, approximate) keeps the last
     * step's norm as the state tensor clip.norm. Absent: exact (and in bundles written before it).
     */
    clipMode: z.enum(['exact', 'previous']).optional(),
    /**
     * --loss-scale (f16 only): how the host moves the scale the step reads (contract/loss-scale.ts);
     * the program then reads the input lossScale and outputs step.gradFactor. Absent: no scaling.
     */
    lossScale: lossScaleSpec.optional(),
    /** --accumulate K: the program's inputs hold K micro-batches of config.batch rows. Absent: 1 (and in older bundles). */
    accumulate: int.min(2).optional(),
    /** The kernel shapes (compiler/codegen/wgsl/target.ts). Bundles written before there was a choice have none: theirs were cpu's. */
    target: z.enum(['cpu', 'gpu']).default('cpu'),
    /**
     * f16 storage (dtype f16 only): 'packed' in u32 words, runs on every adapter; 'native' array<f16>,
     * needs the feature shader-f16. f16 bundles written before the choice have none: theirs were native.
     */
    half: z.enum(['native', 'packed']).optional(),
    /**
     * `lomoc compile --subgroups`: the reductions use WGSL subgroup operations, and the program needs
     * the feature `subgroups`. Absent: none (every bundle written before the choice).
     */
    subgroups: z.literal(true).optional(),
    /**
     * `lomoc compile --tune`: the adapter the matmul tiles were timed on and the tile chosen per
     * shape (cli/tune.ts). The kernels run on any adapter; they are fastest on this one. Absent: untuned.
     */
    tuned: z.object({
      adapter: z.object({ vendor: z.string(), architecture: z.string(), device: z.string(), description: z.string() }),
      matmul: z.record(z.string(), z.object({ wgX: int.positive(), wgY: int.positive(), tm: int.positive(), tn: int.positive(), layout: z.enum(['interleaved', 'blocked']), vec4: z.boolean().optional() })),
    }).optional(),
  }),
  /** The memory plan's totals, in bytes (the arenas below are its layout). */
  plan: planTotals,
  program: z.object({
    name: z.string(),
    arenas: z.array(count),
    inputs: z.array(tensor),
    params: z.array(tensor.extend({ init })),
    state: z.array(tensor),
    loss: tensor,
    /** Tensors read back besides the loss: step.gradFactor under loss scaling. Absent: none (and in older bundles). */
    outputs: z.array(tensor).optional(),
    /** Shader key -> its file. */
    kernels: z.record(z.string(), kernelFile),
    dispatches: z.array(dispatch),
    limits,
    features: z.array(z.string()),
  }),
  inference: inferenceSchema.optional(),
});

export type Manifest = z.infer<typeof manifestSchema>;
export type InferenceSection = z.infer<typeof inferenceSchema>;
