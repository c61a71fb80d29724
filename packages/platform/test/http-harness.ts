/**
 * A real platform over real HTTP, for the HTTP suites (platform.contract.ts, authz.test.ts,
 * faults.test.ts): `openPlatform` on a fresh SQLite file or PostgreSQL schema, listening on
 * 127.0.0.1 port 0, with a clock the test moves, and a small typed client that speaks to it
 * exactly as the outside world does: global fetch, JSON or binary bodies, bearer sessions for staff
 * and holders, and terminals that activate themselves with their own key and sign every request.
 *
 * Nothing here reaches into the server except `platform` (for the Db, when a test checks what was
 * written, and for the route table) and `sessionValid` (so a suite can tell a session a route ended
 * from one it refused).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Credential,
  type CryptoProvider,
  decodeCredential,
  decodeTrustList,
  type RootKey,
  type Signer,
  type SuiteName,
  signRequest,
  type TrustList,
} from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { signDeviceProof } from '@duet/wallet';
import { expect } from 'vitest';
import type { StaffRole } from '../src/context.js';
import type { ApiErrorCode } from '../src/errors.js';
import { openPlatform, type Platform } from '../src/platform.js';
import { activationProofMessage } from '@duet/protocol';
import type { TestDatabase } from './pg-harness.js';

export const PASSPHRASE = 'test-passphrase-123';
export const ADMIN = { username: 'admin', password: 'admin-password-1' } as const;
/** 2026-03-01T00:00:00Z: every suite starts here, so nothing depends on the wall clock. */
export const T0_S = 1_772_323_200;
export const DAY_S = 86_400;
/** Holders made by `createHolder` get this password unless told otherwise. */
export const HOLDER_PASSWORD = 'holder-pass-1';

// ---------------------------------------------------------------------------------------------
// Small helpers

export function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

export function unb64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'base64'));
}

/** A fresh idempotency key (the API wants 8..100 of [A-Za-z0-9._:-]). */
export function idemKey(prefix = 'k'): string {
  return `${prefix}-${randomBytes(8).toString('hex')}`;
}

/** The platform's clock, moved only by the test. */
export class TestClock {
  #ms: number;

  constructor(startS: number) {
    this.#ms = startS * 1000;
  }

  nowMs(): number {
    return this.#ms;
  }

  nowS(): number {
    return Math.floor(this.#ms / 1000);
  }

  advance(seconds: number): void {
    this.#ms += seconds * 1000;
  }
}

export interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The parsed body when the server said it is JSON; undefined otherwise. */
  readonly body: unknown;
}

/** The typed error body every refusal carries. */
export interface ErrorBody {
  readonly code: string;
  readonly en: string;
  readonly zh: string;
  readonly detail?: string;
}

/** Expects a 2xx answer and returns its body as the type the route documents. */
export function ok<T = Record<string, unknown>>(r: Reply): T {
  expect(r.status, `expected 2xx, got ${r.status}: ${r.text.slice(0, 500)}`).toBeGreaterThanOrEqual(200);
  expect(r.status, `expected 2xx, got ${r.status}: ${r.text.slice(0, 500)}`).toBeLessThan(300);
  return r.body as T;
}

/** Expects a typed refusal: this status, this code, words in both languages. */
export function expectError(r: Reply, status: number, code: ApiErrorCode): ErrorBody {
  expect({ status: r.status, code: errorOf(r)?.code }, r.text.slice(0, 500)).toEqual({ status, code });
  const e = errorOf(r);
  if (e === undefined) throw new Error('unreachable: checked above');
  expect(e.en.length).toBeGreaterThan(0);
  expect(e.zh.length).toBeGreaterThan(0);
  expect(e.zh).not.toBe(e.en);
  return e;
}

/** The `error` of a refusal body, if the body is one. */
export function errorOf(r: Reply): ErrorBody | undefined {
  const b = r.body;
  if (typeof b !== 'object' || b === null || !('error' in b)) return undefined;
  const e = (b as { error: unknown }).error;
  if (typeof e !== 'object' || e === null) return undefined;
  const { code, en, zh, detail } = e as Record<string, unknown>;
  if (typeof code !== 'string' || typeof en !== 'string' || typeof zh !== 'string') return undefined;
  return { code, en, zh, ...(typeof detail === 'string' ? { detail } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Callers

/** A staff or holder sign-in: its bearer token. */
export interface Session {
  readonly kind: 'session';
  readonly token: string;
}

/**
 * A terminal that made its own key and activated itself. Every request it sends is signed
 * (protocol/request-auth.ts) at the platform clock's time, or one second after its previous
 * request if that is later: the platform refuses a signed request it has seen before, and two
 * identical requests in the same second would be the same request.
 */
export class TestTerminal {
  readonly kind = 'terminal';
  #lastS = 0;

  constructor(
    readonly id: number,
    readonly merchantId: number,
    readonly signer: Signer,
    readonly certificate: Uint8Array,
    private readonly clock: TestClock,
    private readonly crypto: CryptoProvider,
  ) {}

  async sign(method: string, path: string, body: Uint8Array): Promise<Record<string, string>> {
    const t = Math.max(this.clock.nowS(), this.#lastS + 1);
    this.#lastS = t;
    return { ...(await signRequest(this.signer, this.id, method, path, body, t, (b) => this.crypto.sha256(b))) };
  }
}

export type Caller = Session | TestTerminal;

export interface RequestOptions {
  readonly as?: Caller;
  /** A JSON body (serialised once; a terminal signs exactly the bytes sent). */
  readonly json?: unknown;
  /** A raw body, sent as is. */
  readonly raw?: string | Uint8Array;
  /** Content type of `raw` (default application/octet-stream) or of `json` (default application/json). */
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface HolderAccount {
  readonly id: number;
  readonly password: string;
}

export interface EnrolledHolder extends HolderAccount {
  readonly session: Session;
  readonly device: Signer;
  readonly deviceId: number;
}

export interface IssuedCredential {
  readonly serial: number;
  readonly credential: Credential;
  readonly notAfter: number;
  readonly limits: { readonly perPayment: number; readonly offlineTotal: number; readonly offlineCount: number };
}

export interface TopUpAnswer {
  readonly topUpId: number;
  readonly entryId: number;
  readonly holderId: number;
  readonly amount: number;
  readonly cashAfter: number;
}

export interface StartOptions {
  /** A --db value: sqlite:PATH or postgres://…; default a SQLite file in the harness's temp dir. */
  readonly dbUrl?: string;
  readonly startS?: number;
  /** false: no background clearing; the test clears with POST /v1/clearing/run. */
  readonly clearing?: false;
  /** PlatformOptions.holderTopUp: holders may top up their own cash purse. */
  readonly holderTopUp?: boolean;
}

// ---------------------------------------------------------------------------------------------
// The platform

export class HttpPlatform {
  #admin: Session | undefined;
  #nextHolderId = 100_001;
  #merchantId: number | undefined;

  private constructor(
    readonly platform: Platform,
    /** http://127.0.0.1:PORT */
    readonly url: string,
    readonly clock: TestClock,
    readonly crypto: CryptoProvider,
    private readonly dataDir: string,
  ) {}

  /** Opens a platform on the given storage and listens on 127.0.0.1, port 0. */
  static async start(o: StartOptions = {}): Promise<HttpPlatform> {
    const dataDir = mkdtempSync(join(tmpdir(), 'duet-http-'));
    const clock = new TestClock(o.startS ?? T0_S);
    const crypto = nodeCrypto();
    try {
      const platform = await openPlatform({
        ...(o.dbUrl !== undefined ? { dbUrl: o.dbUrl } : {}),
        dataDir,
        passphrase: PASSPHRASE,
        crypto,
        clock,
        logger: false,
        firstAdmin: ADMIN,
        ...(o.clearing === false ? { clearing: false as const } : {}),
        ...(o.holderTopUp === true ? { holderTopUp: true } : {}),
      });
      try {
        const url = await platform.app.listen({ host: '127.0.0.1', port: 0 });
        return new HttpPlatform(platform, url, clock, crypto, dataDir);
      } catch (e) {
        await platform.close();
        throw e;
      }
    } catch (e) {
      rmSync(dataDir, { recursive: true, force: true });
      throw e;
    }
  }

  /** A platform on fresh, empty storage of this test database (see pg-harness.ts). */
  static async on(d: TestDatabase, o: Omit<StartOptions, 'dbUrl'> = {}): Promise<HttpPlatform> {
    const storage = await d.fresh();
    return HttpPlatform.start({ ...o, dbUrl: d.name === 'sqlite' ? `sqlite:${storage.location}` : storage.location });
  }

  get db() {
    return this.platform.db;
  }

  async close(): Promise<void> {
    try {
      await this.platform.close();
    } finally {
      rmSync(this.dataDir, { recursive: true, force: true });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Requests

  async request(method: string, path: string, o: RequestOptions = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...o.headers };
    let body: Uint8Array | undefined;
    if (o.json !== undefined) {
      body = new TextEncoder().encode(JSON.stringify(o.json));
      headers['content-type'] ??= o.contentType ?? 'application/json';
    } else if (o.raw !== undefined) {
      body = typeof o.raw === 'string' ? new TextEncoder().encode(o.raw) : o.raw;
      headers['content-type'] ??= o.contentType ?? 'application/octet-stream';
    }
    if (o.as instanceof TestTerminal) Object.assign(headers, await o.as.sign(method, path, body ?? new Uint8Array(0)));
    else if (o.as !== undefined) headers.authorization = `Bearer ${o.as.token}`;
    // A copy on its own ArrayBuffer: fetch takes no view of a shared or resizable one.
    const res = await fetch(this.url + path, { method, headers, ...(body !== undefined ? { body: new Uint8Array(body) } : {}) });
    const text = await res.text();
    const json = (res.headers.get('content-type') ?? '').includes('application/json') && text !== '';
    return { status: res.status, headers: res.headers, text, body: json ? (JSON.parse(text) as unknown) : undefined };
  }

  get(path: string, as?: Caller): Promise<Reply> {
    return this.request('GET', path, as === undefined ? {} : { as });
  }

  post(path: string, json: unknown, as?: Caller): Promise<Reply> {
    return this.request('POST', path, as === undefined ? { json } : { as, json });
  }

  /** True while the server still accepts this session (a route such as logout may end it). */
  async sessionValid(s: Session): Promise<boolean> {
    return (await this.platform.ctx.auth.bearer(s.token)) !== undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Staff

  async login(username: string, password: string): Promise<Session> {
    const r = ok<{ token: string }>(await this.post('/v1/staff/login', { username, password }));
    return { kind: 'session', token: r.token };
  }

  /** A signed-in operator admin (the first account), signed in again when the session ended. */
  async admin(): Promise<Session> {
    if (this.#admin === undefined || !(await this.sessionValid(this.#admin)))
      this.#admin = await this.login(ADMIN.username, ADMIN.password);
    return this.#admin;
  }

  /** A new staff account of this role (a merchant account gets a merchant), signed in. */
  async staff(role: StaffRole, username: string): Promise<Session> {
    const password = `${username}-password-1`;
    const merchantId = role === 'merchant' ? await this.merchant() : undefined;
    ok(await this.post('/v1/staff', { username, password, role, ...(merchantId !== undefined ? { merchantId } : {}) }, await this.admin()));
    return this.login(username, password);
  }

  /** The harness's merchant, made on first use. */
  async merchant(): Promise<number> {
    this.#merchantId ??= ok<{ id: number }>(
      await this.post('/v1/merchants', { name: 'Canteen 1', category: 'canteen' }, await this.admin()),
    ).id;
    return this.#merchantId;
  }

  // -------------------------------------------------------------------------------------------
  // Holders

  /** A new holder with a password, made by the admin. */
  async createHolder(o: { readonly password?: string; readonly campus?: number } = {}): Promise<HolderAccount> {
    const id = this.#nextHolderId++;
    const password = o.password ?? HOLDER_PASSWORD;
    ok(await this.post('/v1/holders', { id, name: `Holder ${id}`, role: 'student', campus: o.campus ?? 1, password }, await this.admin()));
    return { id, password };
  }

  async loginHolder(holderId: number, password: string): Promise<Session> {
    const r = ok<{ token: string }>(await this.post('/v1/holder/login', { holderId, password }));
    return { kind: 'session', token: r.token };
  }

  async acceptAgreement(session: Session): Promise<number> {
    const a = ok<{ version: number; textEn: string; textZh: string }>(await this.get('/v1/holder/agreement', session));
    ok(await this.post('/v1/holder/agreement', { version: a.version, device: 'test phone' }, session));
    return a.version;
  }

  async challenge(session: Session): Promise<Uint8Array> {
    return unb64(ok<{ challenge: string }>(await this.post('/v1/holder/challenge', undefined, session)).challenge);
  }

  /** The body of POST /v1/holder/devices for this device key over this challenge, signed as a wallet signs. */
  async deviceBody(device: Signer, challenge: Uint8Array, label = 'test phone'): Promise<Record<string, string>> {
    const proof = await signDeviceProof(device, challenge);
    return { suite: device.suite, publicKey: b64(device.publicKey), challenge: b64(challenge), proof: b64(proof), label };
  }

  /** Registers a device key with a proof over a fresh challenge; returns the device id. */
  async registerDevice(session: Session, device: Signer): Promise<number> {
    const body = await this.deviceBody(device, await this.challenge(session));
    return ok<{ deviceId: number }>(await this.post('/v1/holder/devices', body, session)).deviceId;
  }

  async newDeviceKey(suite: SuiteName = 'p256'): Promise<Signer> {
    return this.crypto.suite(suite).generate();
  }

  /** A holder who signed the agreement and registered a device, with `topUpFen` in the cash purse. */
  async enrolHolder(o: { readonly topUpFen?: number } = {}): Promise<EnrolledHolder> {
    const account = await this.createHolder();
    const session = await this.loginHolder(account.id, account.password);
    await this.acceptAgreement(session);
    const device = await this.newDeviceKey();
    const deviceId = await this.registerDevice(session, device);
    if ((o.topUpFen ?? 0) > 0) await this.topUp(account.id, o.topUpFen ?? 0);
    return { ...account, session, device, deviceId };
  }

  async credentialReply(session: Session, deviceId: number): Promise<Reply> {
    return this.post('/v1/holder/credentials', { deviceId }, session);
  }

  async issueCredential(session: Session, deviceId: number): Promise<IssuedCredential> {
    const r = ok<{ serial: number; credential: string; notAfter: number; limits: IssuedCredential['limits'] }>(
      await this.credentialReply(session, deviceId),
    );
    return { serial: r.serial, credential: decodeCredential(unb64(r.credential)), notAfter: r.notAfter, limits: r.limits };
  }

  async topUp(holderId: number, amount: number, key = idemKey('topup')): Promise<TopUpAnswer> {
    return ok<TopUpAnswer>(
      await this.post(`/v1/holders/${holderId}/topups`, { amount, channel: 'cashier', idempotencyKey: key }, await this.admin()),
    );
  }

  async purses(session: Session): Promise<{ cash: number; subsidy: number; available: number; arrears: number }> {
    return ok(await this.get('/v1/holder/purses', session));
  }

  // -------------------------------------------------------------------------------------------
  // Keys and terminals

  /** The public trust list, decoded, and the root keys it is signed under. */
  async trustList(): Promise<{ readonly list: TrustList; readonly roots: RootKey[] }> {
    const r = ok<{ trustList: string; roots: Array<{ keyId: number; suite: SuiteName; publicKey: string }> }>(
      await this.get('/v1/trust-list'),
    );
    return {
      list: decodeTrustList(unb64(r.trustList)),
      roots: r.roots.map((k) => ({ keyId: k.keyId, suite: k.suite, publicKey: unb64(k.publicKey) })),
    };
  }

  /** Registers a terminal of the harness's merchant; returns its id and one-time activation code. */
  async registerTerminal(scene: 'canteen' | 'shop' | 'bus' | 'gate' = 'canteen'): Promise<{ terminalId: number; code: string }> {
    const r = ok<{ terminal: { id: number }; activationCode: string }>(
      await this.post('/v1/terminals', { merchantId: await this.merchant(), scene, campus: 1, location: 'Window 3' }, await this.admin()),
    );
    return { terminalId: r.terminal.id, code: r.activationCode };
  }

  /** The activation request a terminal with this key sends for this code. */
  async activation(code: string, signer: Signer): Promise<Reply> {
    const proof = await signer.sign(activationProofMessage(code, signer.suite, signer.publicKey));
    return this.post('/v1/terminal/activate', { code, suite: signer.suite, publicKey: b64(signer.publicKey), proof: b64(proof) });
  }

  /** A registered, activated terminal with its own new P-256 key. */
  async newTerminal(scene: 'canteen' | 'shop' | 'bus' | 'gate' = 'canteen'): Promise<TestTerminal> {
    const { code } = await this.registerTerminal(scene);
    const signer = await this.crypto.suite('p256').generate();
    const r = ok<{ terminalId: number; certificate: string }>(await this.activation(code, signer));
    return new TestTerminal(r.terminalId, await this.merchant(), signer, unb64(r.certificate), this.clock, this.crypto);
  }
}
