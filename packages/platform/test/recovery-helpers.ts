/**
 * What the recovery and statement suites share: posting entries the way clearing and online
 * authorization will (so the tests do not wait for clearing.ts), reading the deny state, and a
 * second merchant with its own staff account.
 */
import { decodeDenyList, denyEntries, fen, type TrustList, verifyDenyList } from '@duet/protocol';
import { afterAll, beforeAll, expect } from 'vitest';
import type { StaffRole } from '../src/context.js';
import { credit, debit, type EntryId, holderAccounts, merchantPayable, type Posting, post, systemAccount } from '../src/ledger.js';
import { type ArrearsChange, noteArrears, publishDenyChanges } from '../src/recovery.js';
import { prefetchKeys } from '../src/signing-keys.js';
import { HttpPlatform, ok, type Session, type TestTerminal, unb64 } from './http-harness.js';
import type { TestDatabase } from './pg-harness.js';

/** A platform per describe group on fresh storage of `d`, opened before its tests and closed after. */
export function withPlatform(d: TestDatabase): () => HttpPlatform {
  let h: HttpPlatform | undefined;
  beforeAll(async () => {
    // Clearing only when a test asks (clearer.drain()), so what it sees between steps is deterministic.
    h = await HttpPlatform.on(d, { clearing: false });
  });
  afterAll(async () => {
    await h?.close();
  });
  return () => {
    if (h === undefined) throw new Error('the platform did not start');
    return h;
  };
}

let nextSequence = 1;

/**
 * An offline payment the payer's purses could not cover, as clearing posts it: the operator's
 * advance pays the merchant and the payer owes it (debit holder_arrears, credit the payable, kind
 * offline_payment, reference record:<terminal>:<sequence>); then noteArrears and the deny-list
 * publication in the same transaction.
 */
export async function owe(
  p: HttpPlatform,
  holderId: number,
  amount: number,
  o: { readonly merchantId?: number; readonly postedAtS?: number } = {},
): Promise<ArrearsChange> {
  const keys = await prefetchKeys(p.platform.keys);
  const merchantId = o.merchantId ?? (await p.merchant());
  const t = o.postedAtS ?? p.clock.nowS();
  return p.db.tx(async (q) => {
    const accounts = await holderAccounts(q, holderId);
    const payable = await merchantPayable(q, merchantId);
    await post(q, {
      kind: 'offline_payment',
      reference: `record:9999:${nextSequence++}`,
      postedAtS: t,
      effectiveAtS: t - 3_600,
      createdBy: 'clearing',
      memo: 'offline payment, operator advance',
      postings: [debit(accounts.arrears, fen(amount)), credit(payable, fen(amount))],
    });
    const change = await noteArrears(q, [holderId], t);
    await publishDenyChanges(q, keys, t);
    return change;
  });
}

/** Posts one entry with the given legs at `postedAtS`; resolves with its id. */
export async function postEntry(
  p: HttpPlatform,
  e: {
    readonly kind: string;
    readonly reference: string;
    readonly postedAtS: number;
    readonly postings: (q: LegsContext) => Promise<Posting[]>;
  },
): Promise<EntryId> {
  return p.db.tx(async (q) => {
    const ctx: LegsContext = {
      holder: (id) => holderAccounts(q, id),
      payable: (id) => merchantPayable(q, id),
      system: (kind) => systemAccount(q, kind),
    };
    return post(q, {
      kind: e.kind,
      reference: e.reference,
      postedAtS: e.postedAtS,
      effectiveAtS: e.postedAtS - 60,
      createdBy: 'test',
      postings: await e.postings(ctx),
    });
  });
}

export interface LegsContext {
  holder(id: number): ReturnType<typeof holderAccounts>;
  payable(id: number): ReturnType<typeof merchantPayable>;
  system(kind: Parameters<typeof systemAccount>[1]): ReturnType<typeof systemAccount>;
}

export { credit, debit };

/** The reason of the holder's deny entry, or undefined when not denied. */
export async function denyReason(p: HttpPlatform, holderId: number): Promise<string | undefined> {
  const r = await p.db.one("SELECT reason FROM deny_entries WHERE type = 'holder' AND id = ?", [holderId]);
  return r === undefined ? undefined : String(r.reason);
}

interface ListsAnswer {
  readonly trustList: string;
  readonly deny: { readonly version: number; readonly kind: string; readonly lists: string[] };
}

/**
 * What a terminal learns about deny entries since version `held`: each list verified against the
 * trust list as a terminal verifies it, its entries as "add holder:7" / "remove holder:7".
 */
export async function terminalDenyView(
  p: HttpPlatform,
  t: TestTerminal,
  held: number,
): Promise<{ version: number; entries: string[]; trust: TrustList }> {
  const a = ok<ListsAnswer>(await p.get(`/v1/terminal/lists?deny=${held}`, t));
  const { list: trust } = await p.trustList();
  const entries: string[] = [];
  for (const text of a.deny.lists) {
    const list = decodeDenyList(unb64(text));
    await verifyDenyList(list, trust, p.crypto, p.clock.nowS());
    for (const e of denyEntries(list)) entries.push(`${e.op} ${e.type}:${e.id}`);
  }
  return { version: a.deny.version, entries, trust };
}

/** A new merchant and a signed-in staff account for it. */
export async function otherMerchant(p: HttpPlatform, username: string): Promise<{ id: number; session: Session }> {
  const id = ok<{ id: number }>(await p.post('/v1/merchants', { name: `Shop of ${username}`, category: 'shop' }, await p.admin())).id;
  const password = `${username}-password-1`;
  ok(await p.post('/v1/staff', { username, password, role: 'merchant', merchantId: id }, await p.admin()));
  return { id, session: await p.login(username, password) };
}

/**
 * Asks for a CSV file and returns its exact text. Not through HttpPlatform.request: fetch's text()
 * drops a leading byte-order mark, and the BOM is part of what is being tested.
 */
export async function fetchCsv(
  p: HttpPlatform,
  path: string,
  as: Session,
  o: { readonly method?: 'GET' | 'POST'; readonly json?: unknown } = {},
): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(p.url + path, {
    method: o.method ?? 'GET',
    headers: { authorization: `Bearer ${as.token}`, ...(o.json !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(o.json !== undefined ? { body: JSON.stringify(o.json) } : {}),
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, text: new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes) };
}

/** Expects a CSV file answer (status, content type, download name) and returns its text, BOM included. */
export function expectCsv(r: { status: number; headers: Headers; text: string }, filename: RegExp): string {
  expect(r.status, r.text.slice(0, 300)).toBe(200);
  expect(r.headers.get('content-type')).toBe('text/csv; charset=utf-8');
  expect(r.headers.get('content-disposition') ?? '').toMatch(filename);
  expect(r.text.startsWith('\uFEFF')).toBe(true);
  return r.text;
}

/**
 * A new staff account of this role, as a function that answers a signed-in session, signing in
 * again when the last one ended: the recovery suites move the clock by days, past the 30-minute
 * idle limit of staff sessions.
 */
export async function staffAccount(p: HttpPlatform, role: StaffRole, username: string): Promise<() => Promise<Session>> {
  let session = await p.staff(role, username);
  return async () => {
    if (!(await p.sessionValid(session))) session = await p.login(username, `${username}-password-1`);
    return session;
  };
}
