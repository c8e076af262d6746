// A readable text form of a graph, one node per line, in the manner of a jaxpr:
//   %12:f32[4, 8] = matmul(%3, %7) {transA: false, transB: true}    # models/mlp.ts:14:13
import { fmtLoc } from '../diagnostics.ts';
import type { Graph, Value } from './types.ts';

const fmtValue = (v: Value): string => `%${v.id}:${v.dtype}[${v.shape.join(', ')}]`;

function fmtAttrs(attrs: object): string {
  const entries = Object.entries(attrs);
  if (entries.length === 0) return '';
  return ` {${entries.map(([k, v]) => `${k}: ${Array.isArray(v) ? `[${v.join(', ')}]` : String(v)}`).join(', ')}}`;
}

export function printGraph(g: Graph): string {
  const lines: string[] = [`graph ${g.name} {`];
  for (const i of g.inputs) lines.push(`  input  ${fmtValue(g.values[i.value])} '${i.name}'`);
  for (const p of g.params) lines.push(`  param  ${fmtValue(g.values[p.value])} '${p.name}' init=${JSON.stringify(p.init)}`);
  for (const s of g.state ?? []) lines.push(`  state  ${fmtValue(g.values[s.value])} '${s.name}'`);
  let phase = '';
  for (const n of g.nodes) {
    if (n.phase !== phase) {
      phase = n.phase;
      lines.push(`  # ${phase}`);
    }
    const outs = n.outputs.map((o) => fmtValue(g.values[o])).join(', ');
    const call = `${n.op}(${n.inputs.map((x) => `%${x}`).join(', ')})${fmtAttrs(n.attrs)}`;
    lines.push(`  ${`${outs} = ${call}`.padEnd(72)}  # ${fmtLoc(n.loc)}`);
  }
  lines.push(`  loss %${g.loss}`);
  for (const [name, v] of Object.entries(g.grads ?? {})) lines.push(`  grad '${name}' = %${v}`);
  for (const [name, v] of Object.entries(g.updates ?? {})) lines.push(`  update '${name}' = %${v}`);
  lines.push('}');
  return lines.join('\n');
}
