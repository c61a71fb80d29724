import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['duet-source'] },
  // Workspace packages are linked in node_modules, which vite externalises: resolve them from src/ too.
  ssr: { resolve: { conditions: ['duet-source'], externalConditions: ['duet-source'] } },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // One private PostgreSQL cluster for the whole run (packages/platform/test/pg-harness.ts).
    globalSetup: ['packages/platform/test/global-setup.ts'],
  },
});
