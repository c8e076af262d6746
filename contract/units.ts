// Element counts and byte sizes as people read them: one home for both, so every report, log and
// error prints a size the same way. Imports nothing (contract/ is the bottom layer).

/** Bytes of one stored element, by storage dtype (f16 and bf16 take 2, packed in u32 words or not). */
export const elementBytes = { f32: 4, f16: 2, bf16: 2, i32: 4 } as const;

/** Elements of a shape (1 for a scalar's []). */
export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** 497759232 -> "474.70 MiB"; under 1 KiB exact bytes: 12 -> "12 B". */
export function fmtBytes(n: number): string {
  let i = 0;
  while (n >= 1024 && i < units.length - 1) [n, i] = [n / 1024, i + 1];
  return i === 0 ? `${n} B` : `${n.toFixed(2)} ${units[i]}`;
}
