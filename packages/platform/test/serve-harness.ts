/**
 * The real `duet serve` as a child process (packages/cli/dist: `npm run build` first), for the
 * suites that SIGKILL it or run several of it on one database (faults.test.ts,
 * clearing-faults.test.ts).
 */
import { freePort } from '../src/pg-cluster.js';
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADMIN, PASSPHRASE } from './http-harness.js';

export const CLI = join(dirname(fileURLToPath(import.meta.url)), '../../cli/dist/main.js');

export interface Served {
  readonly child: ChildProcess;
  readonly url: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export { freePort };

/** Starts `duet serve --quiet` with these storage arguments (--data DIR, --db URL) and resolves when it listens. */
export async function serve(storage: readonly string[]): Promise<Served> {
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'serve', '--quiet', '--port', String(port), ...storage], {
    env: { ...process.env, DUET_KEY_PASSPHRASE: PASSPHRASE, DUET_ADMIN_PASSWORD: ADMIN.password },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`duet serve did not start in 30 s: ${err}`)), 30_000);
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk;
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`duet serve exited ${String(code ?? signal)} before listening: ${err}`));
    });
  });
  return { child, url, exited };
}
