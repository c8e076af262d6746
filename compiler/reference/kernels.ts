// The reference kernel of every op, in one table: an op without an entry is a compile error.
import type { Op } from '../ir/ops.ts';
import type { Kernel } from './kernel.ts';
import { attentionKernels } from './kernels-attention.ts';
import { elementwiseKernels } from './kernels-elementwise.ts';
import { inferenceKernels } from './kernels-inference.ts';
import { layoutKernels } from './kernels-layout.ts';
import { linearCrossEntropyKernels } from './kernels-linear-ce.ts';
import { matmul } from './kernels-matmul.ts';
import { normKernels } from './kernels-norm.ts';
import { optimizerKernels } from './kernels-optimizer.ts';
import { reduceKernels } from './kernels-reduce.ts';
import { softmaxKernels } from './kernels-softmax.ts';
import { tokenKernels } from './kernels-tokens.ts';

export type { Kernel } from './kernel.ts';

const table = {
  matmul,
  ...elementwiseKernels,
  ...reduceKernels,
  ...layoutKernels,
  ...softmaxKernels,
  ...normKernels,
  ...attentionKernels,
  ...tokenKernels,
  ...optimizerKernels,
  ...inferenceKernels,
  ...linearCrossEntropyKernels,
} satisfies { readonly [O in Op]: Kernel<O> };

export const kernels: { readonly [O in Op]: Kernel<O> } = table;
