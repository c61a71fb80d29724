/**
 * The blocked-thread guard (src/blocked.ts): a main thread that stops for good (as in a native
 * deadlock, which no JavaScript timer on it can interrupt) gets the process killed with the run's
 * replay command on stderr; a main thread that keeps turning, or a disarmed guard, is left alone.
 * The child runs the built package (dist/), as `npm test` builds first.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const CHILD = join(import.meta.dirname, 'blocked-child.mjs');

function child(mode: 'block' | 'async') {
  const began = performance.now();
  const r = spawnSync(process.execPath, [CHILD], {
    env: { ...process.env, MODE: mode, BLOCKED_MS: '400' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { ...r, ms: performance.now() - began };
}

describe('BlockedThreadGuard', () => {
  it('kills a process whose main thread is blocked, after saying which run and how to replay it', () => {
    const r = child('block');
    expect(r.signal).toBe('SIGKILL');
    expect(r.stdout).not.toContain('woke up');
    expect(r.stderr).toMatch(/main thread has been blocked for \d+ ms/);
    expect(r.stderr).toContain('模拟主线程已阻塞');
    expect(r.stderr).toContain('replay / 重放: npx duet sim --seed 4711');
    // Killed near the limit, long before the 60 s block would have ended.
    expect(r.ms).toBeLessThan(30_000);
  });

  it('leaves alone a main thread that keeps turning past the limit, and a disarmed guard', () => {
    const r = child('async');
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('done\n');
    expect(r.stderr).toBe('');
  });
});
