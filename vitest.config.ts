// Two projects. `unit`: everything but test/gpu, in vitest's default worker pool. `gpu`: the
// WebGPU tests, one file after another in a single child process. Each Dawn instance starts its
// own threads (lavapipe renders with one per core), and CI machines here have 2 cores: two GPU
// files at once would only fight over them. GPU tests compile pipelines on the CPU, so their
// timeouts are long; none is skipped without an adapter: they fail naming scripts/setup-gpu.sh.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    setupFiles: ['test/setup.ts'],
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: ['test/gpu/**', '**/node_modules/**'] },
      },
      {
        extends: true,
        test: {
          name: 'gpu',
          include: ['test/gpu/**/*.test.ts'],
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
