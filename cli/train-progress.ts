// How `lomoc train` shows its progress. On a terminal: one live bar (cli-progress) with the step,
// loss, tokens/s, device memory and ETA, and the validation and checkpoint lines printed above it.
// Anywhere else (CI, pipes, tests): the same plain line per step as always, so output stays
// deterministic and parsable; with --json, nothing until the final object.
import { MultiBar, type SingleBar } from 'cli-progress';
import { fmtBytes } from '../contract/units.ts';
import type { Io } from './report.ts';

export interface StepInfo {
  readonly step: number;
  readonly loss: number;
  readonly lr: number;
  readonly ms: number;
  readonly tokensPerSecond: number;
  readonly deviceBytes: number;
}

export interface Progress {
  /** A line of text, printed above the bar when there is one. */
  line(text: string): void;
  step(info: StepInfo): void;
  /** Leaves the bar's last state on screen and the cursor below it; safe to call twice. */
  stop(): void;
}

export interface ProgressOptions {
  /** The last step of the schedule (the bar's total). */
  readonly total: number;
  /** The step the run starts after (a resumed run's checkpoint step). */
  readonly start: number;
  readonly json: boolean;
}

/** The plain line of one step, as printed when the output is not a terminal. */
export function stepLine(s: StepInfo, total: number): string {
  return `step ${String(s.step).padStart(String(total).length)}/${total}  loss ${s.loss.toFixed(4)}  lr ${s.lr.toExponential(2)}  ${s.ms.toFixed(0).padStart(5)} ms  ${Math.round(s.tokensPerSecond).toLocaleString('en-US').padStart(7)} tok/s  ${fmtBytes(s.deviceBytes)} on device`;
}

export function createProgress(io: Io, o: ProgressOptions): Progress {
  if (o.json) return { line: () => {}, step: () => {}, stop: () => {} };
  if (!io.tty) return { line: (t) => io.out(t), step: (s) => io.out(stepLine(s, o.total)), stop: () => {} };
  const bars = new MultiBar({
    stream: io.tty,
    // ETA before the numbers, and a short bar: the line is cut at the terminal's width (80 columns
    // cut a 24-column bar's line before its ETA).
    format: 'step {value}/{total} [{bar}] ETA {eta_formatted} | loss {loss} | {tps} tok/s | {memory}',
    barsize: 16,
    hideCursor: true,
    // The bar is cut to the terminal's width, so the terminal's own wrapping is left alone.
    linewrap: true,
    etaBuffer: 20,
  });
  const payload = (s?: StepInfo) => ({
    loss: s ? s.loss.toFixed(4) : '-',
    tps: s ? Math.round(s.tokensPerSecond).toLocaleString('en-US') : '-',
    memory: s ? fmtBytes(s.deviceBytes) : '-',
  });
  const bar: SingleBar = bars.create(o.total, o.start, payload());
  let stopped = false;
  // Ctrl-C: show the cursor again, then die of the signal as if nothing had caught it
  // (cli-progress's gracefulExit catches it and training would go on).
  const onSignal = (signal: NodeJS.Signals) => {
    stop();
    process.kill(process.pid, signal);
  };
  const stop = () => {
    if (stopped) return;
    stopped = true;
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    bars.update();
    bars.stop();
  };
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  return {
    line: (t) => {
      if (stopped) return io.out(t);
      bars.log(t + '\n');
      bars.update(); // print it now: the bar only redraws on a timer otherwise
    },
    step: (s) => bar.update(s.step, payload(s)),
    stop,
  };
}
