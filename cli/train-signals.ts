// SIGINT (Ctrl-C) and SIGTERM during `lomoc train`: the step running finishes, then the run ends as
// if it had reached its last step (a checkpoint with --save, the log's end line, the plot) and the
// command exits 130 or 143, as a shell reports a process stopped by the signal. A second signal
// does not wait: it exits at once (a save in progress is atomic, so the previous checkpoint stays
// whole).

export interface Stopper {
  /** The first signal received, once one has been. */
  readonly signal: NodeJS.Signals | undefined;
  /** Removes the handlers. */
  dispose(): void;
}

/** The exit code of a process stopped by `signal`: 128 + its number. */
export const signalExitCode = (signal: NodeJS.Signals): number => (signal === 'SIGINT' ? 130 : 143);

export function signalStopper(onFirst: (signal: NodeJS.Signals) => void): Stopper {
  let got: NodeJS.Signals | undefined;
  const handler = (signal: NodeJS.Signals) => {
    if (got !== undefined) process.exit(signalExitCode(signal));
    got = signal;
    onFirst(signal);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    get signal() {
      return got;
    },
    dispose() {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
