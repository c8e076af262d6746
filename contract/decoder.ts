// What a generation loop drives: a model's inference program on some device, behind one
// interface, so the loop and the sampler (runtime/generate) do not care whether the reference
// executor (`--device cpu`) or WebGPU runs it.

export type Logits = Float32Array | Float64Array;

export interface Decoder {
  /** Positions the key/value cache holds: a prompt and its continuation fit in this many tokens. */
  readonly context: number;
  /** Tokens one prefill call takes at most. */
  readonly chunk: number;
  readonly vocab: number;
  /**
   * Runs `tokens` (1..chunk of them) at positions pos, pos+1, ...: writes their keys and values
   * into the cache and returns the logits [vocab] of the last one.
   */
  prefill(tokens: readonly number[], pos: number): Promise<Logits>;
  /** Runs one token at position `pos` (the cache holds every earlier one); returns its logits [vocab]. */
  decode(token: number, pos: number): Promise<Logits>;
}
