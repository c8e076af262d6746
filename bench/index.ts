// `npm run bench`: every benchmark in bench/, each printing a markdown table. Timings are
// medians of repeated runs after a warm-up, on whatever machine runs this; they are not tests.
import { benchTrace, formatTraceTable } from './trace.ts';

const started = performance.now();
console.log('## trace + differentiate: models/llama.ts --preset llama-7b --set layers=N\n');
console.log(formatTraceTable(await benchTrace()));
console.log(`\n(${process.version}, ${((performance.now() - started) / 1000).toFixed(1)} s in all)`);
