// A multi-layer perceptron classifier: float features in, i32 class labels, cross-entropy loss.
// The smallest model that exercises matmul, broadcasting bias adds and the loss.
import { add, block, crossEntropy, fanIn, input, matmul, mean, model, param, relu, zeros, type Tensor } from '../compiler/dsl/index.ts';

type MlpConfig = {
  readonly batch: number;
  readonly features: number;
  readonly hidden: number;
  readonly layers: number;
  readonly classes: number;
};

function dense(name: string, x: Tensor, from: number, to: number): Tensor {
  const w = param(`${name}.w`, [from, to], fanIn());
  const b = param(`${name}.b`, [to], zeros());
  return add(matmul(x, w), b);
}

export default model(
  'mlp',
  (cfg: MlpConfig) => {
    const x = input('x', [cfg.batch, cfg.features], 'f32');
    const labels = input('labels', [cfg.batch], 'i32');
    let h = x;
    let width = cfg.features;
    for (let i = 0; i < cfg.layers; i++) {
      const [input, from] = [h, width];
      h = block(`layers.${i}`, () => relu(dense(`layers.${i}`, input, from, cfg.hidden)));
      width = cfg.hidden;
    }
    const logits = dense('head', h, width, cfg.classes);
    return mean(crossEntropy(logits, labels));
  },
  {
    presets: {
      tiny: { batch: 4, features: 8, hidden: 16, layers: 2, classes: 4 },
      small: { batch: 64, features: 784, hidden: 256, layers: 2, classes: 10 },
    },
  },
);
