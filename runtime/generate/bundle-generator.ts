// Generation from a bundle's inference program on a WebGPU device: the code `lomoc generate DIR`,
// the bundle's index.js (createGenerator) and the page all run, so the three pick the same tokens
// from the same weights, prompt and seed. The weights are copied into the inference program's own
// arenas (its plan is not the step's: params sit at other offsets, beside the key/value caches),
// from a checkpoint, a trainer's readParams(), or the params' initialisers at a seed.
import type { LoadedInference } from '../bundle/load-bundle.ts';
import { createGpuDecoder } from '../webgpu/generator.ts';
import { initialParams } from '../webgpu/init.ts';
import { generate, type GenerateOptions, type GenerateTiming } from './generate.ts';

export interface GeneratorOptions {
  readonly device: GPUDevice;
  readonly inference: LoadedInference;
  /** Every param's values by name; absent: drawn from the params' initialisers at `seed` (as a new trainer's). */
  readonly params?: Readonly<Record<string, ArrayLike<number>>>;
  readonly seed?: number;
}

export interface Generator {
  readonly context: number;
  readonly chunk: number;
  readonly vocab: number;
  /** Bytes the inference program holds on the device: its plan's peak and the uniforms. */
  readonly deviceBytes: number;
  /** Yields each new token id; options default to 32 tokens, temperature 1, top-k 0 (all), top-p 1, seed 0. */
  generate(prompt: readonly number[], options?: Partial<GenerateOptions>, timing?: GenerateTiming): AsyncGenerator<number>;
  /** Overwrites params by name (a trainer's current values): the next generation reads them. */
  writeParams(params: Readonly<Record<string, ArrayLike<number>>>): void;
  destroy(): void;
}

export const generateDefaults: GenerateOptions = { maxTokens: 32, temperature: 1, topK: 0, topP: 1, seed: 0 };

export async function createGenerator(o: GeneratorOptions): Promise<Generator> {
  const params = o.params ?? initialParams(o.inference.program, o.seed ?? 0);
  const dec = await createGpuDecoder(o.device, o.inference.program, params);
  let busy = false;
  return {
    context: dec.context,
    chunk: dec.chunk,
    vocab: dec.vocab,
    deviceBytes: dec.executor.arenaBytes + dec.executor.overheadBytes,
    async *generate(prompt, options = {}, timing) {
      // One key/value cache: two generations at once would write over each other's rows.
      if (busy) throw new Error('createGenerator: a generation is already running on this generator; wait for it to finish');
      busy = true;
      try {
        yield* generate(dec, prompt, { ...generateDefaults, ...options }, timing);
      } finally {
        busy = false;
      }
    },
    writeParams: (p) => dec.writeParams(p),
    destroy: () => dec.destroy(),
  };
}
