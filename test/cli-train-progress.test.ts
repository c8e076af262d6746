// `lomoc train`'s progress: the plain lines off a terminal are what they always were (tests, CI
// and pipes parse them), and the terminal's live bar draws steps and prints lines above itself.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { Io } from '../cli/report.ts';
import { createProgress, type StepInfo } from '../cli/train-progress.ts';

const steps: StepInfo[] = [
  { step: 1, loss: 5.5545549, lr: 0.003, ms: 1365.73, tokensPerSecond: 749.8, deviceBytes: 46_957_060 },
  { step: 2, loss: 5.0249471, lr: 0.0029996710252122682, ms: 1697.76, tokensPerSecond: 603.1, deviceBytes: 46_957_060 },
];

/** A stream that says it is a terminal and keeps what is written to it. */
function fakeTty(): Writable & { isTTY: true; columns: number; text(): string } {
  const chunks: string[] = [];
  const w = new Writable({ write: (c, _e, done) => (chunks.push(String(c)), done()) });
  return Object.assign(w, { isTTY: true as const, columns: 120, text: () => chunks.join('') });
}

describe('lomoc train: progress', () => {
  it('off a terminal: one plain line per step, and lines as they come', () => {
    const out: string[] = [];
    const p = createProgress({ out: (t) => out.push(t), err: () => {} }, { total: 150, start: 0, json: false });
    p.step(steps[0]);
    p.line('  validation loss 3.0102 at step 1 (unigram entropy 3.0742)');
    p.step(steps[1]);
    p.stop();
    expect(out).toEqual([
      'step   1/150  loss 5.5546  lr 3.00e-3   1366 ms      750 tok/s  44.78 MiB on device',
      '  validation loss 3.0102 at step 1 (unigram entropy 3.0742)',
      'step   2/150  loss 5.0249  lr 3.00e-3   1698 ms      603 tok/s  44.78 MiB on device',
    ]);
  });

  it('--json: nothing before the final object', () => {
    const out: string[] = [];
    const tty = fakeTty();
    const p = createProgress({ out: (t) => out.push(t), err: () => {}, tty }, { total: 2, start: 0, json: true });
    p.step(steps[0]);
    p.line('x');
    p.stop();
    expect(out).toEqual([]);
    expect(tty.text()).toBe('');
  });

  it('on a terminal: a live bar with step, loss, tokens/s and memory; lines above it; the final state stays', () => {
    const out: string[] = [];
    const tty = fakeTty();
    const io: Io = { out: (t) => out.push(t), err: () => {}, tty };
    const listeners = process.listenerCount('SIGINT');
    const p = createProgress(io, { total: 2, start: 0, json: false });
    expect(process.listenerCount('SIGINT')).toBe(listeners + 1); // Ctrl-C restores the cursor first
    p.step(steps[0]);
    p.line('  validation loss 3.0102 at step 1 (unigram entropy 3.0742)');
    p.step(steps[1]);
    p.stop();
    p.stop(); // twice is harmless (an error path stops it in a finally)
    expect(process.listenerCount('SIGINT')).toBe(listeners);
    p.line('after');
    expect(out).toEqual(['after']); // after stop, lines go to plain output
    // eslint-disable-next-line no-control-regex
    const plain = tty.text().replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
    expect(plain).toContain('  validation loss 3.0102 at step 1 (unigram entropy 3.0742)\n');
    expect(plain).toMatch(/step 2\/2 \[=+\] ETA \S+ \| loss 5\.0249 \| 603 tok\/s \| 44\.78 MiB/);
    expect(plain.endsWith('\n')).toBe(true);
    expect(plain.indexOf('validation loss')).toBeLessThan(plain.lastIndexOf('step 2/2'));
    expect(tty.text()).toContain('\x1b[?25h'); // the cursor is shown again
    expect(tty.text()).not.toContain('\x1b[?7l'); // the terminal's line wrapping is left as it was
  });
});
