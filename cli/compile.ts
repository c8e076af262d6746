// `lomoc compile <model.ts> --out DIR`: compile the training step and write it as a bundle
// (manifest.json + kernels/*.wgsl) that the runtime loads with no compiler (runtime/bundle/), with
// the inference program when the model names its logits, its typed ES module entry (index.js, index.d.ts, node.js) and the runtime itself (runtime.js).
import path from 'node:path';
import { LomocError } from '../compiler/diagnostics.ts';
import { bundleInference } from '../compiler/bundle/inference-section.ts';
import { checkBundleOut, writeBundle } from '../compiler/bundle/write-bundle.ts';
import { kernelTargets, type HalfStorage } from '../compiler/codegen/wgsl/target.ts';
import { compileProgram } from '../compiler/compile-program.ts';
import { describeNormShare } from '../compiler/passes/norm-share.ts';
import { loadModel } from '../compiler/load-model.ts';
import { optimizerSpec, parseCommandArgs, resolveTarget, stepConfigFrom, stepOptionSpecs, targetChoice, tuneChoice, type CommandSpec } from './args.ts';
import { optionChecks } from './option-checks.ts';
import type { Manifest } from '../contract/manifest.ts';
import { NoAdapterError } from '../runtime/webgpu/device.ts';
import { GpuTimeoutError } from '../runtime/webgpu/guard.ts';
import { acquireDevice } from '../runtime/webgpu/node.ts';
import { adapterIdentity } from './tune-cache.ts';
import { tuneCompiled } from './tune.ts';
import { checkpointText } from './step-options.ts';
import { defaultRounding } from '../compiler/passes/optimizer-step.ts';
import { fmtBytes } from '../contract/units.ts';
import { printWarnings, type Io } from './report.ts';
import { loadText } from './train-data.ts';

export const compileSpec: CommandSpec = {
  name: 'compile',
  summary: 'Compile the training step into a bundle folder that the runtime loads without the compiler.',
  positionals: [{ name: 'model.ts', help: 'a model file whose default export is model(...)' }],
  options: {
    ...stepOptionSpecs,
    optimizer: optimizerSpec,
    half: { type: 'string', value: 'packed|native', help: "f16 storage (--dtype f16): packed in u32 words, runs on every adapter (the default); native needs the adapter feature shader-f16" },
    subgroups: { type: 'boolean', help: 'reduce across threads with WGSL subgroup operations: faster, but the bundle then needs the adapter feature subgroups (off by default)' },
    out: { type: 'string', value: 'DIR', help: 'the bundle folder to write: a new or empty folder, or a bundle to replace (required)' },
  },
  examples: ['lomoc compile models/gpt.ts --preset small --optimizer lomo --out out/gpt-small', 'lomoc compile models/gpt.ts --dtype f16 --half native --out out/gpt-f16'],
};

/**
 * f16 storage for an f16 bundle (undefined for other dtypes). Packed by default: a bundle runs on
 * machines this command never sees, and packed f16 runs on all of them, while native f16 needs
 * shader-f16, which Dawn's Vulkan adapter on NVIDIA GPUs does not offer.
 */
function halfChoice(text: string | undefined, dtype: string): HalfStorage | undefined {
  const choice = text === undefined ? undefined : optionChecks('compile').oneOf<HalfStorage>(['packed', 'native'], text, 'half');
  if (dtype !== 'f16') {
    if (text !== undefined) throw new LomocError(`lomoc compile: option '--half' applies to f16 storage (--dtype f16), got --dtype ${dtype}`);
    return undefined;
  }
  return choice ?? 'packed';
}

/** The device `--tune SECONDS` times tiles on; no adapter is the command's error. */
async function tuningDevice() {
  try {
    return await acquireDevice();
  } catch (e) {
    if (e instanceof NoAdapterError || e instanceof GpuTimeoutError) throw new LomocError(`lomoc compile: option '--tune': ${e.message}`);
    throw e;
  }
}

export async function runCompile(argv: readonly string[], io: Io): Promise<number> {
  const { positionals, values } = parseCommandArgs(compileSpec, argv);
  const str = (k: string) => values[k] as string | undefined;
  const out = str('out');
  if (out === undefined) throw new LomocError("lomoc compile: option '--out DIR' is required");
  checkBundleOut(out); // before compiling: a folder that must not be written fails at once
  const step = stepConfigFrom('compile', values);
  // A bundle runs on the machines that load it (browsers, GPUs), not on this one: auto looks at no
  // adapter here and takes the stated default; the manifest records the target chosen.
  // --tune SECONDS is the exception: it times tiles on this machine's adapter, so auto picks by it.
  const tune = tuneChoice('compile', str('tune'));
  const acq = tune.mode === 'on' ? await tuningDevice() : undefined;
  const { target, how } = resolveTarget(targetChoice('compile', str('target')), acq?.adapter ?? 'a bundle runs elsewhere, so lomoc compile asks no adapter');
  const half = halfChoice(str('half'), step.dtype ?? 'f32');
  const def = await loadModel(positionals[0]);
  // Subgroups off unless asked for: like native f16, a feature the machines that load the bundle may lack.
  const subgroups = values.subgroups === true;
  const untuned = compileProgram(def, { ...step, target: { ...kernelTargets[target], half: half ?? 'native', ...(subgroups ? { subgroups } : {}) } });
  printWarnings(io, untuned.warnings);
  let c = untuned;
  let tuning = ''; // untuned: the output is what it was before --tune existed
  let tuned: Manifest['step']['tuned'];
  if (acq) {
    try {
      const r = await tuneCompiled(acq, untuned, target, tune, (m) => io.err(`warning: ${m}`));
      c = { ...untuned, program: r.program, target: r.target };
      tuning = `; ${r.line}, on ${acq.description}`;
      r.details.forEach((d) => io.out(d));
      tuned = { adapter: adapterIdentity(acq.adapter.info), matmul: { ...r.target.tuned } };
    } finally {
      acq.device.destroy();
    }
  }
  // A model that trains but whose logits generation cannot feed (they read another input) still
  // gets its training bundle: the compile says why it has no inference program.
  let inference: ReturnType<typeof bundleInference>;
  let noInference = `model '${def.name}' names no logits (output('logits', ...))`;
  try {
    inference = bundleInference(def, c.forward, c.config, c.target, str('preset'));
  } catch (e) {
    if (!(e instanceof LomocError)) throw e;
    noInference = `its inference program cannot be built (${e.message})`;
  }
  const manifest = writeBundle(out, c.program, {
    model: def.name,
    preset: str('preset') ?? def.defaultPreset,
    config: c.config,
    step: {
      optimizer: step.optimizer,
      // Only what --opt set (the rest are the descriptor's defaults), so bundles without it read as before.
      ...(step.hyper && Object.keys(step.hyper).length ? { hyper: step.hyper } : {}),
      dtype: step.dtype ?? 'f32',
      checkpoint: checkpointText(step.checkpoint ?? { kind: 'none' }),
      checkpointDetail: c.checkpointDetail,
      clipNorm: step.clipNorm ?? null,
      clipValue: step.clipValue ?? null,
      // Only where given, so bundles without them read as before (exact clipping, no loss scaling).
      ...(step.clipMode === 'previous' ? { clipMode: step.clipMode } : {}),
      ...(typeof step.lossScale === 'object' ? { lossScale: step.lossScale } : {}),
      ...(step.rounding && step.rounding !== defaultRounding(step.dtype, step.optimizer, step.master) ? { rounding: step.rounding } : {}),
      ...((step.accumulate ?? 1) > 1 ? { accumulate: step.accumulate } : {}),
      target,
      ...(half ? { half } : {}),
      ...(c.program.features.includes('subgroups') ? { subgroups: true as const } : {}),
      ...(tuned ? { tuned } : {}),
    },
    plan: c.plan,
    inference,
  }, { sample: loadText('moby-dick') });
  const kernels = new Set([...Object.values(manifest.program.kernels), ...Object.values(manifest.inference?.program.kernels ?? {})]).size;
  io.out(`wrote       ${path.join(out, 'manifest.json')} and ${kernels} kernels (${out}/kernels/)`);
  io.out(`entry       ${path.join(out, 'index.js')} (types: index.d.ts; Node: node.js), runtime.js`);
  io.out(`page        ${path.join(out, 'index.html')}: open it with lomoc serve ${out}`);
  io.out(`step        ${def.name}, preset ${manifest.preset}, ${step.optimizer}; ${c.program.dispatches.length} dispatches per step; kernel target ${target} (${how})${tuning}`);
  if (step.clipMode === 'previous') io.out(`clip        norm ${step.clipNorm} by the previous step's norm: one pass, approximate (the norm is state: clip.norm)`);
  if (c.normShare) io.out(`norm pass   ${describeNormShare(c.normShare)}`);
  const scale = manifest.step.lossScale;
  if (scale) io.out(`loss scale  ${scale.kind === 'dynamic' ? `dynamic from ${scale.init} (halved and the step skipped on an overflow, x2 after ${scale.interval} clean steps)` : `fixed at ${scale.scale}`}: index.js's trainer keeps it, checkpoints store it`);
  if (half) io.out(`f16         ${half === 'packed' ? 'packed in u32 words: runs on every adapter' : 'native array<f16>: needs the adapter feature shader-f16'} (${str('half') ? '--half' : 'the default'})`);
  if (subgroups)
    io.out(c.program.features.includes('subgroups') ? 'subgroups   reductions across threads use subgroup operations: needs the adapter feature subgroups (--subgroups)' : 'subgroups   none used: no kernel of this step reduces across threads (--subgroups)');
  io.out(`memory      ${fmtBytes(c.plan.peak)} in ${c.program.arenas.length} arena(s) (the plan's peak)`);
  io.out(inference
    ? `inference   prefill ${inference.chunk} tokens a call and decode 1, context ${inference.context}; ${fmtBytes(inference.plan.peak)} (its own plan's peak): lomoc generate ${out}`
    : `inference   none: ${noInference}, so this bundle cannot generate`);
  return 0;
}
