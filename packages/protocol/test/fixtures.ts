/**
 * A complete, valid Duet world for one signature suite and one crypto provider: a pinned root, a
 * trust list with issuer, terminal-CA and list-signing keys, a credential, a device, codes, a
 * terminal certificate, a record chain from the genesis hash, an upload batch, full and delta deny
 * lists and a risk policy. Every private key is derived from a fixed label, so a failing test
 * replays with the same keys (ECDSA and SM2 signatures are still randomised, as in production).
 */
import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import {
  type Code,
  type CodeCheck,
  type Credential,
  type CredentialBody,
  type CryptoProvider,
  type DenyList,
  type DenyListBody,
  denyColumns,
  encodeUploadBatch,
  fen,
  GENESIS_HASH,
  makeCode,
  PROTOCOL_ERROR_CODES,
  ProtocolError,
  type ProtocolErrorCode,
  type RecordBody,
  type RiskPolicy,
  type RiskPolicyBody,
  type RootKey,
  recordHash,
  SUITES,
  type Signer,
  type SuiteName,
  signCredential,
  signDenyList,
  signRecord,
  signRiskPolicy,
  signTerminalCertificate,
  signTrustList,
  type TerminalCertificate,
  type TerminalCertificateBody,
  type TerminalRecord,
  type TrustList,
  type TrustListBody,
} from '../src/index.js';
import { nodeCrypto } from '../src/node.js';
import { webCrypto } from '../src/web.js';

export { SUITES };

/** Both providers, made once per test file: their public-key caches are part of what is tested. */
export const PROVIDERS = { node: nodeCrypto(), web: webCrypto() } as const;
export type ProviderName = keyof typeof PROVIDERS;
export const PROVIDER_NAMES: readonly ProviderName[] = ['node', 'web'];

/** The terminal's "now" in every test: 2026-01-01T00:00:00Z. Fixed, so tests never depend on the wall clock. */
export const NOW_S = 1_767_225_600;
export const DAY_S = 86_400;
export const HOUR_S = 3_600;

/** Key ids in the world's trust list. The root is pinned, not listed. */
export const KEY_ID = { root: 1, issuer: 10, terminalCa: 20, listSigner: 30 } as const;

/** Freshness used by the world's CodeCheck (DESIGN §5: 60 s codes, with clock-skew tolerance). */
export const CODE_WINDOW_S = 60;
export const CLOCK_SKEW_S = 30;

/** Deliberately not powers of two, so no single bit flip can turn them into 0 (see code-tamper). */
export const SERIAL = 0x1234_5678_9abc;
export const HOLDER = 0x0a0b_0c0d_0e0f;
export const TERMINAL_ID = 7_001;
export const MERCHANT_ID = 42;
export const CAMPUS = 3;

/** A fixed 32-byte private key for a label: the scalar d (P-256, SM2) or the seed (Ed25519). */
export function fixedPrivateKey(label: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`duet-test/${label}`).digest());
}

export async function fixedSigner(crypto: CryptoProvider, suite: SuiteName, label: string): Promise<Signer> {
  return crypto.suite(suite).importPrivateKey(fixedPrivateKey(`${suite}/${label}`));
}

export interface World {
  readonly suite: SuiteName;
  readonly provider: ProviderName;
  readonly crypto: CryptoProvider;
  readonly nowS: number;
  readonly root: Signer;
  readonly roots: readonly RootKey[];
  readonly issuer: Signer;
  readonly terminalCa: Signer;
  readonly listSigner: Signer;
  readonly device: Signer;
  readonly terminal: Signer;
  readonly trustBody: TrustListBody;
  readonly trustList: TrustList;
  readonly credentialBody: CredentialBody;
  readonly credential: Credential;
  /** A fresh code: made 5 s before NOW_S, counter 1. */
  readonly code: Code;
  readonly check: CodeCheck;
  readonly certBody: TerminalCertificateBody;
  readonly cert: TerminalCertificate;
  /** Three records chained from GENESIS_HASH: a QR payment (evidence = the code), an access event, a card payment. */
  readonly records: readonly TerminalRecord[];
  readonly batchBytes: Uint8Array;
  readonly denyFull: DenyList;
  readonly denyDelta: DenyList;
  readonly policy: RiskPolicy;
}

export function trustBodyFor(
  suite: SuiteName,
  keys: { issuer: Signer; terminalCa: Signer; listSigner: Signer },
  overrides: Partial<TrustListBody> = {},
): TrustListBody {
  const validity = { notBefore: NOW_S - 365 * DAY_S, notAfter: NOW_S + 365 * DAY_S };
  return {
    listVersion: 7,
    issuedAt: NOW_S - DAY_S,
    expiresAt: NOW_S + 30 * DAY_S,
    rootKeyId: KEY_ID.root,
    rootSuite: suite,
    keys: [
      { keyId: KEY_ID.issuer, role: 'issuer', suite, ...validity, publicKey: keys.issuer.publicKey },
      { keyId: KEY_ID.terminalCa, role: 'terminal_ca', suite, ...validity, publicKey: keys.terminalCa.publicKey },
      { keyId: KEY_ID.listSigner, role: 'list_signer', suite, ...validity, publicKey: keys.listSigner.publicKey },
    ],
    ...overrides,
  };
}

export function credentialBodyFor(suite: SuiteName, device: Signer, overrides: Partial<CredentialBody> = {}): CredentialBody {
  return {
    issuerSuite: suite,
    deviceSuite: device.suite,
    issuerKeyId: KEY_ID.issuer,
    serial: SERIAL,
    holder: HOLDER,
    campus: CAMPUS,
    role: 'student',
    scopes: ['canteen', 'shop', 'bus'],
    devicePublicKey: device.publicKey,
    limits: { perPayment: fen(5_000), offlineTotal: fen(20_000), offlineCount: 10 },
    notBefore: NOW_S - HOUR_S,
    notAfter: NOW_S + 71 * HOUR_S,
    ...overrides,
  };
}

export function recordBodyFor(
  suite: SuiteName,
  sequence: number,
  previousHash: Uint8Array,
  overrides: Partial<RecordBody> = {},
): RecordBody {
  return {
    terminalId: TERMINAL_ID,
    sequence,
    previousHash,
    time: NOW_S,
    kind: 'payment',
    path: 'offline',
    medium: 'qr',
    outcome: 'accepted',
    amount: fen(1_250),
    merchantId: MERCHANT_ID,
    trustListVersion: 7,
    denyListVersion: 5,
    policyVersion: 3,
    evidence: new Uint8Array(0),
    terminalSuite: suite,
    ...overrides,
  };
}

/** Signs records in order, each pointing at the hash of the one before (the first at `previousHash`). */
export async function chainRecords(
  terminal: Signer,
  crypto: CryptoProvider,
  firstSequence: number,
  previousHash: Uint8Array,
  bodies: readonly Partial<RecordBody>[],
): Promise<TerminalRecord[]> {
  const out: TerminalRecord[] = [];
  let prev = previousHash;
  let seq = firstSequence;
  for (const overrides of bodies) {
    const rec = await signRecord(recordBodyFor(terminal.suite, seq, prev, overrides), terminal);
    out.push(rec);
    prev = recordHash(rec, crypto);
    seq++;
  }
  return out;
}

export function denyFullBody(suite: SuiteName, overrides: Partial<DenyListBody> = {}): DenyListBody {
  return {
    signer: { suite, keyId: KEY_ID.listSigner },
    kind: 'full',
    listVersion: 5,
    baseVersion: 0,
    issuedAt: NOW_S - HOUR_S,
    expiresAt: NOW_S + DAY_S,
    ...denyColumns([
      { type: 'holder', id: 77, op: 'add' },
      { type: 'credential', id: 1_000_002, op: 'add' },
      { type: 'card', id: 0xdead_beef, op: 'add' },
      { type: 'credential', id: 1_000_001, op: 'add' },
    ]),
    ...overrides,
  };
}

export function denyDeltaBody(suite: SuiteName, overrides: Partial<DenyListBody> = {}): DenyListBody {
  return {
    signer: { suite, keyId: KEY_ID.listSigner },
    kind: 'delta',
    listVersion: 6,
    baseVersion: 5,
    issuedAt: NOW_S - 60,
    expiresAt: NOW_S + DAY_S,
    ...denyColumns([
      { type: 'credential', id: 1_000_001, op: 'remove' },
      { type: 'credential', id: SERIAL, op: 'add' },
      { type: 'holder', id: 78, op: 'add' },
    ]),
    ...overrides,
  };
}

export function policyBody(suite: SuiteName, overrides: Partial<RiskPolicyBody> = {}): RiskPolicyBody {
  return {
    signer: { suite, keyId: KEY_ID.listSigner },
    policyVersion: 3,
    issuedAt: NOW_S - DAY_S,
    codeWindowS: CODE_WINDOW_S,
    clockSkewS: CLOCK_SKEW_S,
    maxOfflineS: 3 * DAY_S,
    maxListAgeS: DAY_S,
    perPaymentMax: fen(10_000),
    dayTotalMax: fen(50_000),
    dayCountMax: 20,
    onlineBudgetMs: 300,
    randomOnlinePer10k: 100,
    rules: [
      { scene: 'canteen', roles: ['student', 'teacher', 'staff'], campusOnly: false, perPaymentMax: fen(5_000) },
      { scene: 'bus', roles: ['student', 'staff'], campusOnly: true, perPaymentMax: fen(200) },
      { scene: 'gate', roles: ['student', 'teacher', 'staff'], campusOnly: true, perPaymentMax: fen(0) },
    ],
    ...overrides,
  };
}

export function certBodyFor(suite: SuiteName, terminal: Signer, overrides: Partial<TerminalCertificateBody> = {}): TerminalCertificateBody {
  return {
    caSuite: suite,
    caKeyId: KEY_ID.terminalCa,
    terminalSuite: terminal.suite,
    terminalId: TERMINAL_ID,
    merchantId: MERCHANT_ID,
    scene: 'canteen',
    campus: CAMPUS,
    location: '北区食堂 3 号窗口 / North canteen, window 3',
    notBefore: NOW_S - 30 * DAY_S,
    notAfter: NOW_S + 335 * DAY_S,
    terminalPublicKey: terminal.publicKey,
    ...overrides,
  };
}

async function buildWorld(suite: SuiteName, provider: ProviderName): Promise<World> {
  const crypto = PROVIDERS[provider];
  const [root, issuer, terminalCa, listSigner, device, terminal] = await Promise.all(
    ['root', 'issuer', 'terminal-ca', 'list-signer', 'device', 'terminal'].map((l) => fixedSigner(crypto, suite, l)),
  );
  if (!root || !issuer || !terminalCa || !listSigner || !device || !terminal) throw new Error('fixture keys');
  const trustBody = trustBodyFor(suite, { issuer, terminalCa, listSigner });
  const trustList = await signTrustList(trustBody, root);
  const credentialBody = credentialBodyFor(suite, device);
  const credential = await signCredential(credentialBody, issuer);
  const code = await makeCode(credential, device, NOW_S - 5, 1);
  const certBody = certBodyFor(suite, terminal);
  const cert = await signTerminalCertificate(certBody, terminalCa);
  const records = await chainRecords(terminal, crypto, 1, GENESIS_HASH, [
    { evidence: code.bytes },
    { kind: 'access', outcome: 'denied', amount: fen(0), medium: 'card', evidence: Uint8Array.of(1, 2, 3, 4) },
    { medium: 'card', path: 'online', amount: fen(300), evidence: Uint8Array.of(9, 9) },
  ]);
  return {
    suite,
    provider,
    crypto,
    nowS: NOW_S,
    root,
    roots: [{ keyId: KEY_ID.root, suite, publicKey: root.publicKey }],
    issuer,
    terminalCa,
    listSigner,
    device,
    terminal,
    trustBody,
    trustList,
    credentialBody,
    credential,
    code,
    check: { trust: trustBody, crypto, nowS: NOW_S, windowS: CODE_WINDOW_S, skewS: CLOCK_SKEW_S },
    certBody,
    cert,
    records,
    batchBytes: encodeUploadBatch(TERMINAL_ID, records),
    denyFull: await signDenyList(denyFullBody(suite), listSigner),
    denyDelta: await signDenyList(denyDeltaBody(suite), listSigner),
    policy: await signRiskPolicy(policyBody(suite), listSigner),
  };
}

const worlds = new Map<string, Promise<World>>();

/** The world for a suite and provider, built once per test file. */
export function world(suite: SuiteName, provider: ProviderName = 'node'): Promise<World> {
  const key = `${suite}/${provider}`;
  let w = worlds.get(key);
  if (w === undefined) {
    w = buildWorld(suite, provider);
    worlds.set(key, w);
  }
  return w;
}

/** The element at i, or a thrown Error: indexing under noUncheckedIndexedAccess without `!`. */
export function at<T>(list: ArrayLike<T>, i: number): T {
  const v = list[i];
  if (v === undefined) throw new Error(`index ${i} out of range (length ${list.length})`);
  return v;
}

export function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = bytes.slice();
  out[bit >> 3] = at(out, bit >> 3) ^ (0x80 >> (bit & 7));
  return out;
}

/** Runs fn and returns the ProtocolError it throws; fails the test if it returns or throws anything else. */
export function protocolErrorOf(fn: () => unknown): ProtocolError {
  let result: unknown;
  try {
    result = fn();
  } catch (e) {
    if (e instanceof ProtocolError) return e;
    throw new Error(`expected a ProtocolError, got ${String(e)}`, { cause: e });
  }
  throw new Error(`expected a ProtocolError, got a result: ${String(result)}`);
}

export async function protocolErrorOfAsync(fn: () => Promise<unknown>): Promise<ProtocolError> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof ProtocolError) return e;
    throw new Error(`expected a ProtocolError, got ${String(e)}`, { cause: e });
  }
  throw new Error('expected a ProtocolError, but it succeeded');
}

export function expectCode(fn: () => unknown, code: ProtocolErrorCode): ProtocolError {
  const e = protocolErrorOf(fn);
  expect(e.code, e.message).toBe(code);
  return e;
}

export async function expectCodeAsync(fn: () => Promise<unknown>, code: ProtocolErrorCode): Promise<ProtocolError> {
  const e = await protocolErrorOfAsync(fn);
  expect(e.code, e.message).toBe(code);
  return e;
}

export function isKnownCode(code: string): boolean {
  return (PROTOCOL_ERROR_CODES as readonly string[]).includes(code);
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
export const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));
