/**
 * The Node side of wallet-idb-entry.ts: a WalletStore and a KeyVault whose every call runs the
 * app's IndexedDB implementation inside a Chromium page, so the wallet core's contract tests
 * (written for Node) hold the browser implementations to the same behaviour.
 */
import { join } from 'node:path';
import type { Signer, SuiteName } from '@duet/protocol';
import { type KeyVault, WalletError, type WalletErrorCode, type WalletState, type WalletStore } from '@duet/wallet';
import { build } from 'esbuild';
import type { Page } from 'playwright-core';
import type { IdbApi } from './wallet-idb-entry.js';

/** Bundles the entry for the page (an IIFE: the page's CSP is bypassed by the test context). */
export async function idbEntryScript(): Promise<string> {
  const out = await build({
    entryPoints: [join(import.meta.dirname, 'wallet-idb-entry.ts')],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    conditions: ['duet-source'],
    logLevel: 'warning',
  });
  return out.outputFiles[0]?.text ?? '';
}

type Answer<T> = { ok: T } | { error: { name: string; code?: string; message: string } };

async function call<K extends keyof IdbApi>(
  page: Page,
  fn: K,
  ...args: Parameters<IdbApi[K]>
): Promise<Awaited<ReturnType<IdbApi[K]>> extends Answer<infer T> ? T : never> {
  const answer = (await page.evaluate(
    ([f, a]) =>
      (globalThis as unknown as { __duetIdb: Record<string, (...x: unknown[]) => unknown> }).__duetIdb[f as string]?.(...(a as unknown[])),
    [fn, args] as const,
  )) as Answer<never>;
  if ('ok' in answer) return answer.ok;
  const e = answer.error;
  if (e.name === 'WalletError' && e.code !== undefined) throw new WalletError(e.code as WalletErrorCode, `in the page: ${e.message}`);
  const err = new Error(e.message);
  err.name = e.name;
  throw err;
}

export class BridgedStore implements WalletStore {
  constructor(
    private readonly page: Page,
    readonly db: string,
  ) {}
  async load(): Promise<WalletState | undefined> {
    return (await call(this.page, 'storeLoad', this.db)) ?? undefined;
  }
  async save(state: WalletState): Promise<void> {
    await call(this.page, 'storeSave', this.db, state);
  }
  damage(value: unknown): Promise<void> {
    return call(this.page, 'storeDamage', this.db, value);
  }
}

export class BridgedVault implements KeyVault {
  constructor(
    private readonly page: Page,
    readonly db: string,
  ) {}
  private signer(d: { suite: SuiteName; publicKey: Uint8Array; exported: Uint8Array | null } | undefined): Signer | undefined {
    if (d === undefined || d === null) return undefined;
    return {
      suite: d.suite,
      publicKey: d.publicKey,
      sign: (m) => call(this.page, 'sign', this.db, m),
      exportPrivateKey: async () => d.exported ?? undefined,
    };
  }
  async load(): Promise<Signer | undefined> {
    return this.signer(await call(this.page, 'vaultLoad', this.db));
  }
  async create(suite: SuiteName): Promise<Signer> {
    const s = this.signer(await call(this.page, 'vaultCreate', this.db, suite));
    if (s === undefined) throw new Error('create answered nothing');
    return s;
  }
  async destroy(): Promise<void> {
    await call(this.page, 'vaultDestroy', this.db);
  }
}
