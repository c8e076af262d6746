// Tensor names that would alias something else are refused where the user wrote them. On main, a
// param named `optimizer.m.w` overwrote the state `m.w` of param `w` in a saved checkpoint (resume
// then loaded wrong state silently), `__metadata__` failed only when the checkpoint was written,
// after training, and `__proto__` crashed inside a pass.
import { describe, expect, it } from 'vitest';
import { compileGraph } from '../../cli/graph.ts';
import { LomocError } from '../../compiler/diagnostics.ts';
import { reservedName } from '../../contract/names.ts';

const fixture = 'test/hardening/fixtures/named.ts';

async function errorOf(sets: string[]): Promise<string> {
  const err = await compileGraph(fixture, 'tiny', sets).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, sets.join(' ')).toBeInstanceOf(LomocError);
  return (err as LomocError).message;
}

const paramAt = `${fixture}:11:15: error: param`;
const inputAt = `${fixture}:10:15: error: input`;

describe('reserved tensor names', () => {
  it('a param in the checkpoint namespace of optimizer state is refused at its declaration', async () => {
    expect(await errorOf(['param=optimizer.m.w'])).toBe(
      `${paramAt} 'optimizer.m.w': this name is reserved: names beginning with 'optimizer.' are where checkpoints keep optimizer state`,
    );
    expect(await errorOf(['param=optimizer.'])).toBe(
      `${paramAt} 'optimizer.': this name is reserved: names beginning with 'optimizer.' are where checkpoints keep optimizer state`,
    );
  });

  it("'__metadata__' is refused for params and inputs", async () => {
    expect(await errorOf(['param=__metadata__'])).toBe(`${paramAt} '__metadata__': this name is reserved: '__metadata__' is the safetensors header's metadata entry`);
    expect(await errorOf(['input=__metadata__'])).toBe(`${inputAt} '__metadata__': this name is reserved: '__metadata__' is the safetensors header's metadata entry`);
  });

  it('keys of every JavaScript object are refused for params and inputs', async () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
      expect(await errorOf([`param=${name}`])).toBe(`${paramAt} '${name}': this name is reserved: '${name}' is a property of every JavaScript object`);
      expect(await errorOf([`input=${name}`])).toBe(`${inputAt} '${name}': this name is reserved: '${name}' is a property of every JavaScript object`);
    }
  });

  it('an empty input name is refused', async () => {
    expect(await errorOf(['input='])).toBe(`${inputAt}: the name must be a non-empty string, got ''`);
  });

  it('names that merely contain the reserved words still compile', async () => {
    for (const name of ['optimizer', 'my.optimizer.w', 'Optimizer.w', '__metadata', 'proto', 'm.w']) {
      const r = await compileGraph(fixture, 'tiny', [`param=${name}`]);
      expect(r.graph.params.map((p) => p.name)).toEqual([name]);
    }
    expect(await compileGraph(fixture, 'tiny', ['input=optimizer.x']).then((r) => r.graph.inputs.map((i) => i.name))).toEqual(['optimizer.x']);
  });

  it('the rule table: only params are kept out of the optimizer namespace', () => {
    expect(reservedName('optimizer.x', 'input')).toBeUndefined();
    expect(reservedName('optimizer.x', 'tensor')).toBeUndefined();
    expect(reservedName('optimizer.x', 'param')).toBeDefined();
  });
});
