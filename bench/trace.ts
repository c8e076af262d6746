// How tracing and differentiation scale with depth: LLaMA-7B at 8, 16 and 32 layers. Both are
// single passes over the graph, so the time per layer should stay flat as layers grow.
import { differentiate } from '../compiler/autodiff/index.ts';
import { resolveConfig, traceModel } from '../compiler/dsl/model.ts';
import { countByPhase } from '../compiler/ir/analysis.ts';
import { loadModel } from '../compiler/load-model.ts';

export interface TraceRow {
  readonly layers: number;
  readonly forward: number;
  readonly backward: number;
  readonly traceMs: number;
  readonly differentiateMs: number;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median of `repeats` runs for each layer count (the first, unmeasured run warms up the JIT). */
export async function benchTrace(layerCounts: readonly number[] = [8, 16, 32], repeats = 5): Promise<TraceRow[]> {
  const def = await loadModel('models/llama.ts');
  const once = (layers: number) => {
    const cfg = resolveConfig(def, 'llama-7b', [`layers=${layers}`]);
    const t0 = performance.now();
    const { graph } = traceModel(def, cfg);
    const t1 = performance.now();
    const train = differentiate(graph);
    const t2 = performance.now();
    return { train, traceMs: t1 - t0, differentiateMs: t2 - t1 };
  };
  once(layerCounts[0]);
  return layerCounts.map((layers) => {
    const runs = Array.from({ length: repeats }, () => once(layers));
    const phases = countByPhase(runs[0].train);
    return {
      layers,
      forward: phases.forward ?? 0,
      backward: phases.backward ?? 0,
      traceMs: median(runs.map((r) => r.traceMs)),
      differentiateMs: median(runs.map((r) => r.differentiateMs)),
    };
  });
}

export function formatTraceTable(rows: readonly TraceRow[]): string {
  const lines = [
    '| layers | nodes fwd | nodes bwd | trace ms | differentiate ms | ms per layer |',
    '|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const perLayer = (r.traceMs + r.differentiateMs) / r.layers;
    lines.push(
      `| ${r.layers} | ${r.forward} | ${r.backward} | ${r.traceMs.toFixed(1)} | ${r.differentiateMs.toFixed(1)} | ${perLayer.toFixed(2)} |`,
    );
  }
  return lines.join('\n');
}
