import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Test the TypeScript sources of the workspace packages, not their build output: vitest
  // resolves imports with the SSR conditions, so the 'source' condition is set there too.
  resolve: {
    conditions: ['source'],
  },
  ssr: {
    resolve: {
      conditions: ['source'],
      externalConditions: ['source'],
    },
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
