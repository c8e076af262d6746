// Every model in models/ traces, verifies and differentiates; the real-size presets have exactly
// the parameter counts of the published models. (Gradient checks against finite differences
// live with the autodiff tests.)
import { describe, expect, it } from 'vitest';
import { differentiate } from '../compiler/autodiff/index.ts';
import { resolveConfig, traceModel, type ModelDef } from '../compiler/dsl/model.ts';
import { countByPhase } from '../compiler/ir/analysis.ts';
import { numel } from '../compiler/ir/shape.ts';
import type { Graph } from '../compiler/ir/types.ts';
import { verify } from '../compiler/ir/verify.ts';
import { loadModel } from '../compiler/load-model.ts';

const paramCount = (g: Graph): number => g.params.reduce((acc, p) => acc + numel(g.values[p.value].shape), 0);

async function trace(file: string, preset: string, sets: string[] = []): Promise<Graph> {
  const def: ModelDef = await loadModel(file);
  const { graph, warnings } = traceModel(def, resolveConfig(def, preset, sets));
  expect(warnings).toEqual([]);
  return verify(graph, 'trace');
}

const cases: [string, string][] = [
  ['models/mlp.ts', 'tiny'],
  ['models/mlp.ts', 'small'],
  ['models/gpt.ts', 'tiny'],
  ['models/gpt.ts', 'small'],
  ['models/llama.ts', 'tiny'],
];

describe('models', () => {
  it.each(cases)('%s (%s) traces, verifies and differentiates: every param gets a gradient', async (file, preset) => {
    const g = verify(differentiate(await trace(file, preset)), 'differentiate');
    expect(Object.keys(g.grads ?? {}).sort()).toEqual(g.params.map((p) => p.name).sort());
    const phases = countByPhase(g);
    expect(phases.forward).toBeGreaterThan(0);
    expect(phases.backward).toBeGreaterThan(0);
    expect(g.values[g.loss].shape).toEqual([]);
  });

  it('gpt: the LM head is tied to the token embedding (wte is read twice)', async () => {
    const g = await trace('models/gpt.ts', 'tiny');
    const wte = g.params.find((p) => p.name === 'wte')!.value;
    expect(g.nodes.filter((n) => n.inputs.includes(wte)).map((n) => n.op)).toEqual(['embedding', 'matmul']);
  });

  it('gpt: preset gpt2 has exactly GPT-2 124M\'s parameter count', async () => {
    expect(paramCount(await trace('models/gpt.ts', 'gpt2'))).toBe(124_439_808);
  });

  it('llama: preset llama-7b has exactly LLaMA-7B\'s parameter count', async () => {
    expect(paramCount(await trace('models/llama.ts', 'llama-7b'))).toBe(6_738_415_616);
  });

  it('llama-7b: traces and differentiates at the real size (32 layers)', async () => {
    // Not a timing assertion (bench/trace.ts measures it); vitest's own test timeout catches a
    // graph that stops being practical to build.
    const g = verify(differentiate(await trace('models/llama.ts', 'llama-7b')), 'differentiate');
    expect(Object.keys(g.grads ?? {})).toHaveLength(g.params.length);
  });

  it('param names are dotted paths, one block per layer', async () => {
    const g = await trace('models/llama.ts', 'tiny');
    expect(g.params.map((p) => p.name).filter((n) => n.startsWith('h.0.'))).toEqual([
      'h.0.attn_norm', 'h.0.attn.wq', 'h.0.attn.wk', 'h.0.attn.wv', 'h.0.attn.wo',
      'h.0.mlp_norm', 'h.0.mlp.w1', 'h.0.mlp.w3', 'h.0.mlp.w2',
    ]);
  });

  it('the layer count is a config key: --set layers=N scales the graph linearly', async () => {
    const nodes = async (layers: number) => (await trace('models/llama.ts', 'tiny', [`layers=${layers}`])).nodes.length;
    const [one, two, four] = [await nodes(1), await nodes(2), await nodes(4)];
    expect(four - two).toBe(2 * (two - one));
  });
});
