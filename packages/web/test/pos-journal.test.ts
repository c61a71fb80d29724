/**
 * The POS journal on IndexedDB (app/pos/idb-journal.ts) held to the same JournalStore contract as
 * the SQLite and memory journals (packages/terminal/test/journal.contract.ts), inside Chromium: each
 * call is forwarded to a store the POS page exposes, bytes and errors carried across faithfully.
 */
import { ProtocolError, type ProtocolErrorCode } from '@duet/protocol';
import type { AppendEntry, JournalSnapshot, JournalStore } from '@duet/terminal';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe } from 'vitest';
import { journalContract } from '../../terminal/test/journal.contract.js';
import { HAVE_CHROMIUM, launchBrowser, startTestDemo, type TestDemo } from './browser.js';

type Wire = unknown;
/** Uint8Arrays as { __u8: number[] } so they survive page.evaluate both ways. */
function enc(v: unknown): Wire {
  if (v instanceof Uint8Array) return { __u8: Array.from(v) };
  if (Array.isArray(v)) return v.map(enc);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, enc(x)]));
  return v;
}
function dec(v: Wire): unknown {
  if (Array.isArray(v)) return v.map(dec);
  if (v !== null && typeof v === 'object') {
    if ('__u8' in v) return Uint8Array.from((v as { __u8: number[] }).__u8);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, dec(x)]));
  }
  return v;
}

let page: Page | undefined;
let ids = 0;

/** A JournalStore in Node whose every call runs on an IdbJournal in the page. */
class PageJournal implements JournalStore {
  private readonly id = ++ids;
  constructor(readonly name: string) {}

  private async call(method: string, ...args: unknown[]): Promise<unknown> {
    if (page === undefined) throw new Error('no page');
    const r = (await page.evaluate(
      async ({ id, name, method, args }) => {
        const enc = (v: unknown): unknown =>
          v instanceof Uint8Array
            ? { __u8: Array.from(v) }
            : Array.isArray(v)
              ? v.map(enc)
              : v !== null && typeof v === 'object'
                ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, enc(x)]))
                : v;
        const dec = (v: unknown): unknown =>
          Array.isArray(v)
            ? v.map(dec)
            : v !== null && typeof v === 'object'
              ? '__u8' in v
                ? Uint8Array.from((v as { __u8: number[] }).__u8)
                : Object.fromEntries(Object.entries(v).map(([k, x]) => [k, dec(x)]))
              : v;
        const w = window as unknown as {
          __stores?: Map<number, Record<string, (...a: unknown[]) => Promise<unknown>>>;
          __duetIdbJournal(n: string): unknown;
        };
        w.__stores ??= new Map();
        let s = w.__stores.get(id);
        if (s === undefined) {
          s = w.__duetIdbJournal(name) as Record<string, (...a: unknown[]) => Promise<unknown>>;
          w.__stores.set(id, s);
        }
        try {
          const out = await (s[method] as (...a: unknown[]) => Promise<unknown>).apply(s, args.map(dec));
          return { ok: true, value: enc(out) };
        } catch (e) {
          const x = e as { code?: unknown; message?: unknown };
          return { ok: false, code: typeof x.code === 'string' ? x.code : undefined, message: String(x.message ?? e) };
        }
      },
      { id: this.id, name: this.name, method, args: args.map(enc) as unknown[] },
    )) as { ok: true; value: Wire } | { ok: false; code?: string; message: string };
    if (!r.ok) {
      if (r.code !== undefined) throw new ProtocolError(r.code as ProtocolErrorCode, r.message);
      throw new Error(r.message);
    }
    return dec(r.value);
  }

  open(): Promise<JournalSnapshot> {
    return this.call('open') as Promise<JournalSnapshot>;
  }
  async append(e: AppendEntry): Promise<void> {
    await this.call('append', e);
  }
  pending(afterSequence: number, max: number): Promise<Uint8Array[]> {
    return this.call('pending', afterSequence, max) as Promise<Uint8Array[]>;
  }
  async acknowledge(throughSequence: number, pruneBeforeS: number): Promise<void> {
    await this.call('acknowledge', throughSequence, pruneBeforeS);
  }
  getMeta(key: string): Promise<Uint8Array | undefined> {
    return this.call('getMeta', key) as Promise<Uint8Array | undefined>;
  }
  async setMeta(key: string, value: Uint8Array): Promise<void> {
    await this.call('setMeta', key, value);
  }
  async setMetaMany(entries: ReadonlyArray<readonly [string, Uint8Array]>): Promise<void> {
    await this.call('setMetaMany', entries);
  }
  async close(): Promise<void> {
    await this.call('close');
  }
}

describe.skipIf(!HAVE_CHROMIUM)('the POS journal on IndexedDB, in Chromium', () => {
  let t: TestDemo;
  let browser: Browser;
  beforeAll(async () => {
    t = await startTestDemo({ holders: 2 });
    browser = await launchBrowser();
    page = await browser.newPage();
    await page.goto(`${t.demo.url}/pos/`);
    await page.waitForFunction(() => typeof (window as unknown as { __duetIdbJournal?: unknown }).__duetIdbJournal === 'function');
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  let n = 0;
  journalContract('IdbJournal (Chromium IndexedDB)', () => ({
    create: async () => new PageJournal(`contract-${Date.now()}-${++n}`),
    reopen: async (j) => {
      await j.close();
      if (!(j instanceof PageJournal)) throw new TypeError('expected a PageJournal');
      return new PageJournal(j.name);
    },
  }));
});
