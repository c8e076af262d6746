// What `lomoc train` is asked to do: its options, each checked, and the contradictions between
// them refused, all before anything is compiled or read. Also the learning-rate schedule.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { LomocError } from '../compiler/diagnostics.ts';
import type { StepConfig } from '../compiler/pipeline.ts';
import { optimizerSpec, optionChecks, subgroupsSpec, stepConfigFrom, stepOptionSpecs, targetChoice, tuneChoice, type CommandSpec, type OptionValue, type TargetChoice, type TuneChoice } from './args.ts';
import { maxSeed } from './option-checks.ts';
import { schedules, type Schedule } from '../runtime/train/schedule.ts';
import type { TokenizerName } from './train-data.ts';
import { isHfFolder } from './hf-init.ts';

export const trainSpec: CommandSpec = {
  name: 'train',
  summary: 'Train a model on real text on WebGPU, with validation, logs, a loss curve and checkpoints.',
  positionals: [{ name: 'model.ts|bundle-dir', help: 'a model file whose default export is model(...) with i32 inputs tokens and targets [batch, seq], or a bundle folder written by lomoc compile' }],
  options: {
    ...stepOptionSpecs,
    optimizer: optimizerSpec,
    lr: { type: 'string', value: 'X', help: 'peak learning rate, >= 0 (default 0.01)' },
    'lr-schedule': { type: 'string', value: 'NAME', help: 'constant, linear or cosine decay to 0 over --steps (default constant)' },
    warmup: { type: 'string', value: 'N', help: 'rise linearly to --lr over the first N steps, then the schedule over the rest (default 0)' },
    'weight-decay': { type: 'string', value: 'X', help: 'weight decay (default 0)' },
    data: { type: 'string', value: 'NAME|FILE', help: 'moby-dick (default), sotu, or a UTF-8 text file' },
    tokenizer: { type: 'string', value: 'NAME|DIR', help: "bytes (default; vocab 256), gpt2 (GPT-2's BPE, vocab 50257), or a folder with a Hugging Face tokenizer.json" },
    steps: { type: 'string', value: 'N', help: 'train until step N (required; 0 with --save writes the initial weights)' },
    'eval-every': { type: 'string', value: 'K', help: 'validation loss every K steps and at the end (default: at the end only)' },
    save: { type: 'string', value: 'DIR', help: 'write DIR/checkpoint.safetensors (and the log and loss curve there)' },
    'save-every': { type: 'string', value: 'K', help: 'with --save: a checkpoint every K steps (default: at the end only)' },
    resume: { type: 'string', value: 'DIR', help: 'continue from DIR/checkpoint.safetensors, exactly (same options required)' },
    init: { type: 'string', value: 'FILE|DIR', help: 'start from the weights in a safetensors file, by name, or in a Hugging Face model folder (with --preset hf: its config too)' },
    'init-partial': { type: 'boolean', help: 'with --init DIR: warn about, rather than refuse, tensors no param takes and params no tensor fills' },
    'stop-at': { type: 'string', value: 'N', help: 'stop after step N as if interrupted (the schedule still runs over --steps)' },
    log: { type: 'string', value: 'FILE', help: 'JSON-lines log (default DIR/log.jsonl with --save)' },
    plot: { type: 'string', value: 'FILE', help: 'loss curve SVG (default DIR/loss.svg with --save)' },
    seed: { type: 'string', value: 'N', help: `seed of the param init and the batch stream, 0 to ${maxSeed} (default 0)` },
    device: { type: 'string', value: 'NAME', help: 'webgpu (default) or cpu: the reference executor, with every other option the same' },
    subgroups: subgroupsSpec,
    'dump-batch': { type: 'string', value: 'FILE', help: 'write each step\'s batch (step number, token and target ids) to FILE as JSON lines' },
    'batch-file': { type: 'string', value: 'FILE', help: 'train step s on the batch of step s in FILE (as --dump-batch writes it) instead of drawing one' },
    json: { type: 'boolean', help: 'print one JSON object on stdout at the end instead of progress lines' },
  },
  examples: [
    'lomoc train models/gpt.ts --preset small --data moby-dick --tokenizer bytes --optimizer adamw --lr 0.003 --steps 150 --eval-every 50 --save out/moby',
    'lomoc train models/gpt.ts --preset small --steps 300 --resume out/moby',
    'lomoc train out/gpt-small --data moby-dick --steps 150',
    'lomoc train models/gpt.ts --preset small --set vocab=50257 --tokenizer gpt2 --data sotu --optimizer lomo --steps 100 --init out/moby/checkpoint.safetensors',
    'lomoc train models/gpt.ts --preset tiny --set vocab=256 --steps 0 --save out/init',
    'lomoc train models/gpt.ts --preset tiny --set vocab=256 --steps 3 --device cpu --dump-batch batches.jsonl',
  ],
};


export interface TrainRequest {
  readonly file: string;
  /** The step options given on the command line (a bundle fixes them all: giving one is an error). */
  readonly stepOptions?: readonly string[];
  readonly step: StepConfig;
  /** Kernel shapes for a model file: auto picks from the adapter (targetForAdapter). */
  readonly target: TargetChoice;
  /** --tune for a model file: matmul tiles timed on the adapter (cli/tune.ts). */
  readonly tune: TuneChoice;
  /** --subgroups, for a model file: subgroup reductions (an error where the adapter lacks them; a bundle fixes its own). */
  readonly subgroups: boolean;
  readonly lr: number;
  readonly schedule: Schedule;
  /** Steps of linear warmup before the schedule (0: none). */
  readonly warmup: number;
  readonly weightDecay: number;
  readonly data: string;
  /** bytes, gpt2, or a folder with tokenizer.json. */
  readonly tokenizer: TokenizerName | string;
  readonly steps: number;
  readonly stopAt: number;
  readonly evalEvery?: number;
  readonly save?: string;
  readonly saveEvery?: number;
  readonly resume?: string;
  readonly init?: string;
  readonly initPartial?: boolean;
  readonly log?: string;
  readonly plot?: string;
  readonly seed: number;
  /** Where the step runs: WebGPU, or the reference executor (default webgpu). */
  readonly device?: 'webgpu' | 'cpu';
  readonly dumpBatch?: string;
  readonly batchFile?: string;
  readonly json: boolean;
}

/** The options that change the compiled step: a bundle was compiled with them and fixes them. */
export const bundleFixed = ['optimizer', 'opt', 'checkpoint', 'clip-norm', 'clip-value', 'dtype', 'batch', 'seq', 'set', 'preset', 'target', 'rounding', 'clip-mode', 'loss-scale', 'loss-scale-interval', 'accumulate', 'tune', 'max-binding', 'fuse-loss', 'subgroups'] as const;

/** Options that cannot be given together, and why. */
const exclusive: readonly [string, string, string][] = [
  ['resume', 'init', "a resumed run continues from its checkpoint's weights"],
  ['batch-file', 'dump-batch', 'the batches of a batch file are already in a file'],
];

export function trainRequest(positionals: readonly string[], values: Readonly<Record<string, OptionValue>>): TrainRequest {
  const { integer, number, oneOf, error: optionError } = optionChecks('train');
  const str = (k: string) => values[k] as string | undefined;
  if (str('steps') === undefined) throw new LomocError("lomoc train: option '--steps N' is required");
  for (const [a, b, why] of exclusive)
    if (str(a) !== undefined && str(b) !== undefined) throw new LomocError(`lomoc train: options '--${a}' and '--${b}' cannot be combined: ${why}`);
  const steps = integer(str('steps')!, 'steps', 0);
  const stopAt = str('stop-at') === undefined ? steps : integer(str('stop-at')!, 'stop-at', 0);
  if (stopAt > steps) throw optionError('stop-at', `a step at most --steps (${steps})`, str('stop-at')!);
  const warmup = str('warmup') === undefined ? 0 : integer(str('warmup')!, 'warmup', 0);
  if (warmup > steps) throw optionError('warmup', `a number of steps at most --steps (${steps})`, str('warmup')!);
  if (str('save-every') !== undefined && str('save') === undefined) throw new LomocError("lomoc train: option '--save-every' needs '--save DIR'");
  const stepOptions = bundleFixed.filter((k) => values[k] !== undefined);
  // A bundle fixes the step: such options are refused naming the bundle's value (train-source.ts),
  // not first checked against each other (--loss-scale against the default --dtype f32).
  const bundle = statSync(positionals[0] ?? '', { throwIfNoEntry: false })?.isDirectory() === true;
  return {
    file: positionals[0],
    stepOptions,
    step: stepConfigFrom('train', bundle && stepOptions.length ? {} : values),
    target: targetChoice('train', str('target')),
    tune: tuneChoice('train', str('tune')),
    subgroups: values.subgroups === true,
    // 0 is allowed: validation itself runs the step with lr 0, and --steps 0 --lr 0 measures the initial weights.
    lr: str('lr') === undefined ? 0.01 : number(str('lr')!, 'lr', true),
    schedule: oneOf<Schedule>(schedules, str('lr-schedule') ?? 'constant', 'lr-schedule'),
    warmup,
    weightDecay: str('weight-decay') === undefined ? 0 : number(str('weight-decay')!, 'weight-decay', true),
    data: str('data') ?? 'moby-dick',
    tokenizer: isHfFolder(str('tokenizer')) ? str('tokenizer')! : oneOf<TokenizerName>(['gpt2', 'bytes'], str('tokenizer') ?? 'bytes', 'tokenizer'),
    steps,
    stopAt,
    evalEvery: str('eval-every') === undefined ? undefined : integer(str('eval-every')!, 'eval-every', 1),
    save: str('save'),
    saveEvery: str('save-every') === undefined ? undefined : integer(str('save-every')!, 'save-every', 1),
    resume: str('resume'),
    init: str('init'),
    initPartial: values['init-partial'] === true,
    log: str('log') ?? (str('save') !== undefined ? join(str('save')!, 'log.jsonl') : undefined),
    plot: str('plot') ?? (str('save') !== undefined ? join(str('save')!, 'loss.svg') : undefined),
    seed: str('seed') === undefined ? 0 : integer(str('seed')!, 'seed', 0, maxSeed),
    device: oneOf(['webgpu', 'cpu'] as const, str('device') ?? 'webgpu', 'device'),
    dumpBatch: str('dump-batch'),
    batchFile: str('batch-file'),
    json: values.json === true,
  };
}
