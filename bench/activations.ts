// What LLaMA-7B (f16, batch 8, seq 512, no checkpointing) saves for backward, grouped by the op and
// the model line that made it, with how many buffers each layer keeps.
import { compileStep } from '../compiler/pipeline.ts';
import { savedActivations } from '../compiler/report/saved-activations.ts';
import llama from '../models/llama.ts';

export function formatSavedTable(): string {
  const { step, plan, config } = compileStep(llama, { preset: 'llama-7b', optimizer: 'lomo', dtype: 'f16', batch: 8, seq: 512 });
  const layers = config.layers as number;
  const groups = savedActivations(step, plan);
  const lines = ['| made by | shape | dtype | where | buffers | per layer | GiB |', '|---|---|---|---|---:|---:|---:|'];
  for (const g of groups) {
    const perLayer = g.buffers % layers === 0 ? String(g.buffers / layers) : '';
    lines.push(`| ${g.op} | [${g.shape.join(', ')}] | ${g.dtype} | ${g.where} | ${g.buffers} | ${perLayer} | ${(g.bytes / 2 ** 30).toFixed(3)} |`);
  }
  const total = groups.reduce((a, g) => a + g.bytes, 0);
  lines.push(`| all | | | | ${groups.reduce((a, g) => a + g.buffers, 0)} | | ${(total / 2 ** 30).toFixed(2)} |`);
  return lines.join('\n');
}
