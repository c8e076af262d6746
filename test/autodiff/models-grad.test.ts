// Each model's tiny preset: autodiff's gradients match finite differences at random coordinates.
import { describe, expect, it } from 'vitest';
import { resolveConfig, traceModel, type ModelDef } from '../../compiler/dsl/model.ts';
import gpt from '../../models/gpt.ts';
import llama from '../../models/llama.ts';
import mlp from '../../models/mlp.ts';
import { checkGradients } from '../support/gradcheck.ts';
import { randomFeeds } from '../support/trace.ts';

const models: [string, ModelDef][] = [['mlp', mlp], ['gpt', gpt], ['llama', llama]];

describe('model gradients match finite differences (f64, tiny presets)', () => {
  for (const [name, def] of models) {
    it(name, () => {
      const cfg = resolveConfig(def, 'tiny');
      const { graph } = traceModel(def, cfg);
      const vocab = Number(cfg.vocab ?? cfg.classes ?? 2);
      const feeds = randomFeeds(graph, 11, {
        vocab: Object.fromEntries(graph.inputs.map((i) => [i.name, vocab])),
        range: Object.fromEntries(graph.params.map((p) => [p.name, [-0.5, 0.5] as const])),
      });
      const res = checkGradients(graph, feeds, { seed: 3, directions: 2, coords: 2, rtol: 1e-4, atol: 1e-7 });
      expect(res.worst.err, `${res.worst.what}: fd ${res.worst.fd} vs autodiff ${res.worst.ad}`).toBeLessThanOrEqual(0);
    });
  }
});
