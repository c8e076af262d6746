// `lomoc generate <model.ts|checkpoint|bundle> --prompt TEXT`: compiles the model's inference program
// (a prefill and a one-token decode step over a static key/value cache, compiler/inference), or
// loads a bundle's (generate-bundle.ts), and streams the tokens it picks to stdout, on WebGPU or on
// the reference executor (--device cpu, model files and checkpoints only).
import { LomocError } from '../compiler/diagnostics.ts';
import { compileInference, lowerInference, planInference } from '../compiler/inference/compile-inference.ts';
import { referenceDecoder } from '../compiler/inference/reference-decoder.ts';
import { initParams } from '../compiler/reference/init.ts';
import type { HostTensor } from '../compiler/reference/tensor.ts';
import type { Decoder } from '../contract/decoder.ts';
import type { StepProgram } from '../contract/program.ts';
import { SafetensorsError } from '../runtime/checkpoint/node.ts';
import { createGenerator } from '../runtime/generate/bundle-generator.ts';
import { checkPrompt, generate, type GenerateOptions, type GenerateTiming } from '../runtime/generate/generate.ts';
import { NoAdapterError } from '../runtime/webgpu/device.ts';
import { createGpuDecoder } from '../runtime/webgpu/generator.ts';
import { DeviceLostError } from '../runtime/webgpu/guard.ts';
import { acquireDevice, probeAdapter } from '../runtime/webgpu/node.ts';
import { optionChecks, parseCommandArgs, resolveTarget, type CommandSpec } from './args.ts';
import { bundleSource, isBundleDir } from './generate-bundle.ts';
import { generateSource, pickTokenizer, textCodec, type GenerateSource, type TextCodec } from './generate-source.ts';
import { printWarnings, type Io } from './report.ts';

export const generateSpec: CommandSpec = {
  name: 'generate',
  summary: 'Generate text with the model: a prefill and one decode step per token over a key/value cache.',
  positionals: [{ name: 'model.ts|checkpoint|bundle', help: 'a model file (random weights), a checkpoint lomoc train --save wrote (the .safetensors file or its folder), or a bundle folder lomoc compile wrote' }],
  options: {
    prompt: { type: 'string', value: 'TEXT', help: 'the prompt, tokenised with the model\'s tokenizer (bytes for a 256-token vocabulary, GPT-2\'s BPE for 50257)' },
    'prompt-tokens': { type: 'string', value: 'ID,ID,...', help: 'the prompt as token ids (any vocabulary)' },
    'max-tokens': { type: 'string', value: 'N', help: 'tokens to generate at most (default 32; fewer when the context fills)' },
    temperature: { type: 'string', value: 'T', help: '0 for greedy decoding (default 1)' },
    'top-k': { type: 'string', value: 'K', help: 'sample among the K most likely tokens (default 0: all)' },
    'top-p': { type: 'string', value: 'P', help: 'sample among the most likely tokens whose probability reaches P, in (0, 1] (default 1)' },
    seed: { type: 'string', value: 'S', help: 'seed of the sampler (default 0): the same seed, the same tokens' },
    json: { type: 'boolean', help: 'print one JSON object at the end instead of streaming text' },
    device: { type: 'string', value: 'webgpu|cpu', help: 'webgpu, or cpu for the reference executor (default webgpu)' },
    preset: { type: 'string', value: 'NAME', help: "the model's preset (default: its first, or the checkpoint's config)" },
    set: { type: 'string', multiple: true, value: 'KEY=VALUE', help: 'override one config key (seq is the context)' },
    model: { type: 'string', value: 'FILE', help: "with a checkpoint: the model file (default: lomoc's models/<name>.ts)" },
    chunk: { type: 'string', value: 'N', help: 'prompt tokens per prefill call (default: the context, at most 64)' },
    init: { type: 'string', value: 'CHECKPOINT', help: "with a model file or a bundle: the weights of this checkpoint (lomoc train's or the page's .safetensors, or its folder)" },
  },
  examples: [
    'lomoc generate models/gpt.ts --preset small --prompt "Call me" --max-tokens 20 --device cpu',
    'lomoc generate out/run/checkpoint.safetensors --prompt "It was" --temperature 0.8 --top-k 40 --seed 1',
    'lomoc generate models/gpt.ts --prompt-tokens 1,2,3 --temperature 0 --json',
    'lomoc generate out/gpt-small --init out/run/checkpoint.safetensors --prompt "Call me" --temperature 0',
  ],
};

// Negative numbers are values here, not options: `--temperature -1` reaches the number check.
const numeric = new Set(['max-tokens', 'temperature', 'top-k', 'top-p', 'seed', 'chunk']);
const takesNumber = (a: string | undefined) => a !== undefined && a.startsWith('--') && numeric.has(a.slice(2));
const negative = (a: string | undefined) => a !== undefined && /^-[0-9.]/.test(a);
export const joinNegatives = (argv: readonly string[]): string[] =>
  argv.flatMap((a, i) => (takesNumber(a) && negative(argv[i + 1]) ? [`${a}=${argv[i + 1]}`] : takesNumber(argv[i - 1]) && negative(a) ? [] : [a]));

export interface GenerateResult {
  readonly promptTokens: number[];
  readonly tokens: number[];
  readonly text: string | null;
  readonly timing: GenerateTiming;
}

export async function runGenerate(argv: readonly string[], io: Io): Promise<number> {
  const { positionals, values } = parseCommandArgs(generateSpec, joinNegatives(argv));
  const check = optionChecks('generate');
  const str = (k: string) => values[k] as string | undefined;
  const maxTokens = check.integer(str('max-tokens') ?? '32', 'max-tokens', 1);
  const temperature = check.number(str('temperature') ?? '1', 'temperature', true);
  const topK = check.integer(str('top-k') ?? '0', 'top-k', 0);
  const topPText = str('top-p') ?? '1';
  const topP = Number(topPText);
  if (topPText.trim() === '' || !(topP > 0 && topP <= 1)) throw check.error('top-p', 'a number in (0, 1]', topPText);
  const seed = check.integer(str('seed') ?? '0', 'seed', 0);
  const device = check.oneOf(['webgpu', 'cpu'] as const, str('device') ?? 'webgpu', 'device');
  const chunk = str('chunk') === undefined ? undefined : check.integer(str('chunk')!, 'chunk', 1);
  if ((str('prompt') === undefined) === (str('prompt-tokens') === undefined))
    throw new LomocError("lomoc generate: give the prompt with exactly one of '--prompt TEXT' and '--prompt-tokens ID,ID,...'");

  const init = str('init');
  const prepared = isBundleDir(positionals[0])
    ? await fromBundle(positionals[0], init, values, device)
    : await fromModel(await generateSource(positionals[0], str('model'), str('preset'), (values.set as string[] | undefined) ?? [], init), chunk, device, io);
  const { codec, name, context } = prepared;
  let prompt: number[];
  if (str('prompt-tokens') !== undefined) {
    const text = str('prompt-tokens')!;
    if (!/^\s*[0-9]+(\s*,\s*[0-9]+)*\s*$/.test(text)) throw check.error('prompt-tokens', 'comma-separated token ids like 1,2,3', text);
    prompt = text.split(',').map((t) => Number(t.trim()));
  } else {
    if (!codec)
      throw new LomocError(`lomoc generate: model '${name}' has a vocabulary of ${prepared.vocab} tokens, which no tokenizer matches (bytes: 256, gpt2: 50257); give the prompt as ids with --prompt-tokens`);
    prompt = codec.encode(str('prompt')!);
  }
  const bad = checkPrompt(prompt, prepared);
  if (bad) {
    prepared.destroy();
    throw new LomocError(`lomoc generate: ${bad}`);
  }
  if (!values.json) io.err(`generate    ${prepared.what}; context ${context}, ${prompt.length} prompt tokens; ${prepared.where}`);

  const timing: GenerateTiming = { prefillMs: 0, prefillTokens: 0, decodeMs: 0, decodeTokens: 0 };
  const tokens: number[] = [];
  const stream = io.write && !values.json ? io.write : undefined;
  let shown = 0;
  try {
    for await (const t of prepared.run(prompt, { maxTokens, temperature, topK, topP, seed }, timing)) {
      tokens.push(t);
      if (!stream) continue;
      if (!codec) stream(`${tokens.length > 1 ? ' ' : ''}${t}`);
      else {
        // Whole-sequence decoding, holding back a trailing partial UTF-8 character.
        const text = codec.decode(tokens);
        const upTo = text.endsWith('\uFFFD') ? text.length - 1 : text.length;
        if (upTo > shown) stream(text.slice(shown, upTo));
        shown = Math.max(shown, upTo);
      }
    }
  } catch (e) {
    if (e instanceof DeviceLostError) throw new LomocError(`lomoc generate: ${e.message}`);
    throw e;
  } finally {
    prepared.destroy();
  }
  const text = codec ? codec.decode(tokens) : null;
  const rate = (n: number, ms: number) => (ms > 0 ? Math.round((n / ms) * 1000 * 10) / 10 : null);
  if (values.json) {
    io.out(JSON.stringify({
      model: name, device, promptTokens: prompt, tokens, text,
      prefill: { tokens: timing.prefillTokens, ms: Math.round(timing.prefillMs), tokensPerSecond: rate(timing.prefillTokens, timing.prefillMs) },
      decode: { tokens: timing.decodeTokens, ms: Math.round(timing.decodeMs), tokensPerSecond: rate(timing.decodeTokens, timing.decodeMs) },
    }));
    return 0;
  }
  if (stream) {
    if (codec && text!.length > shown) stream(text!.slice(shown));
    stream('\n');
  } else io.out(codec ? text! : tokens.join(' '));
  if (tokens.length < maxTokens) io.err(`note        stopped after ${tokens.length} tokens: the sequence fills the context of ${context}`);
  io.err(`speed       prefill ${rate(timing.prefillTokens, timing.prefillMs) ?? '-'} tokens/s, decode ${rate(timing.decodeTokens, timing.decodeMs) ?? '-'} tokens/s`);
  return 0;
}

/** A model, its weights and a device, ready to generate: from a model file or checkpoint, or from a bundle. */
interface Prepared {
  readonly name: string;
  readonly context: number;
  readonly vocab: number;
  readonly codec: TextCodec | undefined;
  readonly what: string;
  readonly where: string;
  run(prompt: readonly number[], o: GenerateOptions, timing: GenerateTiming): AsyncGenerator<number>;
  destroy(): void;
}

async function gpuDevice(program: StepProgram) {
  try {
    return await acquireDevice(program);
  } catch (e) {
    if (e instanceof NoAdapterError) throw new LomocError(`lomoc generate: ${e.message}`);
    throw e;
  }
}

async function fromModel(src: GenerateSource, chunk: number | undefined, device: 'webgpu' | 'cpu', io: Io): Promise<Prepared> {
  const c = compileInference(src.def, { preset: src.preset, sets: src.sets, chunk });
  printWarnings(io, c.warnings);
  const tokenizer = pickTokenizer(c.vocab, src.tokenizer);
  const codec = tokenizer ? await textCodec(tokenizer) : undefined;
  const shapes = c.forward.params.map((p) => ({ name: p.name, shape: c.forward.values[p.value].shape }));
  let given;
  try {
    given = src.params?.(shapes);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new LomocError(`lomoc generate: ${e.message}`);
    throw e;
  }
  const params: Record<string, HostTensor> = given
    ? Object.fromEntries(shapes.map((p) => [p.name, { shape: p.shape, data: given[p.name] }]))
    : initParams(c.forward, 0, 'f32');
  const base = { name: src.def.name, context: c.context, vocab: c.vocab, codec, what: src.what };
  let dec: Decoder & { destroy?: () => void };
  let where: string;
  if (device === 'cpu') {
    dec = referenceDecoder(c, params, 'f32');
    where = 'cpu (reference executor)';
  } else {
    const { target, how } = resolveTarget('auto', (await probeAdapter())?.adapter);
    const program = lowerInference(planInference(c, { target }));
    const acquired = await gpuDevice(program);
    dec = await createGpuDecoder(acquired.device, program, Object.fromEntries(Object.entries(params).map(([k, t]) => [k, t.data])));
    where = `${acquired.description}; kernel target ${target} (${how})`;
  }
  return { ...base, where, run: (prompt, o, timing) => generate(dec, prompt, o, timing), destroy: () => dec.destroy?.() };
}

async function fromBundle(dir: string, init: string | undefined, values: Readonly<Record<string, unknown>>, device: 'webgpu' | 'cpu'): Promise<Prepared> {
  const src = await bundleSource(dir, init, { ...values, device });
  const tokenizer = pickTokenizer(src.inference.vocab, src.tokenizer);
  const codec = tokenizer ? await textCodec(tokenizer) : undefined;
  const acquired = await gpuDevice(src.inference.program);
  const gen = await createGenerator({ device: acquired.device, inference: src.inference, params: src.params });
  return {
    name: src.manifest.model, context: gen.context, vocab: gen.vocab, codec, what: src.what,
    where: `${acquired.description}; the bundle's kernels (target ${src.manifest.step.target})`,
    run: (prompt, o, timing) => gen.generate(prompt, o, timing),
    destroy: () => gen.destroy(),
  };
}
