/**
 * Store-and-forward upload (DESIGN §7). The platform side is a real intake, not a mock. It decodes
 * each batch, verifies every record's signature and the chain's continuity, and stores records
 * idempotently on (terminal, sequence). It answers with the highest contiguous sequence it holds.
 * Faults are injected at the transport, between the two sides. Time runs on a virtual scheduler,
 * so backoffs of minutes take no wall time.
 */
import {
  type CryptoProvider,
  decodeRecord,
  decodeUploadBatch,
  encodeUploadBatch,
  equalBytes,
  GENESIS_HASH,
  recordHash,
  signRecord,
  type TerminalRecord,
  verifyChain,
  verifyRecordSignature,
} from '@duet/protocol';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type Clock,
  type JournalStore,
  MemoryJournal,
  type Terminal,
  UPLOAD_BACKOFF_BASE_MS,
  UPLOAD_BACKOFF_MAX_MS,
  UPLOAD_BATCH_RECORDS,
  type UploadTransport,
} from '../src/index.js';
import { backoffCeilingMs, type Scheduler, UploadError, Uploader, type UploaderOptions } from '../src/index.js';
import { makeWorld, type Payer, payer, readyTerminal, T0_S, TestClock, type World } from './fixture.js';

// ---------------------------------------------------------------------------------------------
// The platform's intake: real checks, idempotent storage, alarms instead of silent overwrites.

interface Alarm {
  readonly terminalId: number;
  readonly sequence: number;
  readonly kind: 'tampered' | 'fork';
}

interface Chain {
  readonly publicKey: Uint8Array;
  readonly records: Map<number, Uint8Array>;
  high: number;
  highHash: Uint8Array;
}

class Intake {
  private readonly chains = new Map<number, Chain>();
  readonly alarms: Alarm[] = [];
  /** Records stored for the first time, and records received again with the same bytes. */
  inserts = 0;
  duplicates = 0;
  deliveries = 0;

  /** `maxNewPerDelivery` models a platform that commits only part of a batch (overload, a transaction cap). */
  constructor(
    private readonly crypto: CryptoProvider,
    private readonly maxNewPerDelivery = Number.POSITIVE_INFINITY,
  ) {}

  enrol(terminalId: number, publicKey: Uint8Array): void {
    this.chains.set(terminalId, { publicKey, records: new Map(), high: 0, highHash: GENESIS_HASH });
  }

  held(terminalId: number): Map<number, Uint8Array> {
    return this.chains.get(terminalId)?.records ?? new Map();
  }

  async receive(bytes: Uint8Array): Promise<{ ackedThrough: number }> {
    this.deliveries++;
    const batch = decodeUploadBatch(bytes);
    const chain = this.chains.get(batch.terminalId);
    if (chain === undefined) throw new Error(`403 terminal ${batch.terminalId} is not enrolled`);
    for (const rec of batch.records) await verifyRecordSignature(rec, chain.publicKey, this.crypto);
    // From here to the answer there is no await, so concurrent deliveries cannot interleave.
    const fresh: TerminalRecord[] = [];
    for (const rec of batch.records) {
      const held = chain.records.get(rec.sequence);
      if (held === undefined) fresh.push(rec);
      else if (equalBytes(held, rec.bytes)) this.duplicates++;
      else this.alarms.push({ terminalId: batch.terminalId, sequence: rec.sequence, kind: 'tampered' });
    }
    const take = fresh.slice(0, this.maxNewPerDelivery);
    // A batch that does not start right after what is held cannot be chained: keep nothing, say what is held.
    if (take[0] !== undefined && take[0].sequence === chain.high + 1) this.store(chain, batch.terminalId, take);
    return { ackedThrough: chain.high };
  }

  private store(chain: Chain, terminalId: number, records: readonly TerminalRecord[]): void {
    let hash: Uint8Array;
    try {
      hash = verifyChain(records, chain.high, chain.highHash, this.crypto);
    } catch (e) {
      this.alarms.push({ terminalId, sequence: chain.high + 1, kind: 'fork' });
      throw new Error('409 chain does not continue what is held', { cause: e });
    }
    for (const rec of records) {
      chain.records.set(rec.sequence, rec.bytes.slice());
      this.inserts++;
    }
    chain.high += records.length;
    chain.highHash = hash;
  }
}

// ---------------------------------------------------------------------------------------------
// Between the two: a transport that can lose, delay, duplicate and refuse.

const FAULTS = ['ok', 'drop_request', 'drop_response', 'delay', 'duplicate', 'overload'] as const;
type Fault = (typeof FAULTS)[number];

interface Sent {
  readonly from: number;
  readonly through: number;
  readonly count: number;
  readonly size: number;
  readonly bytes: Uint8Array;
  /** What the terminal had acknowledged when it sent this. */
  readonly ackedAtSend: number;
}

class FaultyTransport implements UploadTransport {
  readonly sent: Sent[] = [];
  readonly signals: AbortSignal[] = [];
  /** Deliveries that arrive after the terminal gave up on them. Awaited before the final checks. */
  readonly late: Promise<unknown>[] = [];
  hanging = 0;
  /** Answers every request with this instead of the platform's own, when set. */
  answer: ((platform: { ackedThrough: number }) => unknown) | undefined;

  constructor(
    private readonly intake: Intake,
    private readonly source: { readonly ackedSequence: number },
    public faults: Fault[] = [],
  ) {}

  async upload(bytes: Uint8Array, signal: AbortSignal): Promise<{ readonly ackedThrough: number }> {
    const batch = decodeUploadBatch(bytes);
    const from = batch.records[0]?.sequence ?? -1;
    const through = batch.records[batch.records.length - 1]?.sequence ?? -1;
    this.sent.push({ from, through, count: batch.records.length, size: bytes.length, bytes, ackedAtSend: this.source.ackedSequence });
    this.signals.push(signal);
    switch (this.faults.shift() ?? 'ok') {
      case 'ok':
        return this.reply(await this.intake.receive(bytes));
      case 'drop_request':
        throw new Error('ECONNRESET before the request reached the platform');
      case 'overload':
        throw new Error('503 Service Unavailable');
      case 'drop_response':
        await this.intake.receive(bytes);
        throw new Error('ECONNRESET after the platform stored the batch');
      case 'duplicate': {
        const [, second] = await Promise.all([this.intake.receive(bytes), this.intake.receive(bytes)]);
        return this.reply(second);
      }
      case 'delay':
        await this.hang(signal);
        this.late.push(this.intake.receive(bytes).catch(() => undefined));
        throw new Error('aborted');
    }
  }

  /** Hangs until the terminal aborts the request: the request reaches the platform only after the terminal gave up on it. */
  async hang(signal: AbortSignal): Promise<void> {
    this.hanging++;
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    this.hanging--;
  }

  private reply(platform: { ackedThrough: number }): { readonly ackedThrough: number } {
    if (this.answer === undefined) return platform;
    return this.answer(platform) as { readonly ackedThrough: number };
  }
}

// ---------------------------------------------------------------------------------------------
// Virtual time: timers fire only when the test says so, earliest first.

class VirtualTime implements Scheduler, Clock {
  ms = T0_S * 1000;
  /** Every delay the uploader asked for, in order. */
  readonly requested: number[] = [];
  private timers: { due: number; id: number; fn: () => void }[] = [];
  private nextId = 0;

  nowMs(): number {
    return this.ms;
  }

  after(ms: number, fn: () => void): () => void {
    this.requested.push(ms);
    const timer = { due: this.ms + ms, id: this.nextId++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  get pending(): number {
    return this.timers.length;
  }

  fireNext(): void {
    this.timers.sort((a, b) => a.due - b.due || a.id - b.id);
    const timer = this.timers.shift();
    if (timer === undefined) return;
    this.ms = Math.max(this.ms, timer.due);
    timer.fn();
  }
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; !condition(); i++) {
    if (i > 20_000) throw new Error(`never: ${what}`);
    await tick();
  }
}

/**
 * Runs the system until `work` settles. It fires the next timer only when the uploader can do
 * nothing but wait for one: a backoff, or a request hanging until its timeout. Crypto and the
 * journal get all the real ticks they need.
 */
async function drive(vt: VirtualTime, work: Promise<unknown>, u: Uploader, transport: FaultyTransport): Promise<void> {
  let settled = false;
  work.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  for (let i = 0; !settled; i++) {
    if (i > 200_000) throw new Error('drive: the uploader made no progress');
    await tick();
    if (u.status().nextRetryAt !== undefined || transport.hanging > 0) vt.fireNext();
  }
}

/** Deterministic jitter and fault mixes (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

// ---------------------------------------------------------------------------------------------
// A terminal with records to upload, and the harness around it.

let w: World;
beforeAll(async () => {
  w = await makeWorld();
});

interface Rig {
  readonly t: Terminal;
  readonly clock: TestClock;
  readonly p: Payer;
  readonly terminalId: number;
  readonly intake: Intake;
  readonly transport: FaultyTransport;
  readonly vt: VirtualTime;
  /** Every record's bytes as journaled, by sequence: what the platform must end up holding. */
  readonly journaled: Map<number, Uint8Array>;
  uploader(o?: Partial<UploaderOptions>): Uploader;
  /** Journals `n` more records: identity checks, with a payment every fifth up to sequence 50. */
  add(n: number): Promise<void>;
}

async function rig(records: number, o: { journal?: JournalStore; maxNewPerDelivery?: number } = {}): Promise<Rig> {
  const clock = new TestClock();
  const t = await readyTerminal(w, clock, o.journal !== undefined ? { journal: o.journal } : {});
  const identity = t.state.snapshot.identity;
  if (identity === undefined) throw new Error('terminal not enrolled');
  const terminalId = identity.certificate.terminalId;
  const intake = new Intake(w.crypto, o.maxNewPerDelivery);
  intake.enrol(terminalId, identity.certificate.terminalPublicKey);
  const transport = new FaultyTransport(intake, t);
  const vt = new VirtualTime();
  const p = await payer(w, { offlineCount: 1_000, offlineTotal: 1_000_000 });
  const journaled = new Map<number, Uint8Array>();
  const r: Rig = {
    t,
    clock,
    p,
    terminalId,
    intake,
    transport,
    vt,
    journaled,
    uploader: (more = {}) => new Uploader(t, { transport, clock: vt, scheduler: vt, random: seeded(7), ...more }),
    async add(n) {
      for (let i = 0; i < n; i++) {
        const text = await p.text(clock.s);
        const next = t.headSequence + 1;
        // The policy allows 10 payments a day per credential; identity checks have no such cap.
        const d = next % 5 === 0 && next <= 50 ? await t.pay(100, text) : await t.checkIdentity(text);
        expect(d.accepted).toBe(true);
        const bytes = (await t.journal.pending(t.headSequence - 1, 1))[0];
        if (bytes === undefined) throw new Error('record not journaled');
        journaled.set(t.headSequence, bytes);
      }
    },
  };
  await r.add(records);
  return r;
}

/** No loss, no duplicate, no alarm: the platform holds exactly what the terminal journaled, each once. */
async function expectDrained(r: Rig): Promise<void> {
  await Promise.all(r.transport.late);
  const n = r.t.headSequence;
  expect(r.intake.alarms).toEqual([]);
  expect(r.intake.inserts).toBe(n);
  expect([...r.intake.held(r.terminalId).keys()].sort((a, b) => a - b)).toEqual(range(1, n));
  for (const [sequence, bytes] of r.journaled)
    expect(equalBytes(r.intake.held(r.terminalId).get(sequence) ?? new Uint8Array(), bytes)).toBe(true);
  expect(r.t.ackedSequence).toBe(n);
  expect(await r.t.journal.pending(0, 10_000)).toEqual([]);
}

/** Every batch continued right after what the terminal held as acknowledged, without a gap, within the bound. */
function expectContiguous(sent: readonly Sent[], batchRecords: number): void {
  for (const b of sent) {
    expect(b.from).toBe(b.ackedAtSend + 1);
    expect(b.through - b.from + 1).toBe(b.count);
    expect(b.count).toBeGreaterThanOrEqual(1);
    expect(b.count).toBeLessThanOrEqual(batchRecords);
  }
}

const range = (from: number, through: number) => Array.from({ length: through - from + 1 }, (_, i) => from + i);

async function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------

describe('the platform intake (the fake is real logic)', () => {
  it('stores a batch once; the same bytes again change nothing', async () => {
    const r = await rig(4);
    const u = r.uploader();
    await drive(r.vt, u.flush(), u, r.transport);
    const before = [...r.intake.held(r.terminalId).entries()];
    const batch = r.transport.sent[0]?.bytes;
    if (batch === undefined) throw new Error('nothing sent');
    // The very same batch, delivered twice more: once after the other, then both at once.
    expect(await r.intake.receive(batch)).toEqual({ ackedThrough: 4 });
    expect(await Promise.all([r.intake.receive(batch), r.intake.receive(batch)])).toEqual([{ ackedThrough: 4 }, { ackedThrough: 4 }]);
    expect([...r.intake.held(r.terminalId).entries()]).toEqual(before);
    expect(r.intake.inserts).toBe(4);
    expect(r.intake.duplicates).toBe(12);
    expect(r.intake.alarms).toEqual([]);
  });

  it('flags different bytes under a held sequence as tampering and keeps the first', async () => {
    const r = await rig(2);
    const u = r.uploader();
    await drive(r.vt, u.flush(), u, r.transport);
    const identity = r.t.state.snapshot.identity;
    const held = r.journaled.get(2);
    if (identity === undefined || held === undefined) throw new Error('setup');
    const original = decodeRecord(held);
    const forged = await signRecord({ ...original, amount: original.amount, time: original.time + 1 }, identity.signer);
    const answer = await r.intake.receive(encodeUploadBatch(r.terminalId, [forged]));
    expect(answer.ackedThrough).toBe(2);
    expect(r.intake.alarms).toEqual([{ terminalId: r.terminalId, sequence: 2, kind: 'tampered' }]);
    expect(equalBytes(r.intake.held(r.terminalId).get(2) ?? new Uint8Array(), held)).toBe(true);
  });

  it('refuses a record that does not chain onto what it holds, and one with a bad signature', async () => {
    const r = await rig(3);
    const identity = r.t.state.snapshot.identity;
    const [one, , three] = [1, 2, 3].map((s) => decodeRecord(r.journaled.get(s) ?? new Uint8Array()));
    if (identity === undefined || one === undefined || three === undefined) throw new Error('setup');
    await r.intake.receive(encodeUploadBatch(r.terminalId, [one]));
    // Record 2 re-signed with a previous hash that is not record 1's: a fork.
    const fork = await signRecord({ ...three, sequence: 2, previousHash: recordHash(three, w.crypto) }, identity.signer);
    await expect(r.intake.receive(encodeUploadBatch(r.terminalId, [fork]))).rejects.toThrow(/409/);
    expect(r.intake.alarms.map((a) => a.kind)).toEqual(['fork']);
    // A gap is not stored: the answer says what is held.
    expect(await r.intake.receive(encodeUploadBatch(r.terminalId, [three]))).toEqual({ ackedThrough: 1 });
    // A record signed by someone else never verifies.
    const stranger = await w.crypto.suite(w.suite).generate();
    const alien = await signRecord({ ...three, sequence: 2, previousHash: recordHash(one, w.crypto) }, stranger);
    await expect(r.intake.receive(encodeUploadBatch(r.terminalId, [alien]))).rejects.toThrow(/signature/);
    expect(r.intake.inserts).toBe(1);
  });
});

describe('Uploader: draining', () => {
  it('drains everything with no loss and no duplicate under a random mix of faults', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom(...FAULTS), { maxLength: 40 }),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        fc.integer({ min: 1, max: 8 }),
        async (faults, seed, batchRecords) => {
          const r = await rig(17);
          r.transport.faults = [...faults];
          const u = r.uploader({ random: seeded(seed), batchRecords, timeoutMs: 10_000 });
          const flush = u.flush({ maxFailures: Number.POSITIVE_INFINITY });
          await drive(r.vt, flush, u, r.transport);
          await flush;
          await expectDrained(r);
          expectContiguous(r.transport.sent, batchRecords);
          expect(u.status()).toMatchObject({ running: false, pending: 0, ackedThrough: 17, consecutiveFailures: 0 });
          expect(r.vt.pending).toBe(0);
        },
      ),
      { numRuns: 40, seed: 20_260_921 },
    );
  });

  it('keeps draining what is journaled during upload when started', async () => {
    const r = await rig(6);
    r.transport.faults = ['overload', 'ok', 'drop_response', 'ok'];
    const u = r.uploader({ batchRecords: 4 });
    u.start();
    await r.add(5);
    const f = u.flush({ maxFailures: Number.POSITIVE_INFINITY });
    await drive(r.vt, f, u, r.transport);
    await expectDrained(r);
    expect(u.status().running).toBe(true);
    await u.stop();
    expect(u.status().running).toBe(false);
  });

  it('wake() uploads a new record at once; without it the idle poll finds it', async () => {
    const r = await rig(0);
    const u = r.uploader({ idlePollMs: 60_000 });
    u.start();
    await until(() => r.vt.pending === 1, 'idle sleep');
    await r.add(1);
    u.wake();
    await until(() => r.t.ackedSequence === 1, 'woken upload');
    expect(r.vt.ms).toBe(T0_S * 1000);

    await r.add(1);
    await until(() => r.vt.pending === 1 && u.status().inFlight === undefined, 'idle again');
    expect(r.intake.held(r.terminalId).has(2)).toBe(false);
    r.vt.fireNext();
    await until(() => r.t.ackedSequence === 2, 'polled upload');
    expect(r.vt.ms).toBe(T0_S * 1000 + 60_000);
    await u.stop();
    await expectDrained(r);
  });
});

describe('Uploader: batches', () => {
  it('sends contiguous batches bounded by batchRecords', async () => {
    const r = await rig(23);
    const u = r.uploader({ batchRecords: 5 });
    await drive(r.vt, u.flush(), u, r.transport);
    expect(r.transport.sent.map((b) => [b.from, b.through])).toEqual([
      [1, 5],
      [6, 10],
      [11, 15],
      [16, 20],
      [21, 23],
    ]);
    expectContiguous(r.transport.sent, 5);
    await expectDrained(r);
  });

  it('bounds a batch by bytes as well as by count', async () => {
    const r = await rig(10);
    const longest = Math.max(...[...r.journaled.values()].map((b) => b.length));
    const batchMaxBytes = 7 + 3 * (2 + longest);
    const u = r.uploader({ batchMaxBytes });
    await drive(r.vt, u.flush(), u, r.transport);
    for (const b of r.transport.sent) expect(b.size).toBeLessThanOrEqual(batchMaxBytes);
    expect(r.transport.sent.map((b) => b.count)).toEqual([3, 3, 3, 1]);
    await expectDrained(r);
  });

  it(`sends at most UPLOAD_BATCH_RECORDS (${UPLOAD_BATCH_RECORDS}) records per batch by default`, async () => {
    const r = await rig(UPLOAD_BATCH_RECORDS + 5);
    const u = r.uploader();
    await drive(r.vt, u.flush(), u, r.transport);
    expect(r.transport.sent.map((b) => b.count)).toEqual([UPLOAD_BATCH_RECORDS, 5]);
    await expectDrained(r);
  });

  it('never sends a batch with a gap, even when the journal returns one', async () => {
    const journal = new MemoryJournal();
    const r = await rig(6, { journal });
    const read = journal.pending.bind(journal);
    // A broken journal that skips record 1. What it returns is contiguous in itself (2-6), so only
    // the uploader's own check that a batch starts right after the acknowledgement stands in the way.
    journal.pending = async (after, max) => (await read(after, max)).filter((b) => decodeRecord(b).sequence !== 1);
    const u = r.uploader();
    const f = u.flush({ maxFailures: 1 });
    await drive(r.vt, f, u, r.transport);
    await expect(f).rejects.toMatchObject({ code: 'gave_up', failure: { code: 'journal' } });
    expect(r.transport.sent).toEqual([]);
    expect(u.status().lastError?.detail).toMatch(/record 2 where 1 was due/);
  });

  it('refuses options beyond the limits', () => {
    const t = { journal: new MemoryJournal(), headSequence: 0, ackedSequence: 0, acknowledge: async () => {} };
    const transport = { upload: async () => ({ ackedThrough: 0 }) };
    expect(() => new Uploader(t, { transport, batchRecords: 0 })).toThrow(RangeError);
    expect(() => new Uploader(t, { transport, batchRecords: UPLOAD_BATCH_RECORDS + 1 })).toThrow(RangeError);
    expect(() => new Uploader(t, { transport, batchMaxBytes: 2_000_000 })).toThrow(RangeError);
    expect(() => new Uploader(t, { transport, timeoutMs: 0 })).toThrow(RangeError);
  });
});

describe('Uploader: acknowledgements', () => {
  it('resumes from the acknowledgement when the platform holds less than it was sent', async () => {
    const r = await rig(10, { maxNewPerDelivery: 3 });
    const u = r.uploader({ batchRecords: 4 });
    await drive(r.vt, u.flush(), u, r.transport);
    expect(r.transport.sent.map((b) => [b.from, b.through])).toEqual([
      [1, 4],
      [4, 7],
      [7, 10],
      [10, 10],
    ]);
    expectContiguous(r.transport.sent, 4);
    expect(u.status().consecutiveFailures).toBe(0);
    await expectDrained(r);
  });

  it('prunes only after an acknowledgement: failed uploads leave every record in the journal', async () => {
    const r = await rig(8);
    r.transport.faults = ['drop_request', 'drop_response', 'delay', 'overload', 'drop_response'];
    const u = r.uploader({ batchRecords: 3 });
    const f = u.flush({ maxFailures: 5 });
    await drive(r.vt, f, u, r.transport);
    await expect(f).rejects.toMatchObject({ name: 'UploadError', code: 'gave_up', failure: { code: 'transport' } });
    await Promise.all(r.transport.late);
    // The platform has records 1-3; the terminal heard nothing, so it keeps all eight.
    expect(r.intake.held(r.terminalId).size).toBe(3);
    expect(r.t.ackedSequence).toBe(0);
    expect((await r.t.journal.pending(0, 100)).length).toBe(8);
    expect(u.status()).toMatchObject({ pending: 8, ackedThrough: 0, consecutiveFailures: 5 });

    // When an answer finally gets through, the platform already holds 1-3 and nothing is stored twice.
    await drive(r.vt, u.flush(), u, r.transport);
    expect(r.intake.duplicates).toBeGreaterThanOrEqual(3);
    await expectDrained(r);
    expect(u.status().lastError).toBeUndefined();
  });

  it('moves the terminal up to the acknowledgement, and no further than its head', async () => {
    const r = await rig(5);
    r.transport.answer = () => ({ ackedThrough: 1_000 });
    const u = r.uploader({ batchRecords: 2 });
    await drive(r.vt, u.flush(), u, r.transport);
    expect(r.t.ackedSequence).toBe(5);
    expect(r.transport.sent.length).toBe(1);
  });

  it('never moves an acknowledgement backwards when the platform answers less than before', async () => {
    const r = await rig(5);
    const u = r.uploader();
    await drive(r.vt, u.flush(), u, r.transport);
    await r.add(3);
    r.transport.answer = () => ({ ackedThrough: 2 });
    const f = u.flush({ maxFailures: 1 });
    await drive(r.vt, f, u, r.transport);
    await expect(f).rejects.toMatchObject({ code: 'gave_up', failure: { code: 'ack_regressed' } });
    expect(r.t.ackedSequence).toBe(5);
    expect((await r.t.journal.pending(0, 100)).map((b) => decodeRecord(b).sequence)).toEqual([6, 7, 8]);
  });

  it('treats an answer that acknowledges nothing new, or makes no sense, as a failure', async () => {
    const r = await rig(3);
    const answers: unknown[] = [{ ackedThrough: 0 }, { ackedThrough: '3' }, {}, null, { ackedThrough: 1.5 }, { ackedThrough: -1 }];
    const codes: string[] = [];
    for (const a of answers) {
      r.transport.answer = () => a;
      const u = r.uploader();
      const f = u.flush({ maxFailures: 1 });
      await drive(r.vt, f, u, r.transport);
      await f.catch((e: unknown) => codes.push(e instanceof UploadError ? (e.failure?.code ?? e.code) : 'other'));
    }
    expect(codes).toEqual(['no_progress', 'bad_answer', 'bad_answer', 'bad_answer', 'bad_answer', 'bad_answer']);
    expect(r.t.ackedSequence).toBe(0);
    expect((await r.t.journal.pending(0, 10)).length).toBe(3);
  });
});

describe('Uploader: backoff', () => {
  it('doubles the ceiling from UPLOAD_BACKOFF_BASE_MS per failure and caps it at UPLOAD_BACKOFF_MAX_MS', () => {
    const ceilings = range(1, 12).map(backoffCeilingMs);
    expect(ceilings).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000, 300_000]);
    expect(UPLOAD_BACKOFF_BASE_MS).toBe(1_000);
    expect(UPLOAD_BACKOFF_MAX_MS).toBe(300_000);
    expect(backoffCeilingMs(10_000)).toBe(UPLOAD_BACKOFF_MAX_MS);
  });

  it('waits a fully jittered delay below the ceiling after each failure (the scheduler is asked for exactly that)', async () => {
    const r = await rig(2);
    r.transport.faults = Array.from({ length: 14 }, () => 'overload');
    const draw = seeded(2026);
    const draws: number[] = [];
    const timeoutMs = 9_999;
    const u = r.uploader({
      timeoutMs,
      random: () => {
        const x = draw();
        draws.push(x);
        return x;
      },
    });
    const f = u.flush({ maxFailures: 14 });
    await drive(r.vt, f, u, r.transport);
    await expect(f).rejects.toMatchObject({ code: 'gave_up' });

    // The scheduler sees, per attempt, the request timeout and then (except after the last) the backoff.
    const timeouts = r.vt.requested.filter((_, i) => i % 2 === 0);
    const backoffs = r.vt.requested.filter((_, i) => i % 2 === 1);
    expect(timeouts).toEqual(Array.from({ length: 14 }, () => timeoutMs));
    expect(draws.length).toBe(13);
    expect(backoffs).toEqual(draws.map((x, k) => Math.floor(x * backoffCeilingMs(k + 1))));
    for (const [k, d] of backoffs.entries()) expect(d).toBeLessThan(backoffCeilingMs(k + 1));
    expect(Math.max(...backoffs)).toBeLessThan(UPLOAD_BACKOFF_MAX_MS);
    // Jitter: the delays are not simply the ceilings.
    expect(new Set(backoffs.map((d, k) => d / backoffCeilingMs(k + 1))).size).toBeGreaterThan(10);
    expect(r.t.ackedSequence).toBe(0);
  });

  it('grows exponentially to the cap with a fixed draw', async () => {
    const r = await rig(1);
    r.transport.faults = Array.from({ length: 13 }, () => 'drop_request');
    const u = r.uploader({ random: () => 0.5 });
    const f = u.flush({ maxFailures: 13 });
    await drive(r.vt, f, u, r.transport);
    await expect(f).rejects.toMatchObject({ code: 'gave_up' });
    expect(r.vt.requested.filter((_, i) => i % 2 === 1)).toEqual([
      500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 150_000, 150_000, 150_000,
    ]);
  });

  it('times out a request that never answers, then retries it', async () => {
    const r = await rig(3);
    r.transport.faults = ['delay', 'delay'];
    const u = r.uploader({ timeoutMs: 2_000, random: () => 0 });
    const f = u.flush();
    await until(() => r.transport.hanging === 1, 'first request hangs');
    expect(u.status().inFlight).toEqual({ from: 1, through: 3 });
    r.vt.fireNext();
    await until(() => u.status().consecutiveFailures === 1, 'timeout counted');
    expect(u.status().lastError).toMatchObject({ code: 'timeout', detail: 'no answer within 2000 ms', atMs: T0_S * 1000 + 2_000 });
    expect(r.transport.signals[0]?.aborted).toBe(true);
    await drive(r.vt, f, u, r.transport);
    await expectDrained(r);
  });

  it('flush() cuts a backoff short', async () => {
    const r = await rig(2);
    r.transport.faults = ['overload'];
    const u = r.uploader({ random: () => 0.99 });
    u.start();
    await until(() => u.status().nextRetryAt !== undefined, 'backoff');
    expect(u.status().nextRetryAt).toBe(T0_S * 1000 + 990);
    await withDeadline(u.flush(), 2_000, 'flush during backoff');
    expect(r.vt.ms).toBe(T0_S * 1000);
    await u.stop();
    await expectDrained(r);
  });
});

describe('Uploader: stop', () => {
  it('stop() mid-flight aborts the request and leaves nothing half-done; a restart finishes without duplicates', async () => {
    const r = await rig(7);
    // The platform stores the batch, but its answer never comes back before stop().
    const stored: Promise<unknown>[] = [];
    const hanging: UploadTransport = {
      upload: async (bytes, signal) => {
        stored.push(r.intake.receive(bytes));
        await r.transport.hang(signal);
        throw new Error('aborted');
      },
    };
    const u = r.uploader({ transport: hanging });
    u.start();
    await until(() => r.transport.hanging === 1, 'request in flight');
    await Promise.all(stored);
    const flush = u.flush();
    await withDeadline(u.stop(), 2_000, 'stop');
    await expect(flush).rejects.toMatchObject({ code: 'stopped' });
    expect(r.transport.hanging).toBe(0);
    expect(u.status()).toMatchObject({ running: false, inFlight: undefined, nextRetryAt: undefined, ackedThrough: 0, pending: 7 });
    expect(r.vt.pending).toBe(0);
    expect((await r.t.journal.pending(0, 100)).length).toBe(7);

    const again = r.uploader();
    await drive(r.vt, again.flush(), again, r.transport);
    expect(r.intake.duplicates).toBe(7);
    await expectDrained(r);
  });

  it('stop() returns even when the transport ignores the abort', async () => {
    const r = await rig(2);
    let called = false;
    const deaf: UploadTransport = {
      upload: () => {
        called = true;
        return new Promise(() => undefined);
      },
    };
    const u = r.uploader({ transport: deaf });
    u.start();
    await until(() => called, 'request in flight');
    await withDeadline(u.stop(), 2_000, 'stop');
    expect(u.status()).toMatchObject({ running: false, inFlight: undefined, pending: 2 });
    expect(r.vt.pending).toBe(0);
  });

  it('stop() during a backoff cancels the timer', async () => {
    const r = await rig(2);
    r.transport.faults = ['overload'];
    const u = r.uploader();
    u.start();
    await until(() => u.status().nextRetryAt !== undefined, 'backoff');
    expect(r.vt.pending).toBe(1);
    await withDeadline(u.stop(), 2_000, 'stop');
    expect(r.vt.pending).toBe(0);
    expect(u.status()).toMatchObject({ running: false, nextRetryAt: undefined, consecutiveFailures: 1, lastError: { code: 'transport' } });
  });

  it('can be started again after stop()', async () => {
    const r = await rig(4);
    const u = r.uploader({ batchRecords: 2 });
    u.start();
    const stopping = u.stop();
    u.start();
    await stopping;
    await drive(r.vt, u.flush(), u, r.transport);
    await expectDrained(r);
    await u.stop();
  });
});

describe('Uploader never blocks a decision', () => {
  it('a payment made while an upload request hangs completes at once', async () => {
    const r = await rig(5);
    r.transport.faults = ['delay'];
    const u = r.uploader();
    u.start();
    await until(() => r.transport.hanging === 1, 'request in flight');
    const started = performance.now();
    const d = await withDeadline(r.t.pay(350, await r.p.text(r.clock.s)), 2_000, 'payment during upload');
    expect(d).toMatchObject({ accepted: true, sequence: 6 });
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(r.transport.hanging).toBe(1);
    expect(u.status().inFlight).toEqual({ from: 1, through: 5 });
    await u.stop();
  });

  it('a payment made while the uploader is reading a slow journal completes at once', async () => {
    const journal = new MemoryJournal();
    const r = await rig(5, { journal });
    let release: () => void = () => undefined;
    let reading = false;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const read = journal.pending.bind(journal);
    journal.pending = async (after, max) => {
      reading = true;
      await gate;
      return read(after, max);
    };
    const u = r.uploader();
    u.start();
    await until(() => reading, 'upload reading the journal');
    const d = await withDeadline(r.t.pay(350, await r.p.text(r.clock.s)), 2_000, 'payment during a journal read');
    expect(d).toMatchObject({ accepted: true, sequence: 6 });
    release();
    const stopped = u.stop();
    await stopped;
  });
});
