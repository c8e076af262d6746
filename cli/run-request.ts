// What `lomoc run` is asked to do: its options, each checked before anything is compiled.
import { LomocError } from '../compiler/diagnostics.ts';
import type { StepConfig } from '../compiler/pipeline.ts';
import { optimizerSpec, optionChecks, subgroupsSpec, stepConfigFrom, stepOptionSpecs, targetChoice, tuneChoice, type CommandSpec, type OptionValue, type TargetChoice, type TuneChoice } from './args.ts';
import { maxSeed } from './option-checks.ts';

export const runSpec: CommandSpec = {
  name: 'run',
  summary: 'Compile the training step to WebGPU and train it on random data, timing each step.',
  positionals: [{ name: 'model.ts', help: 'a model file whose default export is model(...)' }],
  options: {
    ...stepOptionSpecs,
    optimizer: optimizerSpec,
    lr: { type: 'string', value: 'X', help: 'learning rate, >= 0 (default 0.01)' },
    'weight-decay': { type: 'string', value: 'X', help: 'weight decay (default 0)' },
    steps: { type: 'string', value: 'N', help: 'training steps to run (required)' },
    seed: { type: 'string', value: 'N', help: 'seed of the param init and the random batches (default 0)' },
    device: { type: 'string', value: 'NAME', help: 'webgpu (default) or cpu: the reference executor, for comparison' },
    save: { type: 'string', value: 'DIR', help: 'after the last step, write the params and optimizer state to DIR/checkpoint.safetensors (train --init reads it)' },
    subgroups: subgroupsSpec,
    profile: { type: 'boolean', help: 'after training, time every dispatch once and print the slowest shaders' },
    json: { type: 'boolean', help: 'print one JSON object on stdout instead of the table' },
  },
  examples: [
    'lomoc run models/gpt.ts --preset small --optimizer lomo --steps 10',
    'lomoc run models/llama.ts --preset tiny --optimizer adamw --checkpoint blocks --clip-norm 1 --steps 5 --json',
    'lomoc run models/mlp.ts --steps 20 --lr 0.1 --device cpu',
  ],
};

export interface RunRequest {
  readonly file: string;
  readonly step: StepConfig;
  /** Kernel shapes: auto picks from the adapter acquired (targetForAdapter). */
  readonly target: TargetChoice;
  /** --tune: matmul tiles timed on the adapter (cli/tune.ts). */
  readonly tune: TuneChoice;
  /** --subgroups: subgroup reductions (an error where the adapter lacks them). */
  readonly subgroups: boolean;
  readonly lr: number;
  readonly weightDecay: number;
  readonly steps: number;
  readonly seed: number;
  readonly device: 'webgpu' | 'cpu';
  /** Write DIR/checkpoint.safetensors after the last step. */
  readonly save?: string;
  readonly profile: boolean;
  readonly json: boolean;
}

const { integer, number, oneOf } = optionChecks('run');

/** Checks every option before anything is compiled. */
export function runRequest(positionals: readonly string[], values: Readonly<Record<string, OptionValue>>): RunRequest {
  const str = (k: string) => values[k] as string | undefined;
  if (str('steps') === undefined) throw new LomocError("lomoc run: option '--steps N' is required");
  return {
    file: positionals[0],
    step: stepConfigFrom('run', values),
    target: targetChoice('run', str('target')),
    tune: tuneChoice('run', str('tune')),
    subgroups: values.subgroups === true,
    // 0 is allowed, as in train: a step that updates nothing still measures the loss and the speed.
    lr: str('lr') === undefined ? 0.01 : number(str('lr')!, 'lr', true),
    weightDecay: str('weight-decay') === undefined ? 0 : number(str('weight-decay')!, 'weight-decay', true),
    steps: integer(str('steps')!, 'steps', 1),
    seed: str('seed') === undefined ? 0 : integer(str('seed')!, 'seed', 0, maxSeed),
    device: oneOf(['webgpu', 'cpu'] as const, str('device') ?? 'webgpu', 'device'),
    save: str('save'),
    profile: values.profile === true,
    json: values.json === true,
  };
}
