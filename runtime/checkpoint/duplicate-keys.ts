// JSON.parse keeps the last of two equal keys and says nothing, so a safetensors header naming a
// tensor twice would silently lose one. This scans JSON text that JSON.parse has already accepted
// (so it is well formed) for the first object holding a key twice. Linear in the text's length.

/** The first repeated key, with the keys of the objects enclosing it, or undefined. */
export function firstDuplicateKey(json: string): { readonly path: readonly string[]; readonly key: string } | undefined {
  // One frame per open object or array: an object's keys seen so far, and the key it sits under.
  const stack: { keys: Set<string> | undefined; under: string | undefined }[] = [];
  let pendingKey: string | undefined; // the last key read, until its value opens or ends
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      let j = i + 1;
      while (json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      const text = json.slice(i, j + 1);
      i = j;
      let k = j + 1;
      while (k < json.length && ' \t\n\r'.includes(json[k])) k++;
      const frame = stack.at(-1);
      if (json[k] === ':' && frame?.keys) {
        const key = JSON.parse(text) as string;
        if (frame.keys.has(key)) return { path: stack.slice(1).map((f) => f.under ?? ''), key };
        frame.keys.add(key);
        pendingKey = key;
      }
    } else if (c === '{' || c === '[') {
      stack.push({ keys: c === '{' ? new Set() : undefined, under: pendingKey });
      pendingKey = undefined;
    } else if (c === '}' || c === ']') {
      stack.pop();
      pendingKey = undefined;
    }
  }
  return undefined;
}
