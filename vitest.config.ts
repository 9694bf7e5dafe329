import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Test the TypeScript sources of the workspace packages, not their build output.
    conditions: ['source'],
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'examples/**/*.test.ts', 'kernels/**/*.test.ts'],
    // One WebGPU device per worker process; the software adapter has 2 cores to share.
    pool: 'forks',
    poolOptions: { forks: { singleFork: true } },
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
