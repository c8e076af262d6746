// The numbers lomoc measures itself against: Table 1 of Lv et al. 2023 ("Full Parameter
// Fine-tuning for Large Language Models with Limited Resources", arXiv 2306.09782), LLaMA-7B,
// sequence 512, batch 8, fp16, in GiB (12.55 = 6.74e9 params x 2 bytes / 2^30).

export interface PaperRow {
  readonly params: number;
  readonly grads: number;
  readonly optimizerState: number;
  /** Without and with activation checkpointing (AC). */
  readonly activations: { readonly none: number; readonly checkpointed: number };
  /** The total the paper prints with AC (it adds up). */
  readonly totalCheckpointed: number;
}

export const paperTable1 = {
  source: 'Lv et al. 2023, Table 1 (LLaMA-7B, seq 512, batch 8)',
  /** The setting the table was measured in: our llama-7b preset at batch 8, seq 512, f16. */
  setting: {
    model: 'llama',
    dtype: 'f16',
    config: { batch: 8, seq: 512, vocab: 32000, width: 4096, layers: 32, heads: 32, ffn: 11008 },
  },
  // The paper's three rows. Indexed by any optimizer's name; one the paper lacks (AdaLomo) has no row.
  rows: {
    adamw: { params: 12.55, grads: 12.55, optimizerState: 75.31, activations: { none: 45.61, checkpointed: 1.79 }, totalCheckpointed: 102.2 },
    sgd: { params: 12.55, grads: 12.55, optimizerState: 25.1, activations: { none: 45.61, checkpointed: 1.79 }, totalCheckpointed: 51.99 },
    lomo: { params: 12.55, grads: 0.24, optimizerState: 0, activations: { none: 45.61, checkpointed: 1.79 }, totalCheckpointed: 14.58 },
  } satisfies Record<'adamw' | 'sgd' | 'lomo', PaperRow> as Readonly<Record<string, PaperRow>>,
} as const;

/**
 * The paper's total in GiB. With AC it is the printed one; without AC the sum of the columns,
 * because the paper's printed no-AC totals are each 1.00 higher than their own columns add up to.
 */
export function paperTotal(row: PaperRow, checkpointed: boolean): number {
  if (checkpointed) return row.totalCheckpointed;
  return Math.round((row.params + row.grads + row.optimizerState + row.activations.none) * 100) / 100;
}

/** Whether a compiled step is the one Table 1 measured (same model, dimensions and dtype). */
export function isPaperSetting(model: string, config: Readonly<Record<string, unknown>>, dtype: string): boolean {
  const s = paperTable1.setting;
  return model === s.model && dtype === s.dtype && Object.entries(s.config).every(([k, v]) => config[k] === v);
}

/** "+1.7%": how far ours (bytes) is from the paper's GiB; "" where the paper has nothing to divide by. */
export function percentDiff(oursBytes: number, paperGiB: number): string {
  const ours = oursBytes / 2 ** 30;
  if (paperGiB === 0) return ours < 0.005 ? '0.0%' : '';
  const d = Math.round(((ours - paperGiB) / paperGiB) * 1000) / 10;
  return d === 0 ? '0.0%' : `${d > 0 ? '+' : '-'}${Math.abs(d).toFixed(1)}%`;
}
