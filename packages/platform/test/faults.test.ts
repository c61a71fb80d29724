/**
 * Faults (issue: "A killed process loses nothing it acknowledged. Database unreachable: 503 with a
 * retry hint, no partial writes."), over real HTTP:
 *
 * - PostgreSQL unreachable: the platform reaches its database through a TCP proxy this test
 *   controls, and the proxy is cut, between requests and in the middle of a burst of top-ups.
 *   Every request answers 503 `unavailable` with Retry-After (never 500, never a 401 that would
 *   make a terminal think it was deregistered), nothing half-written is left behind, and retrying
 *   with the same idempotency keys once the database is back posts each top-up exactly once.
 * - SQLite held by another process (what an outage looks like for one file: a writer that does not
 *   let go): writes answer 503 with Retry-After after the busy timeout, reads go on, nothing is
 *   written, and the retry posts once.
 * - A killed server process: the real `duet serve` (packages/cli/dist: `npm run build` first) is
 *   SIGKILLed in the middle of a stream of acknowledged top-ups, on SQLite and on PostgreSQL, and
 *   restarted: every acknowledged top-up is there, with the result it was acknowledged with, and
 *   the balance is the sum of what was posted.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { Db } from '../src/db/db.js';
import { openSqlite } from '../src/db/sqlite.js';
import { ADMIN, errorOf, expectError, HttpPlatform, idemKey, ok, type Reply, type Session } from './http-harness.js';
import { databases, freshPostgres, freshSqlite, pgAvailable, type TestDatabase } from './pg-harness.js';
import { CLI, serve } from './serve-harness.js';
import { TcpProxy } from './tcp-proxy.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// What was written

interface Written {
  readonly operations: number;
  readonly entries: number;
  readonly postings: number;
  readonly keys: number;
}

async function written(db: Db): Promise<Written> {
  const n = async (table: string) => Number((await db.one<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`))?.n ?? -1);
  return {
    operations: await n('purse_operations'),
    entries: await n('ledger_entries'),
    postings: await n('ledger_postings'),
    keys: await n('idempotency_keys'),
  };
}

/** Nothing half-done: every claimed key has its result, every top-up its one balanced ledger entry. */
async function expectWhole(db: Db): Promise<void> {
  expect(await db.one('SELECT COUNT(*) AS n FROM idempotency_keys WHERE result IS NULL')).toEqual({ n: 0 });
  const orphans = await db.all(
    "SELECT o.id FROM purse_operations o WHERE (SELECT COUNT(*) FROM ledger_entries e WHERE e.kind = 'topup' AND e.reference = 'topup:' || o.id) <> 1",
  );
  expect(orphans).toEqual([]);
  const unbalanced = await db.all('SELECT entry_id FROM ledger_postings GROUP BY entry_id HAVING SUM(amount) <> 0');
  expect(unbalanced).toEqual([]);
}

async function operationsOf(db: Db, holderId: number): Promise<Map<string, { id: number; amount: number }>> {
  const rows = await db.all('SELECT id, idem_key, amount FROM purse_operations WHERE holder_id = ?', [holderId]);
  return new Map(rows.map((r) => [String(r.idem_key), { id: Number(r.id), amount: Number(r.amount) }]));
}

const topUpBody = (amount: number, key: string) => ({ amount, channel: 'cashier', idempotencyKey: key });

describe.skipIf(!pgAvailable)('PostgreSQL unreachable', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => {});
  });

  /** A platform whose PostgreSQL is reached through a proxy the test cuts; `direct` bypasses it. */
  async function start(): Promise<{ p: HttpPlatform; proxy: TcpProxy; direct: Db }> {
    const storage = await freshPostgres();
    const target = new URL(storage.location);
    const proxy = await TcpProxy.start(target.hostname, Number(target.port));
    cleanup.push(() => proxy.cut());
    const via = new URL(storage.location);
    via.port = String(proxy.port);
    const p = await HttpPlatform.start({ dbUrl: via.toString() });
    // Closed with the proxy restored, so the pool's goodbyes find a server.
    cleanup.push(async () => {
      await proxy.restore().catch(() => {});
      await p.close();
    });
    return { p, proxy, direct: await storage.open() };
  }

  it('answers 503 unavailable with Retry-After on every kind of route, writes nothing, and the retry posts once', async () => {
    const { p, proxy, direct } = await start();
    const admin = await p.admin();
    const a = await p.createHolder();
    const holder = await p.loginHolder(a.id, a.password);
    const terminal = await p.newTerminal();
    await p.topUp(a.id, 1_000);
    const before = await written(direct);

    await proxy.cut();
    const key = idemKey('outage');
    const refused: Array<[string, Reply]> = [
      ['top-up', await p.post(`/v1/holders/${a.id}/topups`, topUpBody(500, key), admin)],
      ['staff sign-in', await p.post('/v1/staff/login', ADMIN)],
      ['holder purses', await p.get('/v1/holder/purses', holder)],
      ['terminal lists', await p.get('/v1/terminal/lists', terminal)],
      ['trust list', await p.get('/v1/trust-list')],
      ['health', await p.get('/healthz')],
    ];
    for (const [what, r] of refused) {
      expect({ what, status: r.status, code: errorOf(r)?.code }).toEqual({ what, status: 503, code: 'unavailable' });
      expectError(r, 503, 'unavailable');
      expect(Number(r.headers.get('retry-after')), what).toBeGreaterThan(0);
    }
    expect(await written(direct)).toEqual(before);

    await proxy.restore();
    const done = ok<{ cashAfter: number; topUpId: number }>(await p.post(`/v1/holders/${a.id}/topups`, topUpBody(500, key), admin));
    expect(done.cashAfter).toBe(1_500);
    expect(ok(await p.post(`/v1/holders/${a.id}/topups`, topUpBody(500, key), admin))).toEqual(done);
    expect((await p.purses(holder)).cash).toBe(1_500);
    await expectWhole(direct);
  });

  it('loses no acknowledged top-up and half-writes none when the connection drops under load; retries post each exactly once', async () => {
    const { p, proxy, direct } = await start();
    const admin = await p.admin();
    const a = await p.createHolder();
    const holder = await p.loginHolder(a.id, a.password);
    // Eight writers top up without pause; the connection is cut while they run, after the tenth
    // acknowledgement; each writer stops at its first 503, so requests were in flight at the cut.
    const replies: Array<{ key: string; amount: number; r: Reply }> = [];
    let cutting: Promise<void> | undefined;
    const writer = async (w: number) => {
      for (let i = 0; ; i++) {
        const key = idemKey(`load${w}-${i}`);
        const amount = 100 + w * 10 + (i % 10);
        const r = await p.post(`/v1/holders/${a.id}/topups`, topUpBody(amount, key), admin);
        replies.push({ key, amount, r });
        if (r.status === 200 && replies.filter((x) => x.r.status === 200).length === 10) cutting = proxy.cut();
        if (r.status !== 200) return;
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, w) => writer(w)));
    await cutting;
    const keys = replies.map(({ key, amount }) => ({ key, amount }));
    const statuses = new Set(replies.map((x) => x.r.status));
    expect(
      [...statuses].every((s) => s === 200 || s === 503),
      `statuses ${[...statuses].join(', ')}`,
    ).toBe(true);
    expect(replies.filter((x) => x.r.status === 503).length).toBeGreaterThan(0);
    for (const x of replies.filter((y) => y.r.status === 503)) expect(Number(x.r.headers.get('retry-after'))).toBeGreaterThan(0);

    await proxy.restore();
    const held = await operationsOf(direct, a.id);
    for (const x of replies.filter((y) => y.r.status === 200)) {
      const answer = ok<{ topUpId: number }>(x.r);
      expect(held.get(x.key)).toEqual({ id: answer.topUpId, amount: x.amount });
    }
    await expectWhole(direct);
    const sumHeld = [...held.values()].reduce((s, o) => s + o.amount, 0);
    expect((await p.purses(holder)).cash).toBe(sumHeld);

    for (const x of replies) ok(await p.post(`/v1/holders/${a.id}/topups`, topUpBody(x.amount, x.key), admin));
    const after = await operationsOf(direct, a.id);
    expect(after.size).toBe(keys.length);
    expect((await p.purses(holder)).cash).toBe(keys.reduce((s, k) => s + k.amount, 0));
    await expectWhole(direct);
  });
});

describe('SQLite held by another process', () => {
  it('answers writes 503 unavailable with Retry-After, goes on reading, writes nothing, and the retry posts once', async () => {
    const storage = freshSqlite();
    const p = await HttpPlatform.start({ dbUrl: `sqlite:${storage.location}` });
    const direct = await storage.open();
    try {
      const admin = await p.admin();
      const a = await p.createHolder();
      const holder = await p.loginHolder(a.id, a.password);
      await p.topUp(a.id, 1_000);
      const before = await written(direct);

      const blocker = new Database(storage.location);
      blocker.exec('BEGIN IMMEDIATE');
      const key = idemKey('locked');
      let r: Reply;
      try {
        r = await p.post(`/v1/holders/${a.id}/topups`, topUpBody(500, key), admin);
        expect((await p.purses(holder)).cash).toBe(1_000);
      } finally {
        blocker.exec('ROLLBACK');
        blocker.close();
      }
      expectError(r, 503, 'unavailable');
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await written(direct)).toEqual(before);

      const done = ok<{ cashAfter: number }>(await p.post(`/v1/holders/${a.id}/topups`, topUpBody(500, key), admin));
      expect(done.cashAfter).toBe(1_500);
      expect(ok(await p.post(`/v1/holders/${a.id}/topups`, topUpBody(500, key), admin))).toEqual(done);
      await expectWhole(direct);
    } finally {
      await p.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A killed `duet serve`

async function call(url: string, method: string, path: string, token?: string, json?: unknown): Promise<Reply> {
  const res = await fetch(url + path, {
    method,
    headers: {
      ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
      ...(json !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

async function adminToken(url: string): Promise<Session> {
  return { kind: 'session', token: ok<{ token: string }>(await call(url, 'POST', '/v1/staff/login', undefined, ADMIN)).token };
}

function killTest(d: TestDatabase): void {
  it.skipIf(!d.available)(
    `${d.name}: a SIGKILLed duet serve loses no acknowledged top-up, and restarts with the right balance`,
    async () => {
      expect(existsSync(CLI), `${CLI} missing: run \`npm run build\` first`).toBe(true);
      let storage: string[];
      let open: () => Promise<Db>;
      if (d.name === 'sqlite') {
        const dir = mkdtempSync(join(tmpdir(), 'duet-kill-'));
        dirs.push(dir);
        storage = ['--data', dir];
        open = () => openSqlite(join(dir, 'duet.db'));
      } else {
        const s = await freshPostgres();
        storage = ['--db', s.location];
        open = () => s.open();
      }

      const first = await serve(storage);
      const attempted: Array<{ key: string; amount: number }> = [];
      const acked = new Map<string, { topUpId: number; amount: number; cashAfter: number }>();
      let holderId = 0;
      try {
        const admin = await adminToken(first.url);
        holderId = 700_001;
        ok(await call(first.url, 'POST', '/v1/holders', admin.token, { id: holderId, name: 'Kill Test', role: 'student', campus: 1 }));
        // Four writers top up until the process dies; it dies at a random moment after the first acks.
        let dead = false;
        const writer = async (w: number) => {
          for (let i = 0; !dead; i++) {
            const key = idemKey(`kill${w}-${i}`);
            const amount = 100 + ((w * 7 + i) % 50);
            attempted.push({ key, amount });
            try {
              const r = await call(first.url, 'POST', `/v1/holders/${holderId}/topups`, admin.token, topUpBody(amount, key));
              const a = ok<{ topUpId: number; amount: number; cashAfter: number }>(r);
              acked.set(key, { topUpId: a.topUpId, amount: a.amount, cashAfter: a.cashAfter });
              if (acked.size === 20) setTimeout(() => first.child.kill('SIGKILL'), 50 + Math.floor(Math.random() * 400));
            } catch {
              dead = true; // the connection was refused or cut: the process is gone
            }
          }
        };
        await Promise.all([0, 1, 2, 3].map(writer));
        expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
      } finally {
        first.child.kill('SIGKILL');
      }
      expect(acked.size).toBeGreaterThanOrEqual(20);

      // On disk, before anything restarts: every acknowledged top-up, with the id it was acknowledged with.
      const db = await open();
      try {
        const held = await operationsOf(db, holderId);
        for (const [key, a] of acked) expect(held.get(key), key).toEqual({ id: a.topUpId, amount: a.amount });
        await expectWhole(db);
      } finally {
        if (d.name === 'sqlite') await db.close();
      }

      const second = await serve(storage);
      try {
        const admin = await adminToken(second.url);
        const page = ok<{ purses: { cash: number } }>(await call(second.url, 'GET', `/v1/holders/${holderId}`, admin.token));
        const db2 = await open();
        try {
          const held = await operationsOf(db2, holderId);
          expect(page.purses.cash).toBe([...held.values()].reduce((s, o) => s + o.amount, 0));
        } finally {
          if (d.name === 'sqlite') await db2.close();
        }
        // Retrying every attempt with its key: acknowledged ones answer exactly what they answered before.
        for (const { key, amount } of attempted) {
          const r = ok<{ topUpId: number; amount: number; cashAfter: number }>(
            await call(second.url, 'POST', `/v1/holders/${holderId}/topups`, admin.token, topUpBody(amount, key)),
          );
          const before = acked.get(key);
          if (before !== undefined) expect({ topUpId: r.topUpId, amount: r.amount, cashAfter: r.cashAfter }).toEqual(before);
        }
        const final = ok<{ purses: { cash: number } }>(await call(second.url, 'GET', `/v1/holders/${holderId}`, admin.token));
        expect(final.purses.cash).toBe(attempted.reduce((s, x) => s + x.amount, 0));
      } finally {
        second.child.kill('SIGTERM');
        await second.exited;
      }
    },
  );
}

describe('a killed server process', () => {
  for (const d of databases) killTest(d);
});
