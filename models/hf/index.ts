// The Hugging Face model families lomoc maps, by config.json's model_type.
import { gpt2 } from './gpt2.ts';
import type { HfFamily } from './family.ts';
import { llama } from './llama.ts';

export type HfModelType = 'gpt2' | 'llama' | 'mistral';

export const hfFamilies = {
  gpt2,
  llama,
  // Mistral's layout is LLaMA's with GQA; a sliding window is refused by the llama table.
  mistral: { ...llama, modelType: 'mistral' },
} satisfies Record<HfModelType, HfFamily>;

/** The lomoc model's name -> the model_type it exports as. */
export const hfTypeOfModel: Readonly<Record<string, HfModelType>> = { gpt: 'gpt2', llama: 'llama' };
