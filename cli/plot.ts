// `lomoc plot LOG.jsonl [LOG2.jsonl ...] --out FILE.svg`: several runs' training and validation
// losses on one chart (cli/loss-svg.ts draws it), each labeled from its log's start line (the
// optimizer, data and schedule `lomoc train` recorded) with its peak device memory and its unigram
// entropy dashed. With --concat, a run that began from another run's checkpoint (`--init`) is
// placed after that run on the step axis: pretraining then fine-tuning as one timeline.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { LomocError } from '../compiler/diagnostics.ts';
import { parseCommandArgs, type CommandSpec } from './args.ts';
import { fmtBytes } from '../contract/units.ts';
import { lossChartSvg, type Point, type Run } from './loss-svg.ts';
import type { Io } from './report.ts';

export const plotSpec: CommandSpec = {
  name: 'plot',
  summary: 'Draw the loss curves of one or more lomoc train logs on one SVG.',
  positionals: [{ name: 'log.jsonl', help: 'a JSON-lines log written by lomoc train (--log, or DIR/log.jsonl with --save)', repeats: true }],
  options: {
    out: { type: 'string', value: 'FILE', help: 'the SVG to write (required)' },
    title: { type: 'string', value: 'T', help: "the chart's title (default: the models' names)" },
    concat: { type: 'boolean', help: "place a run that started from another given run's checkpoint (--init) after it on the step axis" },
  },
  examples: ['lomoc plot /tmp/moby/log.jsonl /tmp/sotu/log.jsonl --concat --out /tmp/moby-then-sotu.svg'],
};

/** The line `lomoc train` writes first in each log (again on each resume). */
interface StartEntry {
  readonly model?: string;
  readonly preset?: string;
  readonly optimizer?: string;
  readonly lr?: number;
  readonly schedule?: string;
  readonly warmup?: number;
  readonly clipNorm?: number;
  readonly clipValue?: number;
  /** 'previous': one-pass clipping (absent: exact). */
  readonly clipMode?: string;
  readonly accumulate?: number;
  readonly dtype?: string;
  /** How 16-bit params were rounded (logs before it was written: absent). */
  readonly rounding?: string;
  readonly data?: string;
  readonly tokenizer?: string;
  readonly unigramEntropy?: number;
  readonly init?: string;
}

export interface LoggedRun {
  readonly file: string;
  readonly start?: StartEntry;
  readonly train: readonly Point[];
  readonly val: readonly Point[];
  /** Checkpoints written, absolute paths, with the step of the last one written to each. */
  readonly checkpoints: ReadonlyMap<string, number>;
  /** The most device memory any line recorded (logs from before it was recorded: undefined). */
  readonly peakDeviceBytes?: number;
}

function parseJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

/** Reads one log; a resumed run appends to it, so a step logged twice keeps its last entry. */
export function readLog(file: string): LoggedRun {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LomocError(`lomoc plot: ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder, expected a log file' : (e as Error).message}`);
  }
  const train = new Map<number, number>();
  const val = new Map<number, number>();
  const checkpoints = new Map<string, number>();
  let start: StartEntry | undefined;
  let peak: number | undefined;
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const e = parseJson(line) as Record<string, unknown> | undefined;
    if (e === null || typeof e !== 'object' || Array.isArray(e)) {
      const shown = line.length > 40 ? `${line.slice(0, 40)}...` : line;
      throw new LomocError(`lomoc plot: expected one JSON object per line (a log written by lomoc train), got '${shown}'`, { file, line: i + 1, col: 1 });
    }
    const num = (k: string) => (typeof e[k] === 'number' ? (e[k] as number) : undefined);
    const step = num('step');
    if (e.event === 'start') start ??= e as StartEntry;
    else if (e.event === 'checkpoint' && typeof e.file === 'string' && step !== undefined) checkpoints.set(resolve(e.file), step);
    else if (step !== undefined && num('loss') !== undefined) train.set(step, num('loss')!);
    else if (step !== undefined && num('valLoss') !== undefined) val.set(step, num('valLoss')!);
    const bytes = num('deviceBytes');
    if (bytes !== undefined) peak = Math.max(peak ?? 0, bytes);
  });
  if (train.size === 0 && val.size === 0) throw new LomocError(`lomoc plot: ${file} holds no training steps (expected a log written by lomoc train --log)`);
  const points = (m: Map<number, number>) => [...m].sort((a, b) => a[0] - b[0]).map(([step, loss]) => ({ step, loss }));
  return { file, start, train: points(train), val: points(val), checkpoints, peakDeviceBytes: peak };
}

/** The legend's text: what the run trained, how, and its peak device memory. */
export function runLabel(r: LoggedRun): string {
  const s = r.start;
  const peak = r.peakDeviceBytes !== undefined ? `; peak ${fmtBytes(r.peakDeviceBytes)} on device` : '';
  if (!s?.optimizer) return `${r.file}${peak}`;
  const warmup = s.warmup ? `, warmup ${s.warmup}` : '';
  const clip = `${s.clipNorm ? `, clip-norm ${s.clipNorm}${s.clipMode === 'previous' ? ' (one-pass)' : ''}` : ''}${s.accumulate ? `, accumulate ${s.accumulate}` : ''}${s.clipValue ? `, clip-value ${s.clipValue}` : ''}${s.dtype && s.dtype !== 'f32' ? `, ${s.dtype}${s.rounding ? ` ${s.rounding === 'stochastic' ? 'stochastic rounding' : 'round to nearest'}` : ''}` : ''}`;
  // The checkpoint's folder and name: its whole path would not fit the legend.
  const from = s.init ? `, from ${basename(dirname(s.init))}/${basename(s.init)}` : '';
  return `${s.optimizer} on ${s.data} (${s.tokenizer}), lr ${s.lr} ${s.schedule}${warmup}${clip}${from}${peak}`;
}

/** --concat: each run's offset on the step axis, after the run whose checkpoint it began from. */
export function concatOffsets(runs: readonly LoggedRun[]): number[] {
  const offsets: (number | undefined)[] = runs.map(() => undefined);
  const place = (i: number, seen: Set<number>): number => {
    if (offsets[i] !== undefined) return offsets[i]!;
    const init = runs[i].start?.init;
    let at = 0;
    if (init !== undefined) {
      const parent = runs.findIndex((p, j) => j !== i && p.checkpoints.has(init));
      if (parent < 0 || seen.has(parent))
        throw new LomocError(`lomoc plot: --concat: ${runs[i].file} began from ${init}, which none of the other logs wrote; give the log of the run that saved it, or leave out --concat`);
      at = place(parent, new Set([...seen, i])) + runs[parent].checkpoints.get(init)!;
    }
    offsets[i] = at;
    return at;
  };
  return runs.map((_, i) => place(i, new Set([i])));
}

export async function runPlot(argv: readonly string[], io: Io): Promise<number> {
  const { positionals, values } = parseCommandArgs(plotSpec, argv);
  const out = values.out as string | undefined;
  if (out === undefined) throw new LomocError("lomoc plot: option '--out FILE' is required");
  const runs = positionals.map(readLog);
  const offsets = values.concat === true ? concatOffsets(runs) : runs.map(() => 0);
  const chart: Run[] = runs.map((r, i) => ({ label: runLabel(r), train: r.train, val: r.val, baseline: r.start?.unigramEntropy, offset: offsets[i] }));
  const models = [...new Set(runs.map((r) => (r.start?.model ? `${r.start.model} ${r.start.preset ?? ''}`.trim() : undefined)).filter((m) => m !== undefined))];
  const title = (values.title as string | undefined) ?? (models.length ? `${models.join(', ')}: loss` : 'loss');
  mkdirSync(dirname(resolve(out)), { recursive: true });
  writeFileSync(out, lossChartSvg(chart, { title }));
  io.out(`wrote ${out}: ${runs.map((r, i) => `${r.file} (${r.train.length} steps${offsets[i] ? `, from step ${offsets[i]}` : ''})`).join(', ')}`);
  return 0;
}
