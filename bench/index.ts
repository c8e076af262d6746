// `npm run bench`: every benchmark in bench/, each printing a markdown table. Timings are
// medians of repeated runs after a warm-up, on whatever machine runs this; they are not tests.
import { formatSavedTable } from './activations.ts';
import { benchGenerate, formatGenerateTable } from './generate.ts';
import { benchMatmul, formatMatmulBench } from './matmul.ts';
import { benchPlan, formatPlanBench, planArgv } from './plan.ts';
import { benchScaling, formatScalingTable } from './scaling.ts';
import { benchStep, formatStepTable } from './step.ts';
import { benchClipStep, formatClipStepTable } from './clip-step.ts';
import { benchTrace, formatTraceTable } from './trace.ts';

const started = performance.now();
console.log('## trace + differentiate: models/llama.ts --preset llama-7b --set layers=N\n');
console.log(formatTraceTable(await benchTrace()));
console.log(`\n## lomoc ${planArgv.slice(0, -1).join(' ')}, beside the paper's Table 1 (GiB)\n`);
console.log(formatPlanBench(await benchPlan()));
console.log('\n## every compiler stage against graph size: a chain of N forward nodes, lomo, --checkpoint blocks (ms; x10: growth per 10x of N, 10 is linear)\n');
console.log(formatScalingTable(benchScaling()));
console.log('\n## what LLaMA-7B saves for backward (f16, batch 8, seq 512, no checkpointing)\n');
console.log(formatSavedTable());
console.log("\n## matmul on WebGPU: lomoc's tile (matmulTile) beside TF.js's tf.matMul on the same adapter\n");
console.log(formatMatmulBench(await benchMatmul([256, 512, 1024], 5, { winnerOnly: true })));
console.log('\n## training step on WebGPU: models/gpt.ts --preset small, median of 5 steps, beside TF.js WebGPU and PyTorch CPU\n');
console.log(formatStepTable(await benchStep()));
console.log('\n## exact clipping under LOMO on WebGPU: step time vs plain SGD and peak bytes, models/gpt.ts --preset small, then tiny\n');
for (const preset of ['small', 'tiny']) console.log(`${formatClipStepTable(preset, await benchClipStep(preset, 5), 5)}\n`);
console.log('\n## generation on WebGPU: prefill and decode tokens/s, the inference plan beside the training plan\n');
console.log(formatGenerateTable(await benchGenerate()));
console.log(`\n(${process.version}, ${((performance.now() - started) / 1000).toFixed(1)} s in all)`);
