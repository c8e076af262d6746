// A learning-rate sweep of `lomoc train` for a machine with a real GPU (where a 500-step run of
// gpt `small` takes seconds rather than the ten minutes it takes on lavapipe): it runs the real
// train command (runTrain, the code path of `lomoc train BUNDLE_DIR`) on compiled bundles, one run
// per (bundle, lr; cosine decay after a warmup of 5% of the steps), and writes each run's validation curve to OUT/sweep.json.
// Bundled with esbuild like scripts/gpu-check.ts:
//   npx esbuild scripts/lr-sweep.ts --bundle --platform=node --format=esm --external:webgpu --outfile=.gpu-kit/sweep.mjs \
//     --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
// Usage: node sweep.mjs DATA.txt OUT_DIR STEPS BUNDLE:lr,lr,... [BUNDLE:lr,...]
// The bundles are made beforehand with `lomoc compile models/gpt.ts --preset small --optimizer X --out DIR`,
// and DATA.txt is the corpus the train command would load (scripts/gpu-check.sh writes it).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Io } from '../cli/report.ts';
import { runTrain } from '../cli/train.ts';

interface Run {
  readonly bundle: string;
  readonly lr: number;
  readonly val?: readonly { step: number; loss: number }[];
  readonly unigram?: number;
  readonly seconds: number;
  readonly error?: string;
}

async function main(): Promise<void> {
  const [data, out, stepsText, ...specs] = process.argv.slice(2);
  const steps = Number(stepsText);
  const runs: Run[] = [];
  for (const spec of specs) {
    const [bundle, lrs] = spec.split(':');
    for (const lr of lrs.split(',').map(Number)) {
      const lines: string[] = [];
      const io: Io = { out: (t) => lines.push(t), err: (t) => lines.push(t) };
      const t0 = performance.now();
      const argv = [bundle, '--data', data, '--tokenizer', 'bytes', '--steps', String(steps), '--lr', String(lr), '--lr-schedule', 'cosine', '--warmup', String(Math.round(steps / 20)), '--eval-every', String(Math.max(1, Math.floor(steps / 5))), '--json'];
      try {
        await runTrain(argv, io);
        const r = JSON.parse(lines[lines.length - 1]) as { val: { step: number; loss: number }[]; unigramEntropy: number };
        runs.push({ bundle: path.basename(bundle), lr, val: r.val, unigram: r.unigramEntropy, seconds: (performance.now() - t0) / 1000 });
      } catch (e) {
        runs.push({ bundle: path.basename(bundle), lr, seconds: (performance.now() - t0) / 1000, error: String(e).slice(0, 400) });
      }
      const r = runs[runs.length - 1];
      console.log(`${r.bundle} lr ${lr}: ${r.error ?? r.val!.map((p) => `${p.step}:${p.loss.toFixed(4)}`).join(' ')} (${r.seconds.toFixed(1)} s)`);
      writeFileSync(path.join(out, 'sweep.json'), JSON.stringify(runs, null, 1));
    }
  }
}

await main();
