// The matmulNorm group (passes/fuse.ts): a gradient matmul and the sumSquares of its output, as
// two dispatches.
//   1. The tiled matmul (emit-matmul.ts); its epilogue squares each finished output element into
//      the invocation's running sum (fma, in the kernel's fixed store order), stores the element
//      only where the plan gives it storage (SGD's gradient, read by its update; never LOMO's
//      norm pass), then the workgroup's lanes' sums are added in lane order by lane 0 into one
//      partial per workgroup, at its tile index, in a scratch buffer.
//   2. The partials summed in tile order into the f32 scalar (reduce-kernel.ts's partials pass),
//      plus the previous running total where the group holds the clip-norm chain's add.
// The tile is the tiled kernel's whatever the shape (never the matrix-vector kernel), from the
// node and target alone, so the scratch rule and the emitter agree, and SGD's step and LOMO's norm
// pass, which form the same group over the same shapes, sum the same partials in the same order.
// A NaN or Inf anywhere in the gradient reaches the sum (loss scaling's overflow check).
import { CompilerBug } from '../../diagnostics.ts';
import type { Graph, NodeOf } from '../../ir/types.ts';
import type { EmitContext, KernelCall } from './emitter.ts';
import { matmulKernel, tiledTile, tiledWorkgroups, type MatmulEpilogue } from './emit-matmul.ts';
import { partialsPlan, reducePass } from './reduce-kernel.ts';
import { matmulCandidates, type KernelTarget } from './target.ts';

/**
 * Scratch of the group: one f32 partial per workgroup of the matmul, for the most workgroups any
 * tile of either target (or the tuner's) launches for it, so the plan depends on neither the
 * target nor tuning (lomoc plan asks no adapter and tunes nothing). Tiny: a [512, 128] gradient
 * gets at most 64 partials.
 */
export function matmulNormScratch(mm: NodeOf<'matmul'>, g: Graph, target: KernelTarget): readonly number[] {
  const tiles = [...matmulCandidates.cpu, ...matmulCandidates.gpu, tiledTile(mm, g, target)];
  return [Math.max(...tiles.map((t) => tiledWorkgroups(mm, g, t))) * 4];
}

/** `lanes`: the tile's invocations per workgroup, whose sums lane 0 adds. */
function normEpilogue(mm: NodeOf<'matmul'>, c: EmitContext, lanes: number): MatmulEpilogue {
  const y = mm.outputs[0];
  return {
    bind: (b) => {
      const keep = c.sameStorage(y, y) ? b.value(y, true) : undefined;
      const partials = b.buffer(c.scratch(0), true);
      return {
        tag: `norm${keep ? 'y' : ''}`,
        fns: `var<workgroup> normLanes: array<f32, ${lanes}>;
var<private> ssq: f32;
fn finish(o: u32, acc: f32) {
  ${keep ? `${keep}[o] = acc;\n  ` : ''}ssq = fma(acc, acc, ssq);
}`,
        end: () => `  normLanes[lane] = ssq;
  workgroupBarrier();
  if (lane == 0u) {
    var t = 0.0;
    for (var i = 0u; i < ${lanes}u; i = i + 1u) { t = t + normLanes[i]; }
    ${partials}[tile] = t;
  }`,
      };
    },
  };
}

/**
 * The group's two dispatches: the matmul writing partials, then their sum into the sumSquares
 * output, or with the running sum's `add` in the group, their sum plus the previous total into its output.
 */
export function matmulNormGroup(mm: NodeOf<'matmul'>, ss: NodeOf<'sumSquares'>, add: NodeOf<'add'> | undefined, c: EmitContext): KernelCall[] {
  if (ss.inputs[0] !== mm.outputs[0] || (add && add.inputs[1] !== ss.outputs[0]))
    throw new CompilerBug('codegen: a matmulNorm group whose sumSquares does not read its matmul, or whose add does not read the sumSquares');
  const tile = tiledTile(mm, c.g, c.target);
  const groups = tiledWorkgroups(mm, c.g, tile);
  return [
    matmulKernel(mm, c, normEpilogue(mm, c, tile.wgX * tile.wgY), tile),
    reducePass(c, partialsPlan(1, groups, c.target), 'sum', {
      input: { ref: c.scratch(0) },
      output: { value: (add ?? ss).outputs[0] },
      ...(add ? { addend: add.inputs[0] } : {}),
    }, 1),
  ];
}
