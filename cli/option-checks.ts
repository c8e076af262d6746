// The one rule for option values, shared by every command: integers are decimal integers within a
// stated range, numbers are finite decimals, names are one of a stated list. Each error names the
// command, the option, what it expects and what it got; a value below the range says "must be
// positive" or "must be >= N" (never "expects a value": `--steps -1` gave a value, a wrong one).
import { LomocError } from '../compiler/diagnostics.ts';
import { maxChunks, maxLevels, parseCheckpointPolicy, type CheckpointPolicy } from '../compiler/passes/checkpoint-policy.ts';

/** Steps, intervals and warmups: a billion steps is already past any run (and far below 2^53). */
export const maxSteps = 1_000_000_000;
/** Config sizes (batch, seq): kernels index with i32. */
export const maxSize = 2 ** 31 - 1;
/** Seeds are u32: 2^32 would equal 0. */
export const maxSeed = 2 ** 32 - 1;

const integerText = /^-?[0-9]+$/;
const decimalText = /^-?([0-9]+\.?[0-9]*|\.[0-9]+)(e[-+]?[0-9]+)?$/i;

export function optionChecks(command: string) {
  const error = (option: string, expected: string, got: string) =>
    new LomocError(`lomoc ${command}: option '--${option}' expects ${expected}, got '${got}'`);
  const below = (option: string, min: number, got: string) =>
    new LomocError(`lomoc ${command}: option '--${option}' must be ${min === 1 ? 'positive' : `>= ${min}`}, got '${got}'`);
  return {
    error,
    /** An integer in [min, max]; below min (a negative, or 0 when min is 1): "must be positive" / ">= min". */
    integer(text: string, option: string, min = 1, max = maxSteps): number {
      const n = Number(text);
      if (integerText.test(text) && n < min) throw below(option, min, text);
      if (!integerText.test(text) || n > max) throw error(option, `an integer from ${min} to ${max}`, text);
      return n;
    },
    /** A finite decimal number above 0, or >= 0 when `zeroOk`. */
    number(text: string, option: string, zeroOk = false): number {
      const n = Number(text);
      if (!decimalText.test(text) || !Number.isFinite(n)) throw error(option, `a finite number ${zeroOk ? '>= 0' : 'above 0'}`, text);
      if (n < 0 || (!zeroOk && n === 0)) throw below(option, zeroOk ? 0 : 1, text);
      return n;
    },
    checkpoint(text: string, option = 'checkpoint'): CheckpointPolicy {
      try {
        return parseCheckpointPolicy(text);
      } catch {
        const comma = text.indexOf(',');
        const base = comma < 0 ? undefined : text.slice(0, comma);
        if (base === 'blocks' || base === 'sqrt' || base?.startsWith('budget='))
          throw error(option, `${base}, then ${base === 'blocks' ? `runs=K or levels=L (L from 1 to ${maxLevels}), ` : ''}chunks=N or width=N, and heads=N, each at most once, with whole numbers from 1 to ${maxChunks}`, text);
        throw error(option, 'none, blocks, sqrt or budget=SIZE (SIZE like 14GiB)', text);
      }
    },
    /** A storage binding size: SIZE like 64KiB or 1MiB (or plain bytes), a multiple of 256 (minStorageBufferOffsetAlignment), below 2^53. */
    bindingSize(text: string, option: string): number {
      const m = /^([0-9]+)(B|KiB|MiB|GiB)?$/.exec(text);
      const unit: Record<string, number> = { B: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30 };
      const bytes = m ? Number(m[1]) * unit[m[2] ?? 'B'] : NaN;
      if (!m || !Number.isSafeInteger(bytes)) throw error(option, 'a size like 64KiB, 1MiB or 1048576', text);
      if (bytes < 256 || bytes % 256 !== 0) throw error(option, 'a multiple of 256 bytes, at least 256', text);
      return bytes;
    },
    oneOf<T extends string>(choices: readonly T[], text: string, option: string): T {
      if (!(choices as readonly string[]).includes(text)) throw error(option, `${choices.slice(0, -1).join(', ')} or ${choices[choices.length - 1]}`, text);
      return text as T;
    },
  };
}

export type OptionChecks = ReturnType<typeof optionChecks>;
