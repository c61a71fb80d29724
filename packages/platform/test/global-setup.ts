/**
 * How the test run gets a PostgreSQL server when none is given: a private, throwaway cluster
 * (src/pg-cluster.ts, fsync off).
 *
 * vitest globalSetup (root vitest.config.ts: `globalSetup: ['packages/platform/test/global-setup.ts']`)
 * starts one cluster for the whole run and hands its URL to the test files (`inject('duetPgUrl')`);
 * test/pg-harness.ts gives each test file its own database on it. Without that config line the
 * harness starts a cluster per test file with the same functions, which is slower but equivalent.
 */
import type { TestProject } from 'vitest/node';
import { type Cluster, findPgBin, PG_LIB_DIR, startCluster } from '../src/pg-cluster.js';

export { type Cluster, findPgBin, startCluster };

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin URL of the private cluster globalSetup started (absent when it did not start one). */
    duetPgUrl: string;
    /** Why there is no PostgreSQL for this run, when globalSetup looked and found none. */
    duetPgSkip: string;
  }
}

/** vitest globalSetup: one private cluster for the run, unless DUET_TEST_PG_URL names a server. */
export default async function setup(project: TestProject): Promise<() => void> {
  if ((process.env.DUET_TEST_PG_URL ?? '') !== '') return () => {};
  if (findPgBin() === undefined) {
    const reason = `no PostgreSQL server binaries under ${PG_LIB_DIR}/*/bin and DUET_TEST_PG_URL is not set`;
    if (process.env.DUET_REQUIRE_PG === '1') throw new Error(`DUET_REQUIRE_PG=1 but ${reason}`);
    project.provide('duetPgSkip', reason);
    return () => {};
  }
  let cluster: Cluster;
  try {
    cluster = await startCluster();
  } catch (e) {
    if (process.env.DUET_REQUIRE_PG === '1') throw e;
    project.provide('duetPgSkip', `could not start a private PostgreSQL cluster: ${e instanceof Error ? e.message : String(e)}`);
    return () => {};
  }
  project.provide('duetPgUrl', cluster.url);
  return () => cluster.stop();
}
