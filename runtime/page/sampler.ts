// Sampling text on the page: the bundle's inference program (index.js createGenerator, the code
// `lomoc generate DIR` runs), with the weights as trained so far. The trainer's params are read
// back between steps and copied into the generator's own buffers, on the trainer's device; the
// training step's buffers are only read, so sampling never changes a loss, a pause or a save.
// Prompts and samples are tokenised as the bundle's tokenizer says (bytes or GPT-2's BPE).
import { byteTokens } from '../train/data.ts';
import type { Entry, Trainer } from './session.ts';
import type { TokenizerName } from './text.ts';

export interface SampleRequest {
  readonly prompt: string;
  readonly temperature: number;
  readonly topK: number;
  readonly maxTokens: number;
  readonly seed: number;
}

export interface Sample {
  /** The training step whose weights it used (0: the initial values). */
  readonly step: number;
  readonly prompt: string;
  readonly promptTokens: readonly number[];
  readonly tokens: readonly number[];
  readonly text: string;
  readonly ms: number;
  readonly tokensPerSecond: number;
}

export class SampleError extends Error {
  override name = 'SampleError';
}

export async function encodeText(text: string, tokenizer: TokenizerName): Promise<number[]> {
  if (tokenizer === 'bytes') return Array.from(byteTokens(text));
  const { encode } = await import('gpt-tokenizer/encoding/r50k_base');
  return encode(text);
}

export async function decodeTokens(ids: readonly number[], tokenizer: TokenizerName): Promise<string> {
  if (tokenizer === 'bytes') return new TextDecoder().decode(Uint8Array.from(ids));
  const { decode } = await import('gpt-tokenizer/encoding/r50k_base');
  return decode([...ids]);
}

/** Where the weights come from: a trainer (read under the session's lock) or the initial values at a seed. */
export interface WeightSource {
  readonly step: number;
  readonly trainer?: Trainer;
  readParams?(): Promise<Record<string, Float32Array>>;
  readonly seed: number;
}

export class PageSampler {
  private gen: Awaited<ReturnType<Entry['createGenerator']>> | undefined;
  /** One sample at a time: the generator has one key/value cache. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly entry: Entry,
    private readonly tokenizer: TokenizerName,
    /** manifest.json's inference section (its context), absent when the bundle carries none. */
    private readonly inference: { readonly context: number } | undefined,
  ) {}

  /** Queues a sample after any running one. */
  sample(req: SampleRequest, weights: WeightSource): Promise<Sample> {
    const next = this.chain.then(() => this.run(req, weights));
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Device bytes the inference program holds (0 before the first sample). */
  get deviceBytes(): number {
    return this.gen?.deviceBytes ?? 0;
  }

  private async run(req: SampleRequest, weights: WeightSource): Promise<Sample> {
    if (!this.inference) throw new SampleError(noInference);
    const promptTokens = await encodeText(req.prompt, this.tokenizer);
    const { context } = this.inference;
    if (promptTokens.length === 0) throw new SampleError('the prompt is empty: type at least one character');
    if (promptTokens.length >= context)
      throw new SampleError(`the prompt is ${promptTokens.length} tokens (${this.tokenizer}); the model's context is ${context}, so a prompt leaves room for a sample only below ${context}`);
    if (!weights.trainer || !weights.readParams) {
      // No run yet: the initial values at the run's seed, on a device of the generator's own.
      this.gen?.destroy();
      this.gen = undefined;
      this.gen = await this.entry.createGenerator({ gpu: navigator.gpu, seed: weights.seed });
    } else {
      const params = await weights.readParams();
      if (!this.gen) this.gen = await this.entry.createGenerator({ device: weights.trainer.device, params });
      else this.gen.writeParams(params);
    }
    const t0 = performance.now();
    const tokens: number[] = [];
    for await (const t of this.gen.generate(promptTokens, { maxTokens: req.maxTokens, temperature: req.temperature, topK: req.topK, topP: 1, seed: req.seed })) tokens.push(t);
    const ms = performance.now() - t0;
    const text = await decodeTokens(tokens, this.tokenizer);
    return { step: weights.step, prompt: req.prompt, promptTokens, tokens, text, ms, tokensPerSecond: tokens.length / (ms / 1000) };
  }
}

export const noInference =
  "this bundle carries no inference program, so the page cannot sample text from it: compile it again with lomoc compile (a model must name its logits with output('logits', ...))";
