// Names that a model, a bundle or a checkpoint may not give a tensor, and why. Tensor names index
// records on both sides (checkpoint headers, batches, init values), so a name that is already a
// key of every object, or one the checkpoint format uses itself, would alias something else.

/** The prefix of optimizer state in a checkpoint: `optimizer.<state name>` (cli/train.ts writes it). */
export const checkpointStatePrefix = 'optimizer.';

/** Keys every plain object has (`toString`, `constructor`, `__proto__`, ...). */
const prototypeKeys: ReadonlySet<string> = new Set(Object.getOwnPropertyNames(Object.prototype));

/**
 * Why `name` cannot name a tensor, or undefined when it can. Params also may not take the
 * checkpoint's optimizer-state prefix: `optimizer.m.w` as a param would overwrite the state `m.w`
 * of param `w` in a saved checkpoint.
 */
export function reservedName(name: string, kind: 'param' | 'input' | 'tensor'): string | undefined {
  if (name === '__metadata__') return "'__metadata__' is the safetensors header's metadata entry";
  if (prototypeKeys.has(name)) return `'${name}' is a property of every JavaScript object`;
  if (kind === 'param' && name.startsWith(checkpointStatePrefix))
    return `names beginning with '${checkpointStatePrefix}' are where checkpoints keep optimizer state`;
  return undefined;
}
