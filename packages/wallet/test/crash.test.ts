/**
 * Crash safety, for real: a child process runs the BUILT wallet (`npm run build` first) on a wallet
 * folder and makes codes in a loop, printing each counter once it has the code; we SIGKILL it at
 * random points (during start-up, between codes, in the middle of a store write) at least 50 times.
 * After every kill the state file must still be readable and must reserve every counter printed;
 * over all runs no counter may ever be printed twice (they must strictly increase).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { textToCode, verifyCode } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { afterAll, describe, expect, it } from 'vitest';
import { openFileWallet, walletFiles } from '../src/node.js';
import { HOUR_S, makePlatform, T0_S, TestClock } from './fixture.js';

const crypto = nodeCrypto();
const here = import.meta.dirname;
const child = join(here, 'crash-child.mjs');
const built = [join(here, '../dist/node.js'), join(here, '../../protocol/dist/node.js')];
const RUNS = 60;

/** mulberry32: a seeded generator, so a failing run can be replayed with DUET_CRASH_SEED. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface Run {
  readonly lines: string[];
  readonly signal: NodeJS.Signals | null;
  readonly code: number | null;
  readonly stderr: string;
}

/** Starts the child and SIGKILLs it `delayMs` after it starts, or after its first code when `afterFirstCode`. */
function runAndKill(dir: string, block: number, delayMs: number, afterFirstCode: boolean): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dir, String(T0_S), String(block)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      timer ??= setTimeout(() => p.kill('SIGKILL'), delayMs);
    };
    if (!afterFirstCode) arm();
    p.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (afterFirstCode && /^\d/m.test(out)) arm();
    });
    p.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    p.on('error', reject);
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      // Only whole lines count: a line cut by the kill was never fully printed.
      const lines = out.split('\n').slice(0, -1);
      resolve({ lines, signal, code, stderr });
    });
  });
}

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('crash safety (child process, SIGKILL)', () => {
  it(`never reuses a counter over ${RUNS} kills at random points, and the store stays readable`, { timeout: 240_000 }, async () => {
    for (const f of built) expect(existsSync(f), `${f} is missing: run \`npm run build\` first`).toBe(true);
    const seed = Number(process.env.DUET_CRASH_SEED ?? Date.now() % 1_000_000);
    const rnd = random(seed);
    const dir = await mkdtemp(join(tmpdir(), 'duet-wallet-crash-'));
    dirs.push(dir);
    const platform = await makePlatform();
    const clock = new TestClock();
    const setup = await openFileWallet({ crypto, clock, dir, trust: platform.trust });
    await setup.installCredential((await platform.issue(setup, { notBefore: T0_S - HOUR_S, notAfter: T0_S + 72 * HOUR_S })).bytes);
    await setup.close();

    const printed: number[] = [];
    let kills = 0;
    let killsWhileCoding = 0;
    let verified = 0;
    for (let run = 0; run < RUNS; run++) {
      const block = [1, 1, 2, 5, 64][Math.floor(rnd() * 5)] as number;
      const afterFirstCode = run % 4 !== 0; // most kills land among codes; every fourth may land in start-up
      const delayMs = afterFirstCode ? Math.floor(rnd() * 40) : Math.floor(rnd() * 250);
      const r = await runAndKill(dir, block, delayMs, afterFirstCode);
      const context = `seed ${seed}, run ${run}, block ${block}, delay ${delayMs} ms`;
      expect(r.signal, `${context}: the child must die by SIGKILL, not by itself: ${r.stderr}`).toBe('SIGKILL');
      kills++;
      let codes = 0;
      for (const line of r.lines) {
        if (line === 'ready') continue;
        // The QR text may itself hold spaces (Base45 uses them): split at the first one only.
        const space = line.indexOf(' ');
        const counter = Number(space < 0 ? line : line.slice(0, space));
        const text = space < 0 ? undefined : line.slice(space + 1);
        expect(Number.isSafeInteger(counter), `${context}: line ${JSON.stringify(line.slice(0, 40))}`).toBe(true);
        if (text !== undefined) {
          const code = textToCode(text);
          expect(code.counter).toBe(counter);
          await verifyCode(code, { trust: platform.trust, crypto, nowS: T0_S, windowS: 60, skewS: 120 });
          verified++;
        }
        printed.push(counter);
        codes++;
      }
      if (codes > 0) killsWhileCoding++;
      // After every kill: the state reads back whole and reserves everything printed so far.
      const files = walletFiles(dir, crypto);
      const state = await files.store.load();
      expect((await files.vault.load())?.publicKey).toEqual(setup.publicKey);
      expect(state?.reservedThrough ?? 0, context).toBeGreaterThanOrEqual(printed.at(-1) ?? 0);
    }

    expect(kills).toBeGreaterThanOrEqual(50);
    expect(killsWhileCoding).toBeGreaterThanOrEqual(30);
    expect(verified).toBeGreaterThan(0);
    for (let i = 1; i < printed.length; i++) {
      if ((printed[i] as number) <= (printed[i - 1] as number)) {
        throw new Error(`seed ${seed}: counter ${printed[i]} printed after ${printed[i - 1]} (reuse or regression)`);
      }
    }
    // And the wallet carries on above everything the killed processes handed out.
    const after = await openFileWallet({ crypto, clock, dir, trust: platform.trust });
    expect((await after.nextCode()).code.counter).toBeGreaterThan(printed.at(-1) ?? 0);
    await after.close();
    console.info(
      `crash test: seed ${seed}, ${kills} kills (${killsWhileCoding} while making codes), ${printed.length} counters printed, ${verified} codes verified`,
    );
  });
});
