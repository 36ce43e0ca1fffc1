import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // Child processes, real databases and media tools: forks isolate native modules best.
    pool: 'forks',
    // Two cores: more parallel files only thrash ffmpeg/sharp and make timings flaky.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: process.env.CI ? ['default'] : ['default'],
  },
});
