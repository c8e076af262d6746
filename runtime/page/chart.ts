// The live loss chart: training loss per step, validation loss at its steps, and the unigram
// entropy of the training tokens dashed, drawn with uPlot.
import uPlot from 'uplot';
import type { Point } from './session.ts';

export interface LossChart {
  update(losses: readonly Point[], val: readonly Point[], entropy: number): void;
}

export function lossChart(el: HTMLElement): LossChart {
  const width = () => Math.max(320, el.clientWidth || 600);
  const plot = new uPlot(
    {
      width: width(),
      height: 280,
      scales: { x: { time: false } },
      axes: [{ label: 'step' }, { label: 'loss (nats/token)' }],
      series: [
        {},
        { label: 'training loss', stroke: '#2f6fdb', width: 1.5 },
        { label: 'validation loss', stroke: '#d9480f', width: 0, points: { show: true, size: 8, fill: '#d9480f' } },
        { label: 'unigram entropy', stroke: '#777', dash: [6, 4], width: 1, points: { show: false } },
      ],
    },
    [[], [], [], []],
    el,
  );
  return {
    update(losses, val, entropy) {
      const at = new Map(val.map((p) => [p.step, p.loss]));
      const x = losses.map((p) => p.step);
      plot.setData([x, losses.map((p) => p.loss), x.map((s) => at.get(s) ?? null), x.map(() => entropy)]);
    },
  };
}
