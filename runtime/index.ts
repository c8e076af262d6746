// The runtime's browser-safe entry: everything needed to run a compiled StepProgram on a
// GPUDevice, with no Node APIs and nothing from compiler/. In Node, acquire the device through
// runtime/webgpu/node.ts (Dawn); in a page, through acquireBrowserDevice (navigator.gpu).
export type { BufferRef, Dispatch, ParamInit, StepProgram, StorageDType, TensorSlot } from '../contract/program.ts';
export { acquireBrowserDevice, acquireFrom, browserSources, describeAdapter, neededLimits, NoAdapterError } from './webgpu/device.ts';
export type { Acquired, AdapterSource, ProgramNeeds } from './webgpu/device.ts';
export { DeviceLostError, GpuError, watchDevice, type DeviceWatch } from './webgpu/guard.ts';
export { createExecutor, type Executor } from './webgpu/executor.ts';
export { createTrainer, dataInputs, hyperInputs, isHyperInput, type Hyper, type Trainer, type TrainerOptions } from './webgpu/trainer.ts';
export { initialParams, randomBatch } from './webgpu/init.ts';
export { byShader, profileStep, type DispatchTime, type Profile } from './webgpu/timing.ts';
export { ProgramError, validateProgram } from './webgpu/validate.ts';
export { BundleError, loadBundle, noInferenceMessage, type LoadedBundle, type LoadedInference } from './bundle/load-bundle.ts';
export { bothNeeds, createGpuDecoder, type GpuDecoder } from './webgpu/generator.ts';
export { createGenerator, generateDefaults, type Generator, type GeneratorOptions } from './generate/bundle-generator.ts';
export { checkPrompt, generate, type GenerateOptions, type GenerateTiming } from './generate/generate.ts';
export { manifestSchema, type Manifest } from '../contract/manifest.ts';
export { lossScaleStateOf, type LossScaleSpec, type LossScaleState } from '../contract/loss-scale.ts';
