import { describe, expect, it } from 'vitest';
import { randomTensor } from '../../compiler/reference/random.ts';
import { dot, expectClose, ids, numericGrad, run1, runOp, t } from './helpers.ts';

const table = t([4, 2], [0, 1, 10, 11, 20, 21, 30, 31]);

describe('embedding', () => {
  it('picks rows of the table: ids [...] -> [..., D]', () => {
    const y = runOp('embedding', [table, ids([2, 2], [3, 0, 1, 3])], {})[0];
    expect(y.shape).toEqual([2, 2, 2]);
    expect(Array.from(y.data)).toEqual([30, 31, 0, 1, 10, 11, 30, 31]);
  });
  it('throws naming the id, its position and the vocab when an id is out of range', () => {
    expect(() => runOp('embedding', [table, ids([2, 2], [0, 1, 4, 2])], {})).toThrow(
      new Error('models/test.ts:3:7: error: embedding: token id 4 at [1, 0] is out of range for vocab 4'),
    );
    expect(() => runOp('embedding', [table, ids([1], [-1])], {})).toThrow(
      new Error('models/test.ts:3:7: error: embedding: token id -1 at [0] is out of range for vocab 4'),
    );
  });
  it('embeddingGrad scatter-adds rows of dy, repeated ids summing', () => {
    const dtable = runOp('embeddingGrad', [ids([3], [2, 0, 2]), t([3, 2], [1, 2, 3, 4, 5, 6])], { vocab: 4 })[0];
    expect(dtable.shape).toEqual([4, 2]);
    expect(Array.from(dtable.data)).toEqual([3, 4, 0, 0, 6, 8, 0, 0]);
  });
});

describe('crossEntropy', () => {
  it('by hand: logsumexp(logits) - logits[target], per position', () => {
    const y = runOp('crossEntropy', [t([2, 2], [0, 0, 0, Math.log(3)]), ids([2], [0, 1])], {})[0];
    expect(y.shape).toEqual([2]);
    expectClose(y.data, [Math.log(2), Math.log(4 / 3)], 1e-15);
    expectClose(run1('crossEntropy', [t([2], [1000, 1000 + Math.log(3)]), ids([], [0])], {}), [Math.log(4)], 1e-12);
  });
  it('crossEntropyGrad is (softmax - onehot) * dloss, and the derivative of crossEntropy', () => {
    expectClose(run1('crossEntropyGrad', [t([1, 2], [0, Math.log(3)]), ids([1], [1]), t([1], [2])], {}), [0.5, -0.5], 1e-15);
    const logits = randomTensor([2, 3, 5], 3, 'f64');
    const targets = ids([2, 3], [0, 4, 2, 2, 1, 3]);
    const dloss = randomTensor([2, 3], 4, 'f64');
    const fd = numericGrad((v) => dot(run1('crossEntropy', [t([2, 3, 5], v), targets], {}), dloss.data), logits.data);
    expectClose(run1('crossEntropyGrad', [logits, targets, dloss], {}), fd, 1e-8);
  });
  it('throws naming the target when it is outside the logits', () => {
    expect(() => runOp('crossEntropy', [t([2, 2], [0, 0, 0, 0]), ids([2], [1, 2])], {})).toThrow(
      new Error('models/test.ts:3:7: error: crossEntropy: target 2 at [1] is out of range for vocab 2'),
    );
    expect(() => runOp('crossEntropyGrad', [t([1, 2], [0, 0]), ids([1], [-3]), t([1], [1])], {})).toThrow(
      new Error('models/test.ts:3:7: error: crossEntropyGrad: target -3 at [0] is out of range for vocab 2'),
    );
  });
});
