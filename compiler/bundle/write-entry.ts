// The bundle's typed ES module entry, so that a bundle runs with the runtime alone (no compiler,
// no TypeScript at run time), in Node and in a browser:
//   index.js, index.d.ts  createTrainer({ device | gpu, read?, seed? }) whose step(batch, hyper)
//                         takes exactly the model's named inputs, typed and documented with their
//                         dtypes and shapes; readParams() typed by the params' names;
//                         createGenerator({ device | gpu, params? }) runs the inference program
//                         (when the bundle has one) with the runtime's createGenerator
//   node.js, node.d.ts    the same, reading the bundle's files from disk (node:fs); the only
//                         file of the bundle that imports a Node module
//   runtime.js            runtime/index.ts bundled by esbuild (zod included): browser-safe
//   package.json          "type": "module", so Node loads index.js as ESM wherever the folder lies
// The entry is written as TypeScript with ts-morph (declarations from structures, with TSDoc),
// type-checked in memory against stubs of the runtime and WebGPU, then emitted as JS + .d.ts.
import { buildSync } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { Project, ts, VariableDeclarationKind, type SourceFile } from 'ts-morph';
import type { Manifest } from '../../contract/manifest.ts';
import { neededLimits } from '../../contract/limits.ts';
import { isHyperInput } from '../../contract/program.ts';
import { numel } from '../../contract/units.ts';

let runtimeJs: string | undefined;

/** runtime/index.ts as one ES module with no imports (built once per process). */
export function runtimeBundle(): string {
  if (runtimeJs !== undefined) return runtimeJs;
  const result = buildSync({
    entryPoints: [fileURLToPath(new URL('../../runtime/index.ts', import.meta.url))],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    target: 'es2022',
    minifySyntax: true,
    minifyWhitespace: true,
    legalComments: 'none',
    write: false,
    logLevel: 'silent',
    banner: { js: '// The lomoc runtime (runtime/index.ts and zod), bundled by esbuild: browser-safe, no imports.' },
  });
  runtimeJs = result.outputFiles[0].text;
  return runtimeJs;
}

const arrayType = { i32: 'Int32Array', f32: 'Float32Array', f16: 'Float32Array', bf16: 'Float32Array' } as const;
const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;
/** A property name as TypeScript source: bare when it is an identifier, quoted otherwise. */
const prop = (name: string) => (/^[A-Za-z_$][\w$]*$/.test(name) ? name : `'${name.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`);

/** Declarations the entry needs while it is checked; never emitted. */
const stubs = `
interface ImportMeta { url: string }
interface GPUDevice { destroy(): void }
interface GPU { requestAdapter(options?: unknown): Promise<unknown> }
declare class URL { constructor(url: string, base?: string | URL); }
declare function fetch(url: URL): Promise<{ ok: boolean; status: number; statusText: string; text(): Promise<string> }>;
declare module 'node:fs/promises' { export function readFile(file: URL, encoding: 'utf8'): Promise<string>; }
`;
const runtimeStub = `
export declare class BundleError extends Error {}
export declare function loadBundle(manifest: string, read: (file: string) => Promise<string>): Promise<{ manifest: any; program: any; inference?: any }>;
export declare function createGenerator(options: any): Promise<any>;
export declare function bothNeeds(step: any, inference: any): any;
export declare const noInferenceMessage: string;
export declare function createTrainer(options: any): Promise<any>;
export declare function acquireFrom(sources: any, program: any, hint: string): Promise<{ device: GPUDevice }>;
export declare function browserSources(gpu: GPU): any;
export declare function lossScaleStateOf(v: unknown): { scale: number; cleanSteps: number; skipped: number } | undefined;
`;

function writeIndex(f: SourceFile, m: Manifest): void {
  const p = m.program;
  const data = p.inputs.filter((s) => !isHyperInput(s.name));
  const hyper = p.inputs.filter((s) => isHyperInput(s.name)).map((s) => s.name);
  const what = `${m.model} (preset ${m.preset}, ${m.step.optimizer}${m.step.checkpoint === 'none' ? '' : `, checkpointing ${m.step.checkpoint}`})`;
  f.addImportDeclaration({ moduleSpecifier: './runtime.js', namespaceImport: 'runtime' });

  const constant = (name: string, docs: string, init: string, type?: string) =>
    f.addVariableStatement({ isExported: true, declarationKind: VariableDeclarationKind.Const, docs: [docs], declarations: [{ name, type, initializer: init }] });
  constant('model', 'The model this bundle trains.', `${JSON.stringify(m.model)} as const`);
  constant('preset', 'The preset it was compiled with.', `${JSON.stringify(m.preset)} as const`);
  constant('optimizer', 'The optimizer fused into the step.', `${JSON.stringify(m.step.optimizer)} as const`);
  constant('config', "The model's configuration.", `${JSON.stringify(m.config)} as const`);
  constant('clipMode', "How the step clips by norm: 'exact', or 'previous' (one pass, by the previous step's norm; the norm is optimizer state, clip.norm).", `${JSON.stringify(m.step.clipMode ?? 'exact')} as const`);
  constant('lossScale', 'How the trainer moves the f16 loss scale (lomoc compile --loss-scale), or null: the step scales no loss.',
    m.step.lossScale ? `${JSON.stringify(m.step.lossScale)} as const` : 'null');
  const table = (slots: readonly { name: string; dtype: string; shape: readonly number[] }[]) =>
    `{\n${slots.map((s) => `  ${prop(s.name)}: { dtype: '${s.dtype}', shape: ${shapeText(s.shape)} },`).join('\n')}\n} as const`;
  // The tables' types are written out, not inferred: an inferred type of tens of thousands of
  // params is too long for TypeScript to emit into index.d.ts (TS7056).
  const tableType = (slots: readonly { name: string; dtype: string; shape: readonly number[] }[]) =>
    `{\n${slots.map((s) => `  readonly ${prop(s.name)}: { readonly dtype: '${s.dtype}'; readonly shape: readonly ${shapeText(s.shape)} };`).join('\n')}\n}`;
  f.addTypeAlias({ name: 'InputTable', isExported: true, docs: ["The step's data inputs' element types and shapes."], type: tableType(data) });
  f.addTypeAlias({ name: 'ParamTable', isExported: true, docs: ["The parameters' element types and shapes."], type: tableType(p.params) });
  constant('inputs', "The step's data inputs (what a batch holds): name, element type and shape.", table(data), 'InputTable');
  constant('params', 'The parameters (readParams, writeParams): name, element type and shape.', table(p.params), 'ParamTable');
  constant('requiredLimits', 'The WebGPU limits the step needs: request them when you make the device yourself.', `${JSON.stringify(neededLimits(p))} as const`);
  constant('requiredFeatures', 'The WebGPU features the step needs.', `${JSON.stringify(p.features)} as const`);
  constant('planBytes', 'Device memory the step needs: the memory plan\'s peak, in bytes.', String(p.arenas.reduce((a, b) => a + b, 0)));
  constant('inference', m.inference
    ? `The inference program (createGenerator): context ${m.inference.context} tokens, prefill ${m.inference.chunk} a call, decode 1, and its plan's peak in bytes.`
    : "This bundle carries no inference program: createGenerator rejects with the reason.",
  m.inference ? `${JSON.stringify({ context: m.inference.context, chunk: m.inference.chunk, vocab: m.inference.vocab, planBytes: m.inference.plan.peak })} as const` : 'null');

  f.addInterface({
    name: 'Batch',
    isExported: true,
    docs: [`One step's data: exactly these inputs, each a typed array of the shape given (row-major).`],
    properties: data.map((s) => ({
      name: prop(s.name),
      isReadonly: true,
      type: arrayType[s.dtype],
      docs: [`\`${s.dtype}\` ${shapeText(s.shape)}: ${numel(s.shape)} elements.`],
    })),
  });
  f.addInterface({
    name: 'Params',
    isExported: true,
    docs: ['The parameters by name, as f32 values (row-major).'],
    properties: p.params.map((s) => ({ name: prop(s.name), isReadonly: true, type: 'Float32Array', docs: [`\`${s.dtype}\` ${shapeText(s.shape)}: ${numel(s.shape)} elements.`] })),
  });
  f.addInterface({
    name: 'Hyper',
    isExported: true,
    docs: [`The step's scalars (this bundle reads ${hyper.length ? hyper.join(', ') : 'none of them'}).`],
    properties: [
      { name: 'lr', isReadonly: true, type: 'number', docs: ['Learning rate.'] },
      { name: 'weightDecay', isReadonly: true, type: 'number', docs: ['Decoupled weight decay.'] },
      { name: 'step', isReadonly: true, hasQuestionToken: true, type: 'number', docs: ["AdamW's 1-based step count for bias correction (default: the trainer's step number)."] },
      ...(m.step.lossScale
        ? [{ name: 'lossScale', isReadonly: true, hasQuestionToken: true, type: 'number', docs: ["This step's loss scale, given (validation with lr 0): the trainer's scale is neither read nor moved."] }]
        : []),
    ],
  });
  f.addInterface({
    name: 'LossScaleState',
    isExported: true,
    docs: ["The trainer's loss scaling: what `lomoc train` stores in a checkpoint's metadata as lossScale."],
    properties: [
      { name: 'scale', isReadonly: true, type: 'number', docs: ['The scale the next step multiplies the loss by.'] },
      { name: 'cleanSteps', isReadonly: true, type: 'number', docs: ['Steps without an overflow since the scale last moved.'] },
      { name: 'skipped', isReadonly: true, type: 'number', docs: ['Steps skipped for an overflow in the whole run (their updates undone: params unchanged).'] },
    ],
  });
  f.addTypeAlias({ name: 'ReadFile', isExported: true, docs: ['Reads a file of the bundle by its path relative to the bundle folder (manifest.json, kernels/NAME.wgsl).'], type: '(file: string) => Promise<string>' });
  f.addInterface({
    name: 'TrainerOptions',
    isExported: true,
    properties: [
      { name: 'device', isReadonly: true, hasQuestionToken: true, type: 'GPUDevice', docs: ['A device made with `requiredLimits` and `requiredFeatures`. Pass this or `gpu`.'] },
      { name: 'gpu', isReadonly: true, hasQuestionToken: true, type: 'GPU', docs: ["Where to get an adapter (`navigator.gpu`, or the `webgpu` package's `create([])` in Node): a device with the step's limits is made from it, and destroyed with the trainer."] },
      { name: 'read', isReadonly: true, hasQuestionToken: true, type: 'ReadFile', docs: ["Reads the bundle's files (default: fetch, relative to this module's URL; node.js reads them from disk)."] },
      { name: 'seed', isReadonly: true, hasQuestionToken: true, type: 'number', docs: ['Seed of the parameters\' initialisation (default 0).'] },
      { name: 'lossEvery', isReadonly: true, hasQuestionToken: true, type: 'number', docs: ['Read the loss back every k steps (default 1); other steps resolve to undefined.'] },
      { name: 'warmUp', isReadonly: true, hasQuestionToken: true, type: 'boolean', docs: ['Compile every pipeline before the first step (default true).'] },
    ],
  });
  f.addInterface({
    name: 'Trainer',
    isExported: true,
    methods: [
      { name: 'step', docs: ['Runs one training step; resolves to its loss when this step reads it back.'], parameters: [{ name: 'batch', type: 'Batch' }, { name: 'hyper', type: 'Hyper' }], returnType: 'Promise<number | undefined>' },
      { name: 'readParams', docs: ['The parameters, read back from the device.'], returnType: 'Promise<Params>' },
      { name: 'readState', docs: ['The optimizer state (moments, master copies) by name.'], returnType: 'Promise<Record<string, Float32Array>>' },
      { name: 'writeParams', docs: ['Overwrites the parameters given (others keep their values).'], parameters: [{ name: 'params', type: '{ readonly [K in keyof Params]?: ArrayLike<number> }' }], returnType: 'void' },
      { name: 'writeState', docs: ['Overwrites optimizer state by name (the values readState gives): to resume.'], parameters: [{ name: 'state', type: 'Readonly<Record<string, ArrayLike<number>>>' }], returnType: 'void' },
      { name: 'restoreLossScale', docs: ['Sets the loss scaling state (a checkpoint\'s lossScale): to resume. Throws where the bundle scales no loss.'], parameters: [{ name: 'state', type: 'LossScaleState' }], returnType: 'void' },
      { name: 'destroy', docs: ["Frees the trainer's buffers (and the device, when it made it)."], returnType: 'void' },
    ],
    properties: [
      { name: 'steps', isReadonly: true, type: 'number', docs: ['Steps run so far.'] },
      { name: 'lossScale', isReadonly: true, type: 'LossScaleState | null', docs: ['The loss scaling state after the last step (null: the bundle scales no loss).'] },
      { name: 'skippedLast', isReadonly: true, type: 'boolean', docs: ['Whether the last step overflowed in f16 and skipped its updates (always false without loss scaling).'] },
      { name: 'deviceBytes', isReadonly: true, type: 'number', docs: ['Everything the trainer holds on the device, in bytes.'] },
      { name: 'adapter', isReadonly: true, type: 'string', docs: ['The adapter it runs on, for reports.'] },
      { name: 'stepMs', isReadonly: true, type: 'readonly number[]', docs: ['Wall-clock milliseconds of each step so far.'] },
      { name: 'device', isReadonly: true, type: 'GPUDevice', docs: ['The device it runs on: pass it to createGenerator to sample on the same device (it was made with both programs\' limits).'] },
    ],
  });
  f.addInterface({
    name: 'GeneratorOptions',
    isExported: true,
    properties: [
      { name: 'device', isReadonly: true, hasQuestionToken: true, type: 'GPUDevice', docs: ["A device (a trainer's `device`, or one made with the inference program's limits). Pass this or `gpu`."] },
      { name: 'gpu', isReadonly: true, hasQuestionToken: true, type: 'GPU', docs: ['Where to get an adapter: a device is made from it, and destroyed with the generator.'] },
      { name: 'read', isReadonly: true, hasQuestionToken: true, type: 'ReadFile', docs: ["Reads the bundle's files (default: fetch, relative to this module's URL)."] },
      { name: 'params', isReadonly: true, hasQuestionToken: true, type: '{ readonly [K in keyof Params]: ArrayLike<number> }', docs: ["Every param's values (a trainer's readParams(), a checkpoint's); default: the initial values at `seed`."] },
      { name: 'seed', isReadonly: true, hasQuestionToken: true, type: 'number', docs: ["Seed of the initial values when `params` is absent (default 0, as createTrainer's)."] },
    ],
  });
  f.addInterface({
    name: 'SampleOptions',
    isExported: true,
    properties: [
      { name: 'maxTokens', isReadonly: true, hasQuestionToken: true, type: 'number', docs: ['Tokens to generate at most (default 32; fewer when the context fills).'] },
      { name: 'temperature', isReadonly: true, hasQuestionToken: true, type: 'number', docs: ['0 for greedy decoding (default 1).'] },
      { name: 'topK', isReadonly: true, hasQuestionToken: true, type: 'number', docs: ['Sample among the k most likely tokens (default 0: all).'] },
      { name: 'topP', isReadonly: true, hasQuestionToken: true, type: 'number', docs: ['Sample among the most likely tokens whose probability reaches p (default 1).'] },
      { name: 'seed', isReadonly: true, hasQuestionToken: true, type: 'number', docs: ["Seed of the sampler (default 0): the same seed, the same tokens, as lomoc generate's --seed."] },
    ],
  });
  f.addInterface({
    name: 'GenerateTiming',
    isExported: true,
    docs: ['Milliseconds spent in prefill and in decode steps, and the tokens each ran (filled in as generation goes).'],
    properties: ['prefillMs', 'prefillTokens', 'decodeMs', 'decodeTokens'].map((name) => ({ name, type: 'number' })),
  });
  f.addInterface({
    name: 'Generator',
    isExported: true,
    methods: [
      { name: 'generate', docs: ['Yields each new token id after the prompt (token ids), as lomoc generate picks them.'], parameters: [{ name: 'prompt', type: 'readonly number[]' }, { name: 'options', hasQuestionToken: true, type: 'SampleOptions' }, { name: 'timing', hasQuestionToken: true, type: 'GenerateTiming' }], returnType: 'AsyncGenerator<number>' },
      { name: 'writeParams', docs: ["Overwrites params by name (a trainer's current values): the next generation reads them."], parameters: [{ name: 'params', type: '{ readonly [K in keyof Params]?: ArrayLike<number> }' }], returnType: 'void' },
      { name: 'destroy', docs: ["Frees the generator's buffers (and the device, when it made it)."], returnType: 'void' },
    ],
    properties: [
      { name: 'context', isReadonly: true, type: 'number', docs: ['Tokens a prompt and its continuation fit in.'] },
      { name: 'vocab', isReadonly: true, type: 'number', docs: ['Token ids are below this.'] },
      { name: 'deviceBytes', isReadonly: true, type: 'number', docs: ['Everything the generator holds on the device, in bytes.'] },
    ],
  });
  f.addVariableStatement({
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: ["Reads a file of the bundle with fetch, relative to this module's URL (a browser's default)."],
    declarations: [{
      name: 'fetchFile',
      type: 'ReadFile',
      initializer: `async (file) => {
  const response = await fetch(new URL(file, import.meta.url));
  if (!response.ok) throw new Error(\`\${response.status} \${response.statusText}\`);
  return response.text();
}`,
    }],
  });
  f.addFunction({
    name: 'createTrainer',
    isExported: true,
    isAsync: true,
    docs: [`Loads the bundle (checking manifest.json and every kernel before anything reaches the device), initialises the parameters from \`seed\`, and returns a trainer of ${what}.`],
    parameters: [{ name: 'options', type: 'TrainerOptions' }],
    returnType: 'Promise<Trainer>',
    statements: `if ((options.device === undefined) === (options.gpu === undefined))
  throw new TypeError("createTrainer: pass exactly one of 'device' (a GPUDevice) or 'gpu' (navigator.gpu, or the webgpu package's create([]))");
const read = options.read ?? fetchFile;
let manifest: string;
try {
  manifest = await read('manifest.json');
} catch (e) {
  throw new runtime.BundleError(\`manifest.json: cannot read it (\${e instanceof Error ? e.message : String(e)})\`);
}
const { manifest: m, program, inference: generation } = await runtime.loadBundle(manifest, read);
const want = Object.entries(inputs).map(([name, s]) => \`\${name}:\${s.dtype}[\${s.shape.join(',')}]\`).join(' ');
const have = program.inputs.filter((s: { name: string }) => !['lr', 'weightDecay', 'step', 'lossScale'].includes(s.name))
  .map((s: { name: string; dtype: string; shape: number[] }) => \`\${s.name}:\${s.dtype}[\${s.shape.join(',')}]\`).join(' ');
if (want !== have) throw new runtime.BundleError(\`manifest.json: program.inputs: \${have} do not match this index.js (\${want})\`);
// One device for both programs, so that a page samples on its trainer's device.
const made = options.gpu === undefined ? undefined : await runtime.acquireFrom(runtime.browserSources(options.gpu), runtime.bothNeeds(program, generation?.program), 'no WebGPU adapter');
const device = made ?? options.device!;
// The scaler runs as lomoc train runs it (runtime/train/loss-scaler.ts), with the manifest's spec.
const t = await runtime.createTrainer({ device, program, seed: options.seed, lossEvery: options.lossEvery, warmUp: options.warmUp, lossScale: m.step.lossScale });
return {
  step: (batch, hyper) => t.step(batch, hyper),
  readParams: () => t.readParams(),
  readState: () => t.readState(),
  writeParams: (params) => t.writeParams(params),
  writeState: (state) => t.writeState(state),
  get steps(): number {
    return t.steps;
  },
  get lossScale(): LossScaleState | null {
    return t.lossScaler ? { ...t.lossScaler.state } : null;
  },
  get skippedLast(): boolean {
    return t.lossScaler?.lastOverflow ?? false;
  },
  restoreLossScale(state) {
    if (!t.lossScaler) throw new TypeError('restoreLossScale: this bundle was compiled without --loss-scale');
    const checked = runtime.lossScaleStateOf(state);
    if (!checked) throw new TypeError(\`restoreLossScale: expected { scale > 0, cleanSteps, skipped } (whole numbers), got \${JSON.stringify(state)}\`);
    t.lossScaler.restore(checked);
  },
  deviceBytes: t.deviceBytes,
  adapter: t.adapter,
  stepMs: t.stepMs,
  device: made?.device ?? options.device!,
  destroy() {
    t.destroy();
    made?.device.destroy();
  },
};`,
  });
  f.addFunction({
    name: 'createGenerator',
    isExported: true,
    isAsync: true,
    docs: [`Loads the bundle's inference program (checked as createTrainer checks the step), copies \`params\` into its own buffers (or the initial values at \`seed\`), and returns a generator of ${m.model}: the code lomoc generate runs on a bundle.`],
    parameters: [{ name: 'options', type: 'GeneratorOptions' }],
    returnType: 'Promise<Generator>',
    statements: `if ((options.device === undefined) === (options.gpu === undefined))
  throw new TypeError("createGenerator: pass exactly one of 'device' (a GPUDevice) or 'gpu' (navigator.gpu, or the webgpu package's create([]))");
const read = options.read ?? fetchFile;
let manifest: string;
try {
  manifest = await read('manifest.json');
} catch (e) {
  throw new runtime.BundleError(\`manifest.json: cannot read it (\${e instanceof Error ? e.message : String(e)})\`);
}
const { inference: loaded } = await runtime.loadBundle(manifest, read);
if (!loaded) throw new runtime.BundleError(runtime.noInferenceMessage);
const made = options.gpu === undefined ? undefined : await runtime.acquireFrom(runtime.browserSources(options.gpu), loaded.program, 'no WebGPU adapter');
const g = await runtime.createGenerator({ device: made?.device ?? options.device!, inference: loaded, params: options.params, seed: options.seed });
return {
  generate: (prompt, o, timing) => g.generate(prompt, o, timing),
  writeParams: (params) => g.writeParams(params),
  context: g.context,
  vocab: g.vocab,
  deviceBytes: g.deviceBytes,
  destroy() {
    g.destroy();
    made?.device.destroy();
  },
};`,
  });
}

function writeNode(f: SourceFile): void {
  f.addImportDeclaration({ moduleSpecifier: 'node:fs/promises', namedImports: ['readFile'] });
  f.addImportDeclaration({ moduleSpecifier: './index.js', namedImports: [{ name: 'createTrainer', alias: 'createFrom' }, { name: 'createGenerator', alias: 'generatorFrom' }], isTypeOnly: false });
  f.addImportDeclaration({ moduleSpecifier: './index.js', namedImports: ['Generator', 'GeneratorOptions', 'ReadFile', 'Trainer', 'TrainerOptions'], isTypeOnly: true });
  f.addExportDeclaration({ moduleSpecifier: './index.js' });
  f.addVariableStatement({
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: ["Reads a file of the bundle from disk, relative to this module's folder."],
    declarations: [{ name: 'readBundleFile', type: 'ReadFile', initializer: "(file) => readFile(new URL(file, import.meta.url), 'utf8')" }],
  });
  f.addFunction({
    name: 'createTrainer',
    isExported: true,
    docs: ["index.js's createTrainer, reading the bundle's files from disk unless `read` is given."],
    parameters: [{ name: 'options', type: 'TrainerOptions' }],
    returnType: 'Promise<Trainer>',
    statements: 'return createFrom({ read: readBundleFile, ...options });',
  });
  f.addFunction({
    name: 'createGenerator',
    isExported: true,
    docs: ["index.js's createGenerator, reading the bundle's files from disk unless `read` is given."],
    parameters: [{ name: 'options', type: 'GeneratorOptions' }],
    returnType: 'Promise<Generator>',
    statements: 'return generatorFrom({ read: readBundleFile, ...options });',
  });
}

/** The entry's files (index.js, index.d.ts, node.js, node.d.ts, package.json, runtime.js) by name. */
export function entryFiles(m: Manifest): Record<string, string> {
  const project = new Project({
    useInMemoryFileSystem: true,
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ES2022,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      lib: ['lib.es2022.d.ts'],
      strict: true,
      declaration: true,
      types: [],
    },
  });
  project.createSourceFile('/stubs/globals.d.ts', stubs);
  project.createSourceFile('/bundle/runtime.d.ts', runtimeStub);
  const index = project.createSourceFile('/bundle/index.ts', '');
  writeIndex(index, m);
  index.insertStatements(0, `// The typed entry of the lomoc bundle of ${m.model} (preset ${m.preset}, ${m.step.optimizer}). Generated by \`lomoc compile\`: do not edit.`);
  const node = project.createSourceFile('/bundle/node.ts', '');
  writeNode(node);
  node.insertStatements(0, "// The bundle's Node entry: index.js, reading the bundle's files from disk. Generated by `lomoc compile`.");
  const problems = project.getPreEmitDiagnostics();
  if (problems.length) throw new Error(`lomoc: the generated bundle entry does not type-check (a bug):\n${project.formatDiagnosticsWithColorAndContext(problems)}`);
  const files: Record<string, string> = {};
  for (const out of project.emitToMemory().getFiles()) {
    const name = out.filePath.replace(/^\/bundle\//, '');
    if (['index.js', 'index.d.ts', 'node.js', 'node.d.ts'].includes(name)) files[name] = out.text;
  }
  const safeName = `lomoc-bundle-${m.model}-${m.preset}`.toLowerCase().replace(/[^a-z0-9._-]+/g, '-');
  files['package.json'] = JSON.stringify({
    name: safeName,
    private: true,
    type: 'module',
    types: './index.d.ts',
    exports: { '.': { types: './index.d.ts', default: './index.js' }, './node': { types: './node.d.ts', default: './node.js' } },
  }, null, 2) + '\n';
  files['runtime.js'] = runtimeBundle();
  return files;
}
