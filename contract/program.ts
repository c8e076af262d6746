// The compiled training step as the runtime sees it: plain data, no code from the compiler.
// The compiler's codegen writes it; a bundle stores it as manifest.json + kernels/*.wgsl;
// runtime/webgpu executes it. Nothing here imports compiler/.

export type StorageDType = 'f32' | 'f16' | 'bf16' | 'i32';

/** A byte range in one arena (one device buffer). Offsets are multiples of 256. */
export interface BufferRef {
  readonly arena: number;
  readonly offset: number;
  readonly bytes: number;
}

/**
 * A named tensor the host reads or writes: an input, a param, optimizer state, the loss. A tensor
 * larger than one storage binding is split: `pieces` are its parts in order (each but the last
 * as large as the first), arena and offset are its first piece's, `bytes` the whole tensor's.
 */
export interface TensorSlot extends BufferRef {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: StorageDType;
  readonly pieces?: readonly BufferRef[];
}

/** The ranges a slot's bytes live in, in order: its pieces, or the slot itself (`bytes` as given). */
export const slotRanges = (s: BufferRef & { readonly pieces?: readonly BufferRef[] }): readonly BufferRef[] => s.pieces ?? [s];

/** How a param's values are drawn (runtime/random.ts streams); the compiler's `Init` is this type. */
export type ParamInit =
  | { readonly kind: 'normal'; readonly std: number }
  | { readonly kind: 'zeros' }
  | { readonly kind: 'ones' }
  /** normal with std = gain / sqrt(fan_in), fan_in = product of all but the last dimension. */
  | { readonly kind: 'fanIn'; readonly gain: number };

/**
 * One compute dispatch. Storage binding i of group 0 is `bindings[i]`; when `uniforms` is
 * non-empty it is bound right after them as a uniform buffer of u32 words (f32 scalars stored as
 * their bits). Every shader's entry point is `main`. The runtime binds every storage binding as
 * writable storage (`write` only documents intent): the bindings usually share one arena buffer,
 * and WebGPU forbids one buffer to be both read-only and writable in a dispatch. So no two
 * bindings of a dispatch may overlap: a tensor read twice is bound once.
 */
export interface Dispatch {
  /** Key into StepProgram.shaders: exactly what is baked into the WGSL text. */
  readonly shader: string;
  /** What it computes and where the user wrote it, for profiles and errors. */
  readonly label: string;
  readonly bindings: readonly (BufferRef & { readonly write: boolean })[];
  readonly uniforms: readonly number[];
  readonly workgroups: readonly [number, number, number];
}

export interface StepProgram {
  readonly version: 1;
  readonly name: string;
  /** Bytes of each arena; their sum is the plan's peak, what the device allocates. */
  readonly arenas: readonly number[];
  readonly inputs: readonly TensorSlot[];
  readonly params: readonly (TensorSlot & { readonly init: ParamInit })[];
  readonly state: readonly TensorSlot[];
  readonly loss: TensorSlot;
  /** WGSL source by key. */
  readonly shaders: Readonly<Record<string, string>>;
  /** The whole step, in order: recorded into one command encoder. */
  readonly dispatches: readonly Dispatch[];
  /** Device limits the program needs beyond WebGPU's defaults. */
  readonly limits: { readonly maxStorageBuffersPerShaderStage: number; readonly maxComputeInvocationsPerWorkgroup: number; readonly maxComputeWorkgroupStorageSize: number };
  /** Features the program needs (e.g. 'shader-f16'). */
  readonly features: readonly string[];
  /**
   * A program of several entry points (an inference program: `prefill`, `decode`): each runs
   * dispatches [from, to) over the same arenas. Absent: the whole program is one step.
   */
  readonly entries?: Readonly<Record<string, { readonly from: number; readonly to: number }>>;
  /** Tensors read back besides the loss (an inference program's `prefill.logits`, `decode.logits`). */
  readonly outputs?: readonly TensorSlot[];
}

/** Scalar inputs the optimizer step declares (the compiler's optimizer step and the runtime's trainer both use these names). */
export const hyperInputs = { lr: 'lr', weightDecay: 'weightDecay', step: 'step', lossScale: 'lossScale' } as const;

/**
 * A training step with dynamic loss scaling reads back, besides the loss, the factor its gradients
 * were multiplied by: negative when the gradients overflowed and every update was skipped.
 */
export const gradFactorOutput = 'step.gradFactor';

/** The optimizer state holding the previous step's gradient norm under --clip-mode previous (one-pass clipping). */
export const clipNormState = 'clip.norm';

export const isHyperInput = (name: string): boolean => (Object.values(hyperInputs) as string[]).includes(name);

/** The inputs a batch must fill: every stored input but the step's scalars. */
export const dataInputs = (program: Pick<StepProgram, 'inputs'>): TensorSlot[] => program.inputs.filter((s) => !isHyperInput(s.name));

