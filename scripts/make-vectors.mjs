#!/usr/bin/env node
/**
 * Writes the protocol test vectors in docs/vectors/: one JSON file per object type, for every suite,
 * valid and invalid, plus SHA256SUMS. Run after the build:
 *
 *   npm run build && node scripts/make-vectors.mjs
 *
 * Key material comes from the fixed private keys below, so anyone can check the vectors. ECDSA
 * (P-256) and SM2 signatures are randomised, so a re-run writes different but equally valid
 * signatures (and therefore different hashes and SHA256SUMS); Ed25519 bytes come out identical. The
 * files are committed: packages/protocol/test/vectors.test.ts checks the committed bytes.
 *
 * Every byte string here is built twice: once by the implementation (sign*, make*) and once by the
 * independent byte writer in this file, which follows the layout tables of docs/protocol.md. The
 * two must agree for every valid object, so the tables and the code cannot drift apart unnoticed.
 * Invalid objects come from the byte writer (fields out of range, re-signed so that only the
 * intended rule fails). Each vector is run through the implementation before it is written and the
 * script stops if the outcome differs from the one declared.
 */
import { deepStrictEqual } from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as P from '../packages/protocol/dist/node.js';

const OUT = new URL('../docs/vectors/', import.meta.url);
const crypto = P.nodeCrypto();

/** "Now" for verification: 2026-01-01T00:00:00Z. */
const T = 1_767_225_600;
const HOUR = 3_600;
const DAY = 86_400;
const SUITES = ['p256', 'ed25519', 'sm2'];
const SUITE_ID = { p256: 1, ed25519: 2, sm2: 3 };
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const SM2_N = 0xfffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54123n;
const ED25519_L = 2n ** 252n + 27742317777372353535851937790883648493n;
const WINDOW_S = 60;
const SKEW_S = 30;

/**
 * Fixed private keys: SHA-256 of the ASCII text "duet/vectors/<suite>/<role>", written out so that
 * nothing needs recomputing. The scalar d for P-256 and SM2 (each is in range), the seed for Ed25519.
 */
const PRIVATE_KEYS = {
  'p256/root': '0cbbe0319ecea8e1af7b118cedf3eadaf13b56e45e93e6d013f10d80ef97ba9e',
  'p256/root-unpinned': 'b8c97f7c368b5e4c929bb7c1b74b4dfc91fd0ab2ca5d901bf71d9dc8a53b48ab',
  'p256/issuer': '306161fcc68f40c05d4f298c22a0e376e5e5a1b107fc452c6c6475f90b309ae6',
  'p256/ca': '746b26b6ee2009e257369ec57c82e7eca7f1c70486d2340766fb827f4d940575',
  'p256/list': '8f00a71b73922ce6cb657453401f7c358dbc52f03adbed4eec4a9ea7f066a202',
  'p256/issuer-retired': '0748fe5d38f12f631981d1d0e8c4bfa9bcbe4c0a330d2c7344f9443262e7f5af',
  'p256/ca-retired': '5241ff98a5073ee292c917cda502fd8bf2d0daf450dad2d0711efa02d34783d0',
  'p256/list-retired': 'f09a17b21d8e542b0efdf04ede5b2c27de6fd1838aaee30480464b73ca77d8f0',
  'p256/device': '211b7853a3daeff6ccda768d637e4e2bb9a708f351edd9b323844788fbcafd79',
  'p256/device-other': '21d6bd577e2f6e18792f83e1a809667bf07a54092804f16b6150ff3dffc5182c',
  'p256/terminal': 'f82cda7d2882f3b753a321e36dbb16b1d540f6dea0a4691d671e904ca975998c',
  'p256/terminal-other': '8a8a020f53c8b016dc3ebbacf9b8dcab012e458deaa2a698c326ef6609b2f152',
  'ed25519/root': 'e8d9c66c5263514fb22f5df7c030aabe3f4848cc05de567ebe4cd5a7ab04a456',
  'ed25519/root-unpinned': '4aac60b22350f23d936d0fc6e131c83d15906ed82a7f6fbfe006be3ccd32fadf',
  'ed25519/issuer': '08da653175e3d89b5a817387cbdd252a1dd2a0468dd3fe27c7e66e2e300e4878',
  'ed25519/ca': '9311ae3e0ff1b0e07b20dea7cf6f484b0e9a0da378fa147ed0095fda5f9bba57',
  'ed25519/list': 'fdd47cd17fa9ea8bb4f6de6eb3255194328f289959fb07f0140f8df57834c38c',
  'ed25519/issuer-retired': '745ee6474b47bfeb6563f31c733b03d12cb9e386db9be4ae93c3641fe2f1145b',
  'ed25519/ca-retired': 'dacbb6e2c79f88d74d64019b80c1e5a189aac326b0eba227b5b8c50bd0a4dec1',
  'ed25519/list-retired': 'aca6c28f1ec8b347b53089077aec89a93c5b839d0a1f5adf88be13acfe63ffa8',
  'ed25519/device': 'de3310cec21bbf78bc01af2c8aeef967b5bf5b7ae0f1da14e5f50210572c53d5',
  'ed25519/device-other': 'c7e45f6489edeee76742d1a44b71e0e7ecb08a739f34171af308d19f35f6f075',
  'ed25519/terminal': '56120919c4c1b3a27445a25d39810131ef97177103cea4c91a5fb5be2d3dbbcc',
  'ed25519/terminal-other': '6b74e0ff092328fd2991573cbed77cfbe88f63c3eacd632b49e4a73d82e2938e',
  'sm2/root': 'd92e33737b47bc08c05be539081bdb8621650063607be489be02fb5d6fd45953',
  'sm2/root-unpinned': '53a34aa3b5f815db4b4df7a3f01ba98f6391f74fa19e66c0d7e7675db5ebcf68',
  'sm2/issuer': '3827aaee06f8f38751cfd49cd6f3eac77f803c1a9a3e66b8b1e54da2ae992202',
  'sm2/ca': '1bb8af77ee236c59b1e42ee58744e230718b34e6b69fefdb9e3036092431d26e',
  'sm2/list': 'b4fffba378556bd94b833844dbe4c8d3c3ec99a47a684c7afc028a228ed52289',
  'sm2/issuer-retired': '422846e797a5210e7b655a78c66734e79995392f76dbb830b5cad83bfc5326bc',
  'sm2/ca-retired': 'ca17e563c11210bbb76f0b915caad9b2daaf1a3694fc4860a6a908f97932da56',
  'sm2/list-retired': '890726cbb0d68e9097c6bf00771c3187fcb362d7fcddbb0dcc6f17bbdf9f8599',
  'sm2/device': 'e7b3f8f9ccec0dbacd3dc48c510c080db71088cd78d64262cacd3246434192ad',
  'sm2/device-other': '5da34799066ec08ccb342185cc19150c1cb6f3722fba57c872f225bceb78e8f3',
  'sm2/terminal': 'e2665904006f188615ac096db6b1265be09bda50b7b042b17d3cbf733946fdac',
  'sm2/terminal-other': '106ce369e82d85a5fda2cc58d7f062c954bc88c0930dc1a744e589952bc34f6d',
};

/** Root key ids (pinned in terminals, not listed) and the ids of the keys in each suite's trust list. */
const ROOT_ID = { p256: 1, ed25519: 2, sm2: 3 };
const ROLE_OFFSET = { issuer: 0x01, ca: 0x02, list: 0x03, 'issuer-retired': 0x11, 'ca-retired': 0x12, 'list-retired': 0x13 };
const keyId = (suite, role) => SUITE_ID[suite] * 0x100 + ROLE_OFFSET[role];
/** A key id that no trust list holds. */
const UNKNOWN_KEY_ID = 0x0999;

// ---------------------------------------------------------------------------------------------
// Bytes

const hex = (b) => P.toHex(b);
const unhex = (h) => P.fromHex(h);
const concat = (...parts) => P.concatBytes(...parts);
const utf8 = (s) => new TextEncoder().encode(s);
const sha256 = (b) => new Uint8Array(createHash('sha256').update(b).digest());

/** A byte writer without range checks: it writes exactly what it is told, so it can write invalid objects. */
class W {
  bytes = [];
  u8(v) {
    this.bytes.push(v & 0xff);
    return this;
  }
  u16(v) {
    return this.u8(v >>> 8).u8(v);
  }
  u32(v) {
    return this.u8(v >>> 24)
      .u8(v >>> 16)
      .u8(v >>> 8)
      .u8(v);
  }
  u48(v) {
    return this.u16(Math.floor(v / 2 ** 32)).u32(v % 2 ** 32);
  }
  raw(b) {
    for (const x of b) this.bytes.push(x);
    return this;
  }
  done() {
    return Uint8Array.from(this.bytes);
  }
}

const big = (b) => BigInt(`0x${hex(b) || '0'}`);
const be32 = (v) => unhex(v.toString(16).padStart(64, '0'));
const flipBit = (b, index, mask = 0x01) => {
  const out = b.slice();
  out[index] ^= mask;
  return out;
};
const setByte = (b, index, value) => {
  const out = b.slice();
  out[index] = value;
  return out;
};
const cut = (b, n = 1) => b.slice(0, b.length - n);
const appendZero = (b) => concat(b, new Uint8Array(1));

/** Replaces the 64-byte signature at the end of an object. */
const withSignature = (b, sig) => concat(b.subarray(0, b.length - 64), sig);
const sigOf = (b) => b.subarray(b.length - 64);

/** P-256: (r, n − s), the high-S twin of a valid low-S signature. It is a valid ECDSA signature that Duet refuses. */
function highS(b) {
  const sig = sigOf(b);
  return withSignature(b, concat(sig.subarray(0, 32), be32(P256_N - big(sig.subarray(32)))));
}
/** Ed25519: S + L, the non-canonical twin of a valid signature (RFC 8032 §5.1.7 requires S < L). */
function ed25519SPlusL(b) {
  const sig = sigOf(b);
  const s = big(sig.subarray(32).slice().reverse()) + ED25519_L;
  const le = be32(s).reverse();
  return withSignature(b, concat(sig.subarray(0, 32), le));
}
/** SM2: (r, n − s), the ECDSA-style twin, which is not a valid SM2 signature. */
function sm2NegS(b) {
  const sig = sigOf(b);
  return withSignature(b, concat(sig.subarray(0, 32), be32(SM2_N - big(sig.subarray(32)))));
}
/** SM2: s = 0, outside [1, n − 1]. */
function sm2ZeroS(b) {
  const sig = sigOf(b);
  return withSignature(b, concat(sig.subarray(0, 32), new Uint8Array(32)));
}

/** The malleability vectors for a suite: each must fail as bad_signature. */
function malleations(suite) {
  if (suite === 'p256')
    return [['high-s-signature', 'the (r, n - s) twin of the valid signature: valid ECDSA, refused by the low-S rule', highS]];
  if (suite === 'ed25519') return [['non-canonical-s', 'S + L in place of S: refused, RFC 8032 requires S < L', ed25519SPlusL]];
  return [
    ['negated-s', 'the ECDSA-style (r, n - s) twin: not a valid SM2 signature', sm2NegS],
    ['zero-s', 's = 0, outside [1, n - 1]', sm2ZeroS],
  ];
}

// ---------------------------------------------------------------------------------------------
// Keys

const signers = {};
for (const [name, d] of Object.entries(PRIVATE_KEYS)) {
  const suite = name.split('/')[0];
  signers[name] = await crypto.suite(suite).importPrivateKey(unhex(d));
}
const signer = (name) => {
  const s = signers[name];
  if (s === undefined) throw new Error(`no key ${name}`);
  return s;
};
const pub = (name) => signer(name).publicKey;

async function signRaw(label, signed, keyName) {
  return concat(signed, await signer(keyName).sign(concat(label, signed)));
}

function keysTable() {
  const out = {};
  for (const name of Object.keys(PRIVATE_KEYS)) {
    const [suite, role] = name.split('/');
    const entry = { suite, privateKey: PRIVATE_KEYS[name], publicKey: hex(pub(name)) };
    if (role === 'root') entry.keyId = ROOT_ID[suite];
    if (role in ROLE_OFFSET) entry.keyId = keyId(suite, role);
    out[name] = entry;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The independent byte writers (docs/protocol.md layout tables)

const sid = (s) => (typeof s === 'number' ? s : SUITE_ID[s]);
const ROLES = ['student', 'teacher', 'staff'];
const SCOPES = ['canteen', 'shop', 'bus', 'gate'];
const SCENES = ['canteen', 'shop', 'bus', 'gate'];
const KEY_ROLES = ['issuer', 'terminal_ca', 'list_signer'];
const index1 = (list, v) => (typeof v === 'number' ? v : list.indexOf(v) + 1);
const bits = (list, v) => (typeof v === 'number' ? v : v.reduce((acc, x) => acc | (1 << list.indexOf(x)), 0));

function writeTrustList(b) {
  const w = new W().u8(b.header ?? 0x11);
  w.u32(b.listVersion).u32(b.issuedAt).u32(b.expiresAt).u8(sid(b.rootSuite)).u16(b.rootKeyId);
  w.u8(b.keyCount ?? b.keys.length);
  for (const k of b.keys) {
    w.u16(k.keyId).u8(index1(KEY_ROLES, k.role)).u8(sid(k.suite)).u32(k.notBefore).u32(k.notAfter).raw(k.publicKey);
  }
  return w.done();
}

function writeCredential(b) {
  const w = new W().u8(b.header ?? 0x21);
  w.u8((sid(b.issuerSuite) << 4) | sid(b.deviceSuite))
    .u16(b.issuerKeyId)
    .u48(b.serial)
    .u48(b.holder);
  w.u16(b.campus).u8(index1(ROLES, b.role)).u8(bits(SCOPES, b.scopes)).raw(b.devicePublicKey);
  w.u32(b.limits.perPayment).u32(b.limits.offlineTotal).u16(b.limits.offlineCount).u32(b.notBefore).u32(b.notAfter);
  return w.done();
}

function writeCode(credentialBytes, time, counter, header = 0x31) {
  return new W().u8(header).raw(credentialBytes).u32(time).u32(counter).done();
}

function writeTerminalCert(b) {
  const loc = b.locationBytes ?? utf8(b.location);
  const w = new W().u8(b.header ?? 0x41);
  w.u8(sid(b.caSuite)).u16(b.caKeyId).u8(sid(b.terminalSuite)).u32(b.terminalId).u32(b.merchantId);
  w.u8(index1(SCENES, b.scene))
    .u16(b.campus)
    .u8(b.locationLength ?? loc.length)
    .raw(loc);
  w.u32(b.notBefore).u32(b.notAfter).raw(b.terminalPublicKey);
  return w.done();
}

function writeRecord(b) {
  const w = new W().u8(b.header ?? 0x51);
  w.u32(b.terminalId).u32(b.sequence).raw(b.previousHash).u32(b.time);
  w.u8(index1(['payment', 'access'], b.kind)).u8(index1(['offline', 'online'], b.path));
  w.u8(index1(['qr', 'card', 'face', 'tap'], b.medium)).u8(index1(['accepted', 'denied'], b.outcome));
  w.u32(b.amount).u32(b.merchantId).u32(b.trustListVersion).u32(b.denyListVersion).u32(b.policyVersion);
  w.u16(b.evidenceLength ?? b.evidence.length)
    .raw(b.evidence)
    .u8(sid(b.terminalSuite));
  return w.done();
}

function writeBatch(terminalId, records, { count = records.length } = {}) {
  const w = new W().u8(0x61).u32(terminalId).u16(count);
  for (const r of records) w.u16(r.length).raw(r);
  return w.done();
}

const DENY_TYPES = ['credential', 'holder', 'card'];
function writeDenyList(b) {
  const w = new W().u8(b.header ?? 0x71);
  w.u8(sid(b.signer.suite))
    .u16(b.signer.keyId)
    .u8(typeof b.kind === 'number' ? b.kind : b.kind === 'full' ? 1 : 2);
  w.u32(b.listVersion)
    .u32(b.baseVersion)
    .u32(b.issuedAt)
    .u32(b.expiresAt)
    .u32(b.count ?? b.entries.length);
  for (const e of b.entries) w.u8(e.tag ?? index1(DENY_TYPES, e.type) | (e.op === 'remove' ? 0x80 : 0)).u48(e.id);
  return w.done();
}

function writePolicy(b) {
  const w = new W().u8(b.header ?? 0x81);
  w.u8(sid(b.signer.suite)).u16(b.signer.keyId).u32(b.policyVersion).u32(b.issuedAt);
  w.u16(b.codeWindowS).u16(b.clockSkewS).u32(b.maxOfflineS).u32(b.maxListAgeS);
  w.u32(b.perPaymentMax).u32(b.dayTotalMax).u16(b.dayCountMax).u16(b.onlineBudgetMs).u16(b.randomOnlinePer10k);
  w.u8(b.ruleCount ?? b.rules.length);
  for (const r of b.rules) {
    w.u8(index1(SCENES, r.scene))
      .u8(bits(ROLES, r.roles))
      .u8(r.flags ?? (r.campusOnly ? 1 : 0))
      .u32(r.perPaymentMax);
  }
  return w.done();
}

// ---------------------------------------------------------------------------------------------
// Bodies of the valid objects

function trustBody(suite, over = {}) {
  const active = { notBefore: T - 180 * DAY, notAfter: T + 365 * DAY };
  const retired = { notBefore: T - 400 * DAY, notAfter: T - 30 * DAY };
  const key = (role, kr, window) => ({ keyId: keyId(suite, role), role: kr, suite, ...window, publicKey: pub(`${suite}/${role}`) });
  return {
    listVersion: 7,
    issuedAt: T - DAY,
    expiresAt: T + 30 * DAY,
    rootKeyId: ROOT_ID[suite],
    rootSuite: suite,
    keys: [
      key('issuer', 'issuer', active),
      key('ca', 'terminal_ca', active),
      key('list', 'list_signer', active),
      key('issuer-retired', 'issuer', retired),
      key('ca-retired', 'terminal_ca', retired),
      key('list-retired', 'list_signer', retired),
    ],
    ...over,
  };
}

const rootOf = (suite) => ({ keyId: ROOT_ID[suite], suite, publicKey: hex(pub(`${suite}/root`)) });

const trustLists = {};
for (const s of SUITES) {
  const list = await P.signTrustList(trustBody(s), signer(`${s}/root`));
  trustLists[s] = { object: list, json: { hex: hex(list.bytes), roots: [rootOf(s)], verifyAt: T } };
}

function credBody(issuerSuite, deviceSuite, over = {}) {
  return {
    issuerSuite,
    deviceSuite,
    issuerKeyId: keyId(issuerSuite, 'issuer'),
    serial: 0x0012_3456_7000 + SUITE_ID[issuerSuite] * 0x10 + SUITE_ID[deviceSuite],
    holder: 0x0000_0a0b_0c0d,
    campus: 7,
    role: 'student',
    scopes: ['canteen', 'bus'],
    devicePublicKey: pub(`${deviceSuite}/device`),
    limits: { perPayment: 5_000, offlineTotal: 20_000, offlineCount: 20 },
    notBefore: T - HOUR,
    notAfter: T - HOUR + 72 * HOUR,
    ...over,
  };
}

function certBody(caSuite, terminalSuite, over = {}) {
  return {
    caSuite,
    caKeyId: keyId(caSuite, 'ca'),
    terminalSuite,
    terminalId: 10_001,
    merchantId: 2_001,
    scene: 'canteen',
    campus: 7,
    location: 'North canteen, window 3',
    notBefore: T - 30 * DAY,
    notAfter: T + 335 * DAY,
    terminalPublicKey: pub(`${terminalSuite}/terminal`),
    ...over,
  };
}

function recordBody(suite, over = {}) {
  return {
    terminalId: 10_001,
    sequence: 1,
    previousHash: P.GENESIS_HASH,
    time: T,
    kind: 'payment',
    path: 'offline',
    medium: 'qr',
    outcome: 'accepted',
    amount: 1_250,
    merchantId: 2_001,
    trustListVersion: 7,
    denyListVersion: 12,
    policyVersion: 3,
    evidence: new Uint8Array(0),
    terminalSuite: suite,
    ...over,
  };
}

function denyBody(suite, over = {}) {
  return {
    signer: { suite, keyId: keyId(suite, 'list') },
    kind: 'full',
    listVersion: 12,
    baseVersion: 0,
    issuedAt: T - 10 * 60,
    expiresAt: T - 10 * 60 + DAY,
    entries: [
      { type: 'credential', id: 0x0012_3456_0001, op: 'add' },
      { type: 'credential', id: 0x0012_3456_0002, op: 'add' },
      { type: 'holder', id: 0x0000_0a0b_0c0d, op: 'add' },
      { type: 'card', id: 0x00ff_0000_0001, op: 'add' },
    ],
    ...over,
  };
}
const denyImpl = (b) => {
  const { entries, ...rest } = b;
  return { ...rest, ...P.denyColumns(entries) };
};

function policyBody(suite, over = {}) {
  return {
    signer: { suite, keyId: keyId(suite, 'list') },
    policyVersion: 3,
    issuedAt: T - DAY,
    codeWindowS: WINDOW_S,
    clockSkewS: SKEW_S,
    maxOfflineS: DAY,
    maxListAgeS: 2 * DAY,
    perPaymentMax: 10_000,
    dayTotalMax: 30_000,
    dayCountMax: 10,
    onlineBudgetMs: 300,
    randomOnlinePer10k: 100,
    rules: [
      { scene: 'canteen', roles: ['student', 'teacher', 'staff'], campusOnly: false, perPaymentMax: 10_000 },
      { scene: 'shop', roles: ['student', 'teacher', 'staff'], campusOnly: false, perPaymentMax: 5_000 },
      { scene: 'bus', roles: ['student', 'teacher', 'staff'], campusOnly: false, perPaymentMax: 300 },
      { scene: 'gate', roles: ['student', 'teacher', 'staff'], campusOnly: true, perPaymentMax: 0 },
    ],
    ...over,
  };
}

// ---------------------------------------------------------------------------------------------
// Decoded objects as JSON: byte fields in hex, the `bytes` and `signed` views left out (they are
// the vector's hex), deny-list columns as entries.

function plain(v) {
  if (v instanceof Uint8Array) return hex(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') {
    const out = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === 'bytes' || k === 'signed' || k === 'tags' || k === 'ids') continue;
      out[k] = plain(x);
    }
    if ('tags' in v && 'ids' in v) out.entries = P.denyEntries(v);
    return out;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// The checks each object gets, exactly as the test runs them (docs/vectors/README.md)

function trustFromContext(ctx) {
  return trustLists[ctx.trustList].object;
}

const CHECKS = {
  'trust-list': {
    decode: (b) => P.decodeTrustList(b),
    verify: (o, ctx) =>
      P.verifyTrustList(
        o,
        ctx.roots.map((r) => ({ keyId: r.keyId, suite: r.suite, publicKey: unhex(r.publicKey) })),
        crypto,
        ctx.nowS,
        ctx.heldVersion,
      ),
  },
  credential: {
    decode: (b) => P.decodeCredential(b),
    verify: async (o, ctx) => {
      await P.verifyCredentialSignature(o, trustFromContext(ctx), crypto);
      P.checkCredentialValidity(o, ctx.nowS, ctx.skewS);
    },
  },
  code: {
    decode: (b) => (typeof b === 'string' ? P.textToCode(b) : P.decodeCode(b)),
    verify: (o, ctx) => P.verifyCode(o, { trust: trustFromContext(ctx), crypto, nowS: ctx.nowS, windowS: ctx.windowS, skewS: ctx.skewS }),
  },
  'terminal-certificate': {
    decode: (b) => P.decodeTerminalCertificate(b),
    verify: (o, ctx) => P.verifyTerminalCertificate(o, trustFromContext(ctx), crypto, ctx.nowS),
  },
  record: {
    decode: (b) => P.decodeRecord(b),
    verify: async (o, ctx) => {
      await P.verifyRecordSignature(o, unhex(ctx.terminalPublicKey), crypto);
      P.verifyChain([o], ctx.afterSequence, unhex(ctx.afterHash), crypto);
    },
  },
  'upload-batch': {
    decode: (b) => P.decodeUploadBatch(b),
    verify: async (o, ctx) => {
      for (const r of o.records) await P.verifyRecordSignature(r, unhex(ctx.terminalPublicKey), crypto);
      P.verifyChain(o.records, ctx.afterSequence, unhex(ctx.afterHash), crypto);
    },
  },
  'deny-list': {
    decode: (b) => P.decodeDenyList(b),
    verify: (o, ctx) => P.verifyDenyList(o, trustFromContext(ctx), crypto, ctx.nowS),
  },
  'risk-policy': {
    decode: (b) => P.decodeRiskPolicy(b),
    verify: (o, ctx) => P.verifyRiskPolicy(o, trustFromContext(ctx), crypto),
  },
};

async function outcome(object, input, ctx) {
  const check = CHECKS[object];
  let decoded;
  try {
    decoded = check.decode(input);
  } catch (e) {
    if (e instanceof P.ProtocolError) return { stage: 'decode', error: e.code, detail: e.detail };
    throw e;
  }
  try {
    await check.verify(decoded, ctx);
  } catch (e) {
    if (e instanceof P.ProtocolError) return { stage: 'verify', error: e.code, detail: e.detail };
    throw e;
  }
  return { decoded };
}

// ---------------------------------------------------------------------------------------------
// Vector files

class Book {
  constructor(object, type, label, description) {
    this.object = object;
    this.type = type;
    this.label = label;
    this.description = description;
    this.vectors = [];
    this.names = new Set();
    this.trustUsed = new Set();
  }

  #name(name) {
    if (this.names.has(name)) throw new Error(`${this.object}: duplicate vector name ${name}`);
    this.names.add(name);
  }

  /** A valid vector: `fields` is what it must decode to, `signer` the key that re-encodes it. */
  async valid({ name, description, suite, suites, input, context, fields, signer, extra = {} }) {
    this.#name(name);
    if (context.trustList !== undefined) this.trustUsed.add(context.trustList);
    const got = await outcome(this.object, typeof input === 'string' ? input : input.slice(), context);
    if (got.decoded === undefined) throw new Error(`${this.object}/${name}: expected valid, got ${got.stage} ${got.error} (${got.detail})`);
    deepStrictEqual(plain(got.decoded), fields, `${this.object}/${name}: decoded fields differ from the body`);
    const v = { name, description, suite, suites: suites ?? [suite], valid: true };
    if (typeof input === 'string') v.text = input;
    else v.hex = hex(input);
    v.context = context;
    if (signer !== undefined) v.signer = signer;
    v.expect = { length: typeof input === 'string' ? undefined : input.length, ...extra, fields };
    this.vectors.push(v);
  }

  async invalid({ name, description, suite, suites, input, context, stage, error }) {
    this.#name(name);
    if (context.trustList !== undefined) this.trustUsed.add(context.trustList);
    const got = await outcome(this.object, typeof input === 'string' ? input : input.slice(), context);
    if (got.stage !== stage || got.error !== error) {
      const was = got.decoded !== undefined ? 'valid' : `${got.stage} ${got.error} (${got.detail})`;
      throw new Error(`${this.object}/${name}: expected ${stage} ${error}, got ${was}`);
    }
    const v = { name, description, suite, suites: suites ?? [suite], valid: false };
    if (typeof input === 'string') v.text = input;
    else v.hex = hex(input);
    v.context = context;
    v.expect = { stage, error };
    this.vectors.push(v);
  }

  json() {
    const lists = {};
    for (const s of [...this.trustUsed].sort()) lists[s] = trustLists[s].json;
    return {
      object: this.object,
      objectType: this.type,
      formatVersion: 1,
      header: this.type === undefined ? undefined : ((this.type << 4) | 1).toString(16).padStart(2, '0'),
      label: this.label === null ? null : { text: new TextDecoder().decode(this.label), hex: hex(this.label) },
      description: this.description,
      spec: 'docs/protocol.md',
      generator: 'scripts/make-vectors.mjs',
      regenerating:
        'P-256 and SM2 signatures are randomised: re-running the generator writes different but equally valid signatures (Ed25519 bytes come out identical). The committed files are the reference.',
      keys: keysTable(),
      trustLists: lists,
      vectors: this.vectors,
    };
  }
}

/** The vectors every signed object gets from one valid byte string: framing and signature faults. */
async function commonInvalid(book, { suite, suites, bytes, context, bodyFlip, otherType, skipTrailing }) {
  const type = bytes[0] >> 4;
  await book.invalid({
    name: `${suite}/empty`,
    description: 'no bytes at all',
    suite,
    suites,
    input: new Uint8Array(0),
    context,
    stage: 'decode',
    error: 'bad_length',
  });
  await book.invalid({
    name: `${suite}/truncated-by-one`,
    description: 'the last byte of the signature missing',
    suite,
    suites,
    input: cut(bytes),
    context,
    stage: 'decode',
    error: 'bad_length',
  });
  await book.invalid({
    name: `${suite}/header-only`,
    description: 'the header byte alone',
    suite,
    suites,
    input: bytes.subarray(0, 1),
    context,
    stage: 'decode',
    error: 'bad_length',
  });
  if (!skipTrailing) {
    await book.invalid({
      name: `${suite}/trailing-byte`,
      description: 'one zero byte after the signature',
      suite,
      suites,
      input: appendZero(bytes),
      context,
      stage: 'decode',
      error: 'trailing_bytes',
    });
  }
  await book.invalid({
    name: `${suite}/wrong-type`,
    description: `header 0x${((otherType << 4) | 1).toString(16)}: another object's type`,
    suite,
    suites,
    input: setByte(bytes, 0, (otherType << 4) | 1),
    context,
    stage: 'decode',
    error: 'unknown_type',
  });
  await book.invalid({
    name: `${suite}/version-2`,
    description: `header 0x${((type << 4) | 2).toString(16)}: format version 2 does not exist`,
    suite,
    suites,
    input: setByte(bytes, 0, (type << 4) | 2),
    context,
    stage: 'decode',
    error: 'unknown_version',
  });
  await book.invalid({
    name: `${suite}/version-0`,
    description: `header 0x${(type << 4).toString(16)}: format version 0 does not exist`,
    suite,
    suites,
    input: setByte(bytes, 0, type << 4),
    context,
    stage: 'decode',
    error: 'unknown_version',
  });
  await book.invalid({
    name: `${suite}/signature-bit-flipped`,
    description: 'the lowest bit of the last signature byte flipped',
    suite,
    suites,
    input: flipBit(bytes, bytes.length - 1),
    context,
    stage: 'verify',
    error: 'bad_signature',
  });
  await book.invalid({
    name: `${suite}/signature-first-bit-flipped`,
    description: 'the top bit of the first signature byte flipped',
    suite,
    suites,
    input: flipBit(bytes, bytes.length - 64, 0x80),
    context,
    stage: 'verify',
    error: 'bad_signature',
  });
  await book.invalid({
    name: `${suite}/body-bit-flipped`,
    description: `one bit of a signed field flipped (byte ${bodyFlip}): still decodes, no longer verifies`,
    suite,
    suites,
    input: flipBit(bytes, bodyFlip),
    context,
    stage: 'verify',
    error: 'bad_signature',
  });
  const sigSuite = suites?.[suites.length - 1] ?? suite;
  for (const [n, d, f] of malleations(sigSuite)) {
    await book.invalid({
      name: `${suite}/${n}`,
      description: d,
      suite,
      suites,
      input: f(bytes),
      context,
      stage: 'verify',
      error: 'bad_signature',
    });
  }
}

// ---------------------------------------------------------------------------------------------
// trust-list.json

async function trustListBook() {
  const book = new Book('trust-list', 1, P.TRUST_LIST_LABEL, 'Root-signed lists of issuer, terminal-CA and list-signing keys.');
  const rootName = (s) => `${s}/root`;
  for (const s of SUITES) {
    const body = trustBody(s);
    const list = trustLists[s].object;
    deepStrictEqual(hex(writeTrustList(body)), hex(list.signed), 'trust list layout');
    const ctx = { roots: [rootOf(s)], nowS: T, heldVersion: 7 };
    await book.valid({
      name: `${s}/valid`,
      description: 'six keys (active and retired issuer, terminal CA and list signer); held version equal to the list version is accepted',
      suite: s,
      input: list.bytes,
      context: ctx,
      fields: plain(list),
      signer: rootName(s),
    });
    await book.valid({
      name: `${s}/valid-last-second`,
      description: 'verified at expires_at - 1: the end is exclusive',
      suite: s,
      input: list.bytes,
      context: { ...ctx, nowS: body.expiresAt - 1 },
      fields: plain(list),
      signer: rootName(s),
    });
    await book.valid({
      name: `${s}/valid-first-second`,
      description: 'verified at issued_at: the start is inclusive; no held version',
      suite: s,
      input: list.bytes,
      context: { roots: [rootOf(s)], nowS: body.issuedAt },
      fields: plain(list),
      signer: rootName(s),
    });
    await commonInvalid(book, { suite: s, bytes: list.bytes, context: ctx, bodyFlip: 4, otherType: 2 });

    const raw = async (over, name, description, stage, error, context = ctx) => {
      const signed = writeTrustList({ ...body, ...over });
      await book.invalid({
        name: `${s}/${name}`,
        description,
        suite: s,
        input: await signRaw(P.TRUST_LIST_LABEL, signed, rootName(s)),
        context,
        stage,
        error,
      });
    };
    await raw({ rootSuite: 0 }, 'root-suite-0', 'root_suite 0 (reserved "none")', 'decode', 'unknown_suite');
    await raw({ rootSuite: 4 }, 'root-suite-4', 'root_suite 4 (unassigned)', 'decode', 'unknown_suite');
    await raw(
      { keys: body.keys.map((k, i) => (i === 1 ? { ...k, suite: 9 } : k)) },
      'key-suite-9',
      'the second key names suite 9',
      'decode',
      'unknown_suite',
    );
    await raw(
      { keys: body.keys.map((k, i) => (i === 0 ? { ...k, role: 4 } : k)) },
      'key-role-4',
      'key role 4 (only 1..3 exist)',
      'decode',
      'bad_value',
    );
    await raw({ keys: body.keys.map((k, i) => (i === 0 ? { ...k, role: 0 } : k)) }, 'key-role-0', 'key role 0', 'decode', 'bad_value');
    await raw(
      { keys: [body.keys[1], body.keys[0], ...body.keys.slice(2)] },
      'keys-out-of-order',
      'key ids not ascending: the list is not canonical',
      'decode',
      'not_canonical',
    );
    await raw(
      { keys: [body.keys[0], { ...body.keys[1], keyId: body.keys[0].keyId }, ...body.keys.slice(2)] },
      'duplicate-key-id',
      'two keys with one id',
      'decode',
      'not_canonical',
    );
    await raw({ expiresAt: body.issuedAt }, 'expires-at-issued', 'expires_at equal to issued_at', 'decode', 'bad_value');
    await raw(
      { keys: body.keys.map((k, i) => (i === 2 ? { ...k, notAfter: k.notBefore } : k)) },
      'key-empty-validity',
      'a key whose not_after equals its not_before',
      'decode',
      'bad_value',
    );
    await book.invalid({
      name: `${s}/key-count-too-high`,
      description: 'key_count 7 with six keys present and no signature: the bytes end where the seventh key would start',
      suite: s,
      input: writeTrustList({ ...body, keyCount: 7 }),
      context: ctx,
      stage: 'decode',
      error: 'bad_length',
    });
    await raw({ keyCount: 5 }, 'key-count-too-low', 'key_count 5 with six keys present', 'decode', 'trailing_bytes');
    await book.invalid({
      name: `${s}/key-count-65`,
      description: 'key_count 65 > TRUST_LIST_KEYS_MAX (64): refused before reading any key',
      suite: s,
      input: writeTrustList({ ...body, keyCount: 65, keys: [] }),
      context: ctx,
      stage: 'decode',
      error: 'too_large',
    });

    await book.invalid({
      name: `${s}/root-not-pinned`,
      description: 'the terminal pins no root with this id',
      suite: s,
      input: list.bytes,
      context: { ...ctx, roots: [{ ...rootOf(s), keyId: 99 }] },
      stage: 'verify',
      error: 'unknown_key',
    });
    const other = SUITES[(SUITES.indexOf(s) + 1) % 3];
    await book.invalid({
      name: `${s}/root-pinned-other-suite`,
      description: 'a root with this id is pinned, but for another suite',
      suite: s,
      input: list.bytes,
      context: { ...ctx, roots: [{ ...rootOf(other), keyId: ROOT_ID[s] }] },
      stage: 'verify',
      error: 'unknown_key',
    });
    await book.invalid({
      name: `${s}/signed-by-unpinned-root`,
      description: 'names the pinned root id but was signed by another key',
      suite: s,
      input: await signRaw(P.TRUST_LIST_LABEL, list.signed, `${s}/root-unpinned`),
      context: ctx,
      stage: 'verify',
      error: 'bad_signature',
    });
    await book.invalid({
      name: `${s}/wrong-label`,
      description: 'signed over the credential label instead of the trust-list label',
      suite: s,
      input: await signRaw(P.CREDENTIAL_LABEL, list.signed, rootName(s)),
      context: ctx,
      stage: 'verify',
      error: 'bad_signature',
    });
    await book.invalid({
      name: `${s}/expired`,
      description: 'verified at expires_at: the end is exclusive',
      suite: s,
      input: list.bytes,
      context: { ...ctx, nowS: body.expiresAt },
      stage: 'verify',
      error: 'expired',
    });
    await book.invalid({
      name: `${s}/not-yet-valid`,
      description: 'verified at issued_at - 1',
      suite: s,
      input: list.bytes,
      context: { ...ctx, nowS: body.issuedAt - 1 },
      stage: 'verify',
      error: 'not_yet_valid',
    });
    await book.invalid({
      name: `${s}/version-regressed`,
      description: 'the terminal already holds version 8',
      suite: s,
      input: list.bytes,
      context: { ...ctx, heldVersion: 8 },
      stage: 'verify',
      error: 'version_regressed',
    });
  }
  // One empty list, to show the minimum size.
  const empty = await P.signTrustList(trustBody('ed25519', { keys: [], listVersion: 1 }), signer('ed25519/root'));
  await book.valid({
    name: 'ed25519/valid-empty',
    description: 'no keys at all: 17 + 64 = 81 bytes, the smallest trust list',
    suite: 'ed25519',
    input: empty.bytes,
    context: { roots: [rootOf('ed25519')], nowS: T },
    fields: plain(empty),
    signer: 'ed25519/root',
  });
  return book;
}

// ---------------------------------------------------------------------------------------------
// credential.json

const credOffsets = (deviceSuite) => {
  const pk = P.PUBLIC_KEY_BYTES[deviceSuite];
  return {
    suites: 1,
    issuerKeyId: 2,
    serial: 4,
    holder: 10,
    campus: 16,
    role: 18,
    scopes: 19,
    key: 20,
    perPayment: 20 + pk,
    notBefore: 30 + pk,
  };
};

async function credentialBook() {
  const book = new Book('credential', 2, P.CREDENTIAL_LABEL, 'Issuer-signed credentials (the first certificate).');
  const pairs = [
    ['p256', 'p256'],
    ['ed25519', 'ed25519'],
    ['sm2', 'sm2'],
    ['ed25519', 'p256'],
    ['sm2', 'ed25519'],
    ['p256', 'sm2'],
  ];
  for (const [is, ds] of pairs) {
    const same = is === ds;
    const tag = same ? is : `${is}-issuer-${ds}-device`;
    const body = credBody(is, ds);
    const cred = await P.signCredential(body, signer(`${is}/issuer`));
    deepStrictEqual(hex(writeCredential(body)), hex(cred.signed), 'credential layout');
    deepStrictEqual(cred.bytes.length, P.credentialLength(ds));
    const ctx = { trustList: is, nowS: T, skewS: SKEW_S };
    const suites = same ? [is] : [is, ds];
    await book.valid({
      name: `${tag}/valid`,
      description: `issuer ${is}, device ${ds}; ${cred.bytes.length} bytes`,
      suite: is,
      suites,
      input: cred.bytes,
      context: ctx,
      fields: plain(cred),
      signer: `${is}/issuer`,
    });
    if (!same) continue;
    const s = is;
    const o = credOffsets(ds);
    await book.valid({
      name: `${s}/valid-at-not-before-minus-skew`,
      description: 'now = not_before - skew: the start is inclusive, widened by the skew',
      suite: s,
      input: cred.bytes,
      context: { ...ctx, nowS: body.notBefore - SKEW_S },
      fields: plain(cred),
      signer: `${s}/issuer`,
    });
    await book.valid({
      name: `${s}/valid-last-second`,
      description: 'now = not_after + skew - 1: the end is exclusive, widened by the skew',
      suite: s,
      input: cred.bytes,
      context: { ...ctx, nowS: body.notAfter + SKEW_S - 1 },
      fields: plain(cred),
      signer: `${s}/issuer`,
    });
    const longest = await P.signCredential(
      credBody(s, s, { notAfter: body.notBefore + 31 * DAY, role: 'staff', scopes: ['canteen', 'shop', 'bus', 'gate'], campus: 0xffff }),
      signer(`${s}/issuer`),
    );
    await book.valid({
      name: `${s}/valid-31-days-all-scopes`,
      description: 'validity exactly 31 days (the maximum), every scope, role staff, campus 65535',
      suite: s,
      input: longest.bytes,
      context: ctx,
      fields: plain(longest),
      signer: `${s}/issuer`,
    });
    await commonInvalid(book, { suite: s, bytes: cred.bytes, context: ctx, bodyFlip: o.campus + 1, otherType: 3 });

    const raw = async (over, name, description, stage, error, context = ctx, key = `${s}/issuer`) => {
      const signed = writeCredential({ ...body, ...over });
      await book.invalid({
        name: `${s}/${name}`,
        description,
        suite: s,
        input: await signRaw(P.CREDENTIAL_LABEL, signed, key),
        context,
        stage,
        error,
      });
    };
    await raw({ issuerSuite: 0 }, 'issuer-suite-0', 'issuer suite nibble 0', 'decode', 'unknown_suite');
    await raw({ issuerSuite: 4 }, 'issuer-suite-4', 'issuer suite nibble 4', 'decode', 'unknown_suite');
    await raw({ deviceSuite: 0xf }, 'device-suite-15', 'device suite nibble 15', 'decode', 'unknown_suite');
    await raw({ role: 0 }, 'role-0', 'role 0 (roles are 1..3)', 'decode', 'bad_value');
    await raw({ role: 4 }, 'role-4', 'role 4', 'decode', 'bad_value');
    await raw({ scopes: 0 }, 'no-scope', 'scopes 0: a credential must be usable somewhere', 'decode', 'bad_value');
    await raw({ scopes: 0x10 }, 'scope-bit-4', 'scope bit 4 (only bits 0..3 exist)', 'decode', 'bad_value');
    await raw({ serial: 0 }, 'serial-0', 'serial 0', 'decode', 'bad_value');
    await raw({ holder: 0 }, 'holder-0', 'holder 0', 'decode', 'bad_value');
    await raw(
      { limits: { perPayment: 20_001, offlineTotal: 20_000, offlineCount: 20 } },
      'per-payment-above-total',
      'per_payment 20001 > offline_total 20000',
      'decode',
      'bad_value',
    );
    await raw({ limits: { ...body.limits, offlineCount: 0 } }, 'offline-count-0', 'offline_count 0', 'decode', 'bad_value');
    await raw(
      { notAfter: body.notBefore + 31 * DAY + 1 },
      'validity-31-days-plus-1',
      'validity one second longer than 31 days',
      'decode',
      'bad_value',
    );
    await raw({ notAfter: body.notBefore }, 'empty-validity', 'not_after equal to not_before', 'decode', 'bad_value');
    await raw({ notAfter: body.notBefore - 1 }, 'reversed-validity', 'not_after before not_before', 'decode', 'bad_value');

    await raw({ issuerKeyId: UNKNOWN_KEY_ID }, 'unknown-issuer-key', 'issuer key id 0x0999 is in no trust list', 'verify', 'unknown_key');
    await raw(
      { issuerKeyId: keyId(s, 'ca') },
      'terminal-ca-key-as-issuer',
      'names the terminal-CA key (signed by it): a CA key may not sign credentials',
      'verify',
      'wrong_key_role',
      ctx,
      `${s}/ca`,
    );
    await raw(
      { issuerKeyId: keyId(s, 'list') },
      'list-key-as-issuer',
      'names the list-signing key (signed by it)',
      'verify',
      'wrong_key_role',
      ctx,
      `${s}/list`,
    );
    const other = SUITES[(SUITES.indexOf(s) + 1) % 3];
    await raw(
      { issuerSuite: other },
      'issuer-suite-differs-from-key',
      `says issuer suite ${other} (signed by the ${other} issuer key) but names the ${s} issuer key id`,
      'verify',
      'unknown_suite',
      ctx,
      `${other}/issuer`,
    );
    await raw(
      { issuerKeyId: keyId(s, 'issuer-retired') },
      'issuer-key-retired',
      "signed by the retired issuer key, whose validity ended before the credential's not_before",
      'verify',
      'expired',
      ctx,
      `${s}/issuer-retired`,
    );
    await book.invalid({
      name: `${s}/signed-by-other-key`,
      description: 'names the issuer key but was signed by the device key',
      suite: s,
      input: await signRaw(P.CREDENTIAL_LABEL, cred.signed, `${s}/device`),
      context: ctx,
      stage: 'verify',
      error: 'bad_signature',
    });
    await book.invalid({
      name: `${s}/code-label`,
      description: 'issuer signature made over the code label: domain separation refuses it',
      suite: s,
      input: await signRaw(P.CODE_LABEL, cred.signed, `${s}/issuer`),
      context: ctx,
      stage: 'verify',
      error: 'bad_signature',
    });
    await book.invalid({
      name: `${s}/expired`,
      description: 'now = not_after + skew',
      suite: s,
      input: cred.bytes,
      context: { ...ctx, nowS: body.notAfter + SKEW_S },
      stage: 'verify',
      error: 'expired',
    });
    await book.invalid({
      name: `${s}/not-yet-valid`,
      description: 'now = not_before - skew - 1',
      suite: s,
      input: cred.bytes,
      context: { ...ctx, nowS: body.notBefore - SKEW_S - 1 },
      stage: 'verify',
      error: 'not_yet_valid',
    });
  }
  return book;
}

// ---------------------------------------------------------------------------------------------
// code.json

const validCodes = {};

async function codeBook() {
  const book = new Book('code', 3, P.CODE_LABEL, 'Device-signed codes (the second certificate) and their QR text form.');
  const pairs = [
    ['p256', 'p256'],
    ['ed25519', 'ed25519'],
    ['sm2', 'sm2'],
    ['p256', 'ed25519'],
    ['ed25519', 'sm2'],
    ['sm2', 'p256'],
  ];
  const time = T - 5;
  const counter = 42;
  for (const [is, ds] of pairs) {
    const same = is === ds;
    const tag = same ? ds : `${is}-issuer-${ds}-device`;
    const suites = same ? [ds] : [is, ds];
    const cred = await P.signCredential(credBody(is, ds), signer(`${is}/issuer`));
    const code = await P.makeCode(cred, signer(`${ds}/device`), time, counter);
    deepStrictEqual(hex(writeCode(cred.bytes, time, counter)), hex(code.signed), 'code layout');
    const ctx = { trustList: is, nowS: T, windowS: WINDOW_S, skewS: SKEW_S };
    const text = P.codeToText(code);
    const qr = { qr: text, qrChars: text.length };
    await book.valid({
      name: `${tag}/valid`,
      description: `issuer ${is}, device ${ds}: ${code.bytes.length} bytes, ${text.length} QR characters`,
      suite: ds,
      suites,
      input: code.bytes,
      context: ctx,
      fields: plain(code),
      signer: `${ds}/device`,
      extra: qr,
    });
    if (!same) continue;
    const s = ds;
    validCodes[s] = code;
    await book.valid({
      name: `${s}/valid-qr-text`,
      description: 'the same code as scanned QR text',
      suite: s,
      input: text,
      context: ctx,
      fields: plain(code),
      signer: `${s}/device`,
      extra: qr,
    });
    await book.valid({
      name: `${s}/valid-qr-text-crlf`,
      description: 'QR text ending in CR LF, as a keyboard-wedge scanner sends it',
      suite: s,
      input: `${text}\r\n`,
      context: ctx,
      fields: plain(code),
      signer: `${s}/device`,
      extra: qr,
    });
    await book.valid({
      name: `${s}/valid-oldest`,
      description: 'code time = now - window - skew: the oldest code still fresh (inclusive)',
      suite: s,
      input: code.bytes,
      context: { ...ctx, nowS: time + WINDOW_S + SKEW_S },
      fields: plain(code),
      signer: `${s}/device`,
      extra: qr,
    });
    await book.valid({
      name: `${s}/valid-newest`,
      description: 'code time = now + skew: the furthest-ahead code still accepted (inclusive)',
      suite: s,
      input: code.bytes,
      context: { ...ctx, nowS: time - SKEW_S },
      fields: plain(code),
      signer: `${s}/device`,
      extra: qr,
    });
    const maxCounter = await P.makeCode(cred, signer(`${s}/device`), time, 0xffff_ffff);
    await book.valid({
      name: `${s}/valid-counter-max`,
      description: 'counter 4294967295 (CODE_COUNTER_MAX)',
      suite: s,
      input: maxCounter.bytes,
      context: ctx,
      fields: plain(maxCounter),
      signer: `${s}/device`,
      extra: { qr: P.codeToText(maxCounter), qrChars: P.codeToText(maxCounter).length },
    });
    // The credential ends 8 bytes later than its own length inside the code: time is at 1 + credential length.
    const credLen = cred.bytes.length;
    await commonInvalid(book, { suite: s, bytes: code.bytes, context: ctx, bodyFlip: 1 + credLen + 7, otherType: 2, skipTrailing: true });
    if (code.bytes.length === P.CODE_MAX_BYTES) {
      await book.invalid({
        name: `${s}/trailing-byte`,
        description: `one byte after the signature: 209 bytes > CODE_MAX_BYTES (208), refused before parsing`,
        suite: s,
        input: appendZero(code.bytes),
        context: ctx,
        stage: 'decode',
        error: 'too_large',
      });
    } else {
      await book.invalid({
        name: `${s}/trailing-byte`,
        description: 'one byte after the signature (208 bytes: within CODE_MAX_BYTES, so the parser finds it)',
        suite: s,
        input: appendZero(code.bytes),
        context: ctx,
        stage: 'decode',
        error: 'trailing_bytes',
      });
    }
    await book.invalid({
      name: `${s}/a-credential-is-not-a-code`,
      description: 'the bare credential presented as a code',
      suite: s,
      input: cred.bytes,
      context: ctx,
      stage: 'decode',
      error: 'unknown_type',
    });
    await book.invalid({
      name: `${s}/inner-header-wrong`,
      description: 'the embedded credential has header 0x31 (code) instead of 0x21',
      suite: s,
      input: setByte(code.bytes, 1, 0x31),
      context: ctx,
      stage: 'decode',
      error: 'unknown_type',
    });
    await book.invalid({
      name: `${s}/inner-device-suite-0`,
      description: 'the embedded credential names device suite 0',
      suite: s,
      input: setByte(code.bytes, 2, (SUITE_ID[s] << 4) | 0),
      context: ctx,
      stage: 'decode',
      error: 'unknown_suite',
    });

    const resignCode = async (credBytes, t = time, c = counter, device = `${s}/device`) =>
      signRaw(P.CODE_LABEL, writeCode(credBytes, t, c), device);
    await book.invalid({
      name: `${s}/other-device`,
      description: 'signed by a device key that is not the one in the credential',
      suite: s,
      input: await resignCode(cred.bytes, time, counter, `${s}/device-other`),
      context: ctx,
      stage: 'verify',
      error: 'bad_signature',
    });
    await book.invalid({
      name: `${s}/credential-signature-flipped`,
      description: 'a bit of the issuer signature inside the code flipped, the device signature remade over it',
      suite: s,
      input: await resignCode(flipBit(cred.bytes, credLen - 1)),
      context: ctx,
      stage: 'verify',
      error: 'bad_signature',
    });
    for (const [n, d, f] of malleations(s)) {
      await book.invalid({
        name: `${s}/credential-${n}`,
        description: `issuer signature inside the code: ${d}; the device signature remade over it`,
        suite: s,
        input: await resignCode(f(cred.bytes)),
        context: ctx,
        stage: 'verify',
        error: 'bad_signature',
      });
    }
    const credRaw = async (over, key = `${s}/issuer`) => signRaw(P.CREDENTIAL_LABEL, writeCredential(credBody(s, s, over)), key);
    await book.invalid({
      name: `${s}/unknown-issuer-key`,
      description: 'the credential names issuer key 0x0999, which is in no trust list',
      suite: s,
      input: await resignCode(await credRaw({ issuerKeyId: UNKNOWN_KEY_ID })),
      context: ctx,
      stage: 'verify',
      error: 'unknown_key',
    });
    await book.invalid({
      name: `${s}/code-from-the-future`,
      description: 'code time = now + skew + 1',
      suite: s,
      input: code.bytes,
      context: { ...ctx, nowS: time - SKEW_S - 1 },
      stage: 'verify',
      error: 'not_yet_valid',
    });
    await book.invalid({
      name: `${s}/code-too-old`,
      description: 'code time = now - window - skew - 1',
      suite: s,
      input: code.bytes,
      context: { ...ctx, nowS: time + WINDOW_S + SKEW_S + 1 },
      stage: 'verify',
      error: 'expired',
    });
    // A credential that ends at T + 10: the terminal at T + 20 still accepts the credential (skew 30).
    const ending = await P.signCredential(credBody(s, s, { notAfter: T + 10 }), signer(`${s}/issuer`));
    const lastGood = await P.makeCode(ending, signer(`${s}/device`), T + 9, 7);
    await book.valid({
      name: `${s}/valid-made-last-second-of-credential`,
      description: 'credential ends at T+10, code made at T+9, checked at T+20 (credential still valid within skew)',
      suite: s,
      input: lastGood.bytes,
      context: { ...ctx, nowS: T + 20 },
      fields: plain(lastGood),
      signer: `${s}/device`,
      extra: { qr: P.codeToText(lastGood), qrChars: P.codeToText(lastGood).length },
    });
    await book.invalid({
      name: `${s}/made-after-credential-ended`,
      description:
        'credential ends at T+10, code made at T+10 (no skew on this end: an expired credential makes no codes), checked at T+20',
      suite: s,
      input: (await P.makeCode(ending, signer(`${s}/device`), T + 10, 7)).bytes,
      context: { ...ctx, nowS: T + 20 },
      stage: 'verify',
      error: 'expired',
    });
    const starting = await P.signCredential(credBody(s, s, { notBefore: T - 10 }), signer(`${s}/issuer`));
    const early = await P.makeCode(starting, signer(`${s}/device`), T - 40, 1);
    await book.valid({
      name: `${s}/valid-made-skew-before-credential`,
      description: 'credential starts at T-10, code made at T-40 (= not_before - skew), checked at T',
      suite: s,
      input: early.bytes,
      context: ctx,
      fields: plain(early),
      signer: `${s}/device`,
      extra: { qr: P.codeToText(early), qrChars: P.codeToText(early).length },
    });
    await book.invalid({
      name: `${s}/made-before-credential-began`,
      description: 'credential starts at T-10, code made at T-41 (= not_before - skew - 1), checked at T: raised as expired',
      suite: s,
      input: (await P.makeCode(starting, signer(`${s}/device`), T - 41, 1)).bytes,
      context: ctx,
      stage: 'verify',
      error: 'expired',
    });
    await book.invalid({
      name: `${s}/credential-expired`,
      description: 'checked at credential not_after + skew (the code itself claims to be fresh)',
      suite: s,
      input: (await P.makeCode(cred, signer(`${s}/device`), cred.notAfter + SKEW_S - 1, 9)).bytes,
      context: { ...ctx, nowS: cred.notAfter + SKEW_S },
      stage: 'verify',
      error: 'expired',
    });
    await book.invalid({
      name: `${s}/credential-not-yet-valid`,
      description: 'checked at credential not_before - skew - 1',
      suite: s,
      input: (await P.makeCode(cred, signer(`${s}/device`), cred.notBefore - SKEW_S, 9)).bytes,
      context: { ...ctx, nowS: cred.notBefore - SKEW_S - 1 },
      stage: 'verify',
      error: 'not_yet_valid',
    });

    // QR text faults.
    const body45 = text.slice(P.QR_PREFIX.length);
    const qrBad = async (name, description, input, error) =>
      book.invalid({ name: `${s}/qr-${name}`, description, suite: s, input, context: ctx, stage: 'decode', error });
    await qrBad('lower-case-prefix', 'prefix "du1:"', `du1:${body45}`, 'bad_prefix');
    await qrBad('other-prefix', 'prefix "DU2:"', `DU2:${body45}`, 'bad_prefix');
    await qrBad('leading-space', 'a space before the prefix (only trailing CR/LF is forgiven)', ` ${text}`, 'bad_prefix');
    await qrBad('no-prefix', 'Base45 without the prefix', body45, 'bad_prefix');
    await qrBad('empty', 'the empty string', '', 'bad_prefix');
    await qrBad(
      'trailing-space',
      'a space after the text: space is a Base45 character, so the length is 1 mod 3',
      `${text} `,
      'bad_encoding',
    );
    await qrBad('trailing-tab', 'a TAB after the text (not forgiven, not Base45)', `${text}\t`, 'bad_encoding');
    await qrBad(
      'lower-case-data',
      'one Base45 character in lower case',
      `${P.QR_PREFIX}${body45.slice(0, 9)}${body45[9].toLowerCase() === body45[9] ? 'a' : body45[9].toLowerCase()}${body45.slice(10)}`,
      'bad_encoding',
    );
    await qrBad(
      'crlf-inside',
      'CR LF in the middle of the text',
      `${P.QR_PREFIX}${body45.slice(0, 30)}\r\n${body45.slice(30)}`,
      'bad_encoding',
    );
    await qrBad(
      'group-above-65535',
      'the first three characters ":::" = 91124 > 65535',
      `${P.QR_PREFIX}:::${body45.slice(3)}`,
      'bad_encoding',
    );
    await qrBad(
      'too-long',
      `${P.QR_TEXT_MAX_CHARS + 1} characters (QR_TEXT_MAX_CHARS is ${P.QR_TEXT_MAX_CHARS})`,
      text + '\n'.repeat(P.QR_TEXT_MAX_CHARS + 1 - text.length),
      'too_large',
    );
    await qrBad(
      'decodes-to-209-bytes',
      'valid Base45 of 209 bytes: larger than CODE_MAX_BYTES',
      P.QR_PREFIX + P.base45Encode(appendZero(validCodes.p256?.bytes ?? code.bytes)),
      'too_large',
    );
    if (code.bytes.length % 2 === 1) {
      await qrBad('last-group-above-255', 'the last pair ":: " decodes to 2024 > 255', `${text.slice(0, -2)}::`, 'bad_encoding');
    }
    await book.invalid({
      name: `${s}/qr-multiple-line-ends`,
      description: 'any run of CR and LF at the end is dropped; the code inside is then checked as usual (here: too old)',
      suite: s,
      input: `${text}\n\r\r\n`,
      context: { ...ctx, nowS: time + WINDOW_S + SKEW_S + 1 },
      stage: 'verify',
      error: 'expired',
    });
  }
  return book;
}

// ---------------------------------------------------------------------------------------------
// terminal-certificate.json

async function terminalCertBook() {
  const book = new Book('terminal-certificate', 4, P.TERMINAL_CERT_LABEL, 'Terminal-CA-signed terminal certificates (the PSAM role).');
  const pairs = [
    ['p256', 'p256'],
    ['ed25519', 'ed25519'],
    ['sm2', 'sm2'],
    ['p256', 'sm2'],
    ['sm2', 'ed25519'],
  ];
  for (const [cs, ts] of pairs) {
    const same = cs === ts;
    const tag = same ? cs : `${cs}-ca-${ts}-terminal`;
    const body = certBody(cs, ts);
    const cert = await P.signTerminalCertificate(body, signer(`${cs}/ca`));
    deepStrictEqual(hex(writeTerminalCert(body)), hex(cert.signed), 'terminal certificate layout');
    const ctx = { trustList: cs, nowS: T };
    await book.valid({
      name: `${tag}/valid`,
      description: `CA ${cs}, terminal ${ts}, ASCII location; ${cert.bytes.length} bytes`,
      suite: cs,
      suites: same ? [cs] : [cs, ts],
      input: cert.bytes,
      context: ctx,
      fields: plain(cert),
      signer: `${cs}/ca`,
    });
    if (!same) continue;
    const s = cs;
    const zh = await P.signTerminalCertificate(
      certBody(s, s, { location: '北区食堂 3号窗口', scene: 'bus', merchantId: 0 }),
      signer(`${s}/ca`),
    );
    await book.valid({
      name: `${s}/valid-chinese-location`,
      description: `UTF-8 location "北区食堂 3号窗口" (${utf8('北区食堂 3号窗口').length} bytes), scene bus, merchant 0`,
      suite: s,
      input: zh.bytes,
      context: ctx,
      fields: plain(zh),
      signer: `${s}/ca`,
    });
    const max = await P.signTerminalCertificate(certBody(s, s, { location: 'x'.repeat(64), scene: 'gate' }), signer(`${s}/ca`));
    await book.valid({
      name: `${s}/valid-64-byte-location`,
      description: 'location of exactly LABEL_MAX_BYTES (64) bytes; scene gate',
      suite: s,
      input: max.bytes,
      context: ctx,
      fields: plain(max),
      signer: `${s}/ca`,
    });
    const bom = await P.signTerminalCertificate(certBody(s, s, { location: '\uFEFFWest gate' }), signer(`${s}/ca`));
    await book.valid({
      name: `${s}/valid-location-starting-u-feff`,
      description: 'location "\\uFEFFWest gate": a leading U+FEFF (bytes ef bb bf) is text, kept, not stripped as a byte-order mark',
      suite: s,
      input: bom.bytes,
      context: ctx,
      fields: plain(bom),
      signer: `${s}/ca`,
    });
    const none = await P.signTerminalCertificate(certBody(s, s, { location: '', scene: 'shop' }), signer(`${s}/ca`));
    await book.valid({
      name: `${s}/valid-empty-location`,
      description: 'empty location; scene shop; verified at not_after - 1',
      suite: s,
      input: none.bytes,
      context: { ...ctx, nowS: body.notAfter - 1 },
      fields: plain(none),
      signer: `${s}/ca`,
    });
    await commonInvalid(book, { suite: s, bytes: cert.bytes, context: ctx, bodyFlip: 8, otherType: 5 });
    const raw = async (over, name, description, stage, error, key = `${s}/ca`, context = ctx) => {
      const signed = writeTerminalCert({ ...body, ...over });
      await book.invalid({
        name: `${s}/${name}`,
        description,
        suite: s,
        input: await signRaw(P.TERMINAL_CERT_LABEL, signed, key),
        context,
        stage,
        error,
      });
    };
    await raw({ caSuite: 0 }, 'ca-suite-0', 'ca_suite 0', 'decode', 'unknown_suite');
    await raw({ terminalSuite: 4 }, 'terminal-suite-4', 'terminal_suite 4', 'decode', 'unknown_suite');
    await raw({ terminalId: 0 }, 'terminal-id-0', 'terminal_id 0', 'decode', 'bad_value');
    await raw({ scene: 0 }, 'scene-0', 'scene 0 (scenes are 1..4)', 'decode', 'bad_value');
    await raw({ scene: 5 }, 'scene-5', 'scene 5', 'decode', 'bad_value');
    await raw({ location: 'y'.repeat(65) }, 'location-65-bytes', 'location of 65 bytes > LABEL_MAX_BYTES (64)', 'decode', 'too_large');
    await raw(
      { locationBytes: Uint8Array.of(0x4e, 0xff, 0x33) },
      'location-not-utf8',
      'location bytes 4e ff 33: not UTF-8',
      'decode',
      'bad_encoding',
    );
    await raw(
      { locationBytes: Uint8Array.of(0xe5, 0x8c) },
      'location-cut-utf8',
      'location ends inside a three-byte UTF-8 sequence',
      'decode',
      'bad_encoding',
    );
    await raw({ notAfter: body.notBefore }, 'empty-validity', 'not_after equal to not_before', 'decode', 'bad_value');
    await raw({ caKeyId: UNKNOWN_KEY_ID }, 'unknown-ca-key', 'ca_key_id 0x0999 is in no trust list', 'verify', 'unknown_key');
    await raw(
      { caKeyId: keyId(s, 'issuer') },
      'issuer-key-as-ca',
      'names (and is signed by) the issuer key',
      'verify',
      'wrong_key_role',
      `${s}/issuer`,
    );
    const other = SUITES[(SUITES.indexOf(s) + 1) % 3];
    await raw(
      { caSuite: other },
      'ca-suite-differs-from-key',
      `says CA suite ${other} (signed by the ${other} CA key) but names the ${s} CA key id`,
      'verify',
      'unknown_suite',
      `${other}/ca`,
    );
    await raw(
      { caKeyId: keyId(s, 'ca-retired') },
      'ca-key-retired',
      "signed by the retired CA key, whose validity ended before the certificate's not_before",
      'verify',
      'expired',
      `${s}/ca-retired`,
    );
    await book.invalid({
      name: `${s}/expired`,
      description: 'verified at not_after (no skew for terminal certificates)',
      suite: s,
      input: cert.bytes,
      context: { ...ctx, nowS: body.notAfter },
      stage: 'verify',
      error: 'expired',
    });
    await book.invalid({
      name: `${s}/not-yet-valid`,
      description: 'verified at not_before - 1',
      suite: s,
      input: cert.bytes,
      context: { ...ctx, nowS: body.notBefore - 1 },
      stage: 'verify',
      error: 'not_yet_valid',
    });
  }
  return book;
}

// ---------------------------------------------------------------------------------------------
// record.json and upload-batch.json

/** A chain of five records per suite: sequence 1..5 from the genesis hash. */
const chains = {};
async function buildChain(s) {
  const key = signer(`${s}/terminal`);
  const bodies = [
    recordBody(s, { evidence: validCodes[s].bytes }),
    recordBody(s, { kind: 'access', medium: 'card', outcome: 'denied', amount: 0, time: T + 4, evidence: utf8('card:00ff00000001') }),
    recordBody(s, { path: 'online', medium: 'face', amount: 800, time: T + 9, evidence: unhex('0102030405060708090a0b0c') }),
    recordBody(s, { kind: 'access', medium: 'tap', outcome: 'accepted', amount: 0, time: T + 15, evidence: new Uint8Array(0) }),
    recordBody(s, { amount: 0xffff_ffff, medium: 'card', time: T + 20, evidence: new Uint8Array(P.RECORD_EVIDENCE_MAX_BYTES).fill(0xee) }),
  ];
  const records = [];
  let prev = P.GENESIS_HASH;
  for (let i = 0; i < bodies.length; i++) {
    const body = { ...bodies[i], sequence: i + 1, previousHash: prev };
    const rec = await P.signRecord(body, key);
    deepStrictEqual(hex(writeRecord(body)), hex(rec.signed), 'record layout');
    records.push({ body, rec, after: { sequence: i, hash: prev } });
    prev = P.recordHash(rec, crypto);
    deepStrictEqual(hex(prev), hex(sha256(rec.bytes)));
  }
  chains[s] = records;
}

async function recordBook() {
  const book = new Book('record', 5, P.RECORD_LABEL, 'Terminal-signed journal records, chained by SHA-256.');
  const what = [
    'payment, offline, QR, with the whole code as evidence',
    'access event, card, denied, amount 0',
    'payment decided online, face, 12 bytes of evidence',
    'access event, phone tap, accepted, no evidence',
    'payment of 4294967295 fen (the u32 maximum), card, 1024 bytes of evidence (RECORD_EVIDENCE_MAX_BYTES)',
  ];
  for (const s of SUITES) {
    await buildChain(s);
    const ctxOf = (i) => ({
      terminalPublicKey: hex(pub(`${s}/terminal`)),
      afterSequence: chains[s][i].after.sequence,
      afterHash: hex(chains[s][i].after.hash),
    });
    for (let i = 0; i < chains[s].length; i++) {
      const { rec } = chains[s][i];
      await book.valid({
        name: `${s}/valid-sequence-${i + 1}`,
        description: `${what[i]}; ${rec.bytes.length} bytes`,
        suite: s,
        input: rec.bytes,
        context: ctxOf(i),
        fields: plain(rec),
        signer: `${s}/terminal`,
        extra: { hash: hex(sha256(rec.bytes)) },
      });
    }
    const { rec, body } = chains[s][2];
    const ctx = ctxOf(2);
    await commonInvalid(book, { suite: s, bytes: rec.bytes, context: ctx, bodyFlip: 1 + 4 + 4 + 32 + 4 + 4 + 3, otherType: 6 });
    const raw = async (over, name, description, stage, error, key = `${s}/terminal`, context = ctx) => {
      const signed = writeRecord({ ...body, ...over });
      await book.invalid({
        name: `${s}/${name}`,
        description,
        suite: s,
        input: await signRaw(P.RECORD_LABEL, signed, key),
        context,
        stage,
        error,
      });
    };
    await raw({ terminalId: 0 }, 'terminal-id-0', 'terminal_id 0', 'decode', 'bad_value');
    await raw({ sequence: 0 }, 'sequence-0', 'sequence 0 (sequences start at 1)', 'decode', 'bad_value');
    await raw(
      { sequence: 1 },
      'sequence-1-not-genesis',
      'sequence 1 whose previous_hash is not the genesis hash (32 zero bytes)',
      'decode',
      'bad_value',
    );
    await raw({ kind: 0 }, 'kind-0', 'kind 0', 'decode', 'bad_value');
    await raw({ kind: 3 }, 'kind-3', 'kind 3', 'decode', 'bad_value');
    await raw({ path: 3 }, 'path-3', 'path 3', 'decode', 'bad_value');
    await raw({ medium: 0 }, 'medium-0', 'medium 0', 'decode', 'bad_value');
    await raw({ medium: 5 }, 'medium-5', 'medium 5', 'decode', 'bad_value');
    await raw({ outcome: 3 }, 'outcome-3', 'outcome 3', 'decode', 'bad_value');
    await raw(
      { outcome: 'denied' },
      'payment-denied',
      'a payment record with outcome denied: declined payments are not journaled',
      'decode',
      'bad_value',
    );
    await raw({ amount: 0 }, 'payment-amount-0', 'a payment of 0 fen', 'decode', 'bad_value');
    await raw({ kind: 'access', amount: 1 }, 'access-with-amount', 'an access record with amount 1', 'decode', 'bad_value');
    await raw({ terminalSuite: 0 }, 'terminal-suite-0', 'terminal_suite 0', 'decode', 'unknown_suite');
    await raw(
      { evidence: new Uint8Array(1025) },
      'evidence-1025-bytes',
      'evidence of 1025 bytes > RECORD_EVIDENCE_MAX_BYTES (1024)',
      'decode',
      'too_large',
    );
    await raw(
      { evidenceLength: body.evidence.length + 70 },
      'evidence-length-past-end',
      'evidence_length runs past the end of the record',
      'decode',
      'bad_length',
    );
    await raw({}, 'other-terminal-key', "signed by a key that is not this terminal's", 'verify', 'bad_signature', `${s}/terminal-other`);
    await book.invalid({
      name: `${s}/chain-gap`,
      description: 'the verifier last saw sequence 1: sequence 3 leaves a gap',
      suite: s,
      input: rec.bytes,
      context: { ...ctx, afterSequence: 1 },
      stage: 'verify',
      error: 'bad_value',
    });
    await book.invalid({
      name: `${s}/chain-fork`,
      description: 'previous_hash is not the hash of the record the verifier holds for sequence 2',
      suite: s,
      input: rec.bytes,
      context: { ...ctx, afterHash: hex(sha256(chains[s][0].rec.bytes)) },
      stage: 'verify',
      error: 'bad_value',
    });
  }
  return book;
}

async function batchBook() {
  const book = new Book(
    'upload-batch',
    6,
    null,
    'Upload batches: contiguous records of one terminal, framed by length. Not signed themselves.',
  );
  for (const s of SUITES) {
    const chain = chains[s];
    const recs = chain.map((c) => c.rec);
    const ctx = (after) => ({
      terminalPublicKey: hex(pub(`${s}/terminal`)),
      afterSequence: after,
      afterHash: hex(chain[after]?.after.hash ?? sha256(recs[after - 1].bytes)),
    });
    const hashes = recs.map((r) => hex(sha256(r.bytes)));
    const first = P.encodeUploadBatch(10_001, recs.slice(0, 3));
    deepStrictEqual(
      hex(
        writeBatch(
          10_001,
          recs.slice(0, 3).map((r) => r.bytes),
        ),
      ),
      hex(first),
      'batch layout',
    );
    const fieldsOf = (rs) => ({ terminalId: 10_001, records: rs.map(plain) });
    await book.valid({
      name: `${s}/valid-first-three`,
      description: 'sequences 1..3 from the genesis hash',
      suite: s,
      input: first,
      context: ctx(0),
      fields: fieldsOf(recs.slice(0, 3)),
      signer: `${s}/terminal`,
      extra: { recordHashes: hashes.slice(0, 3), lastHash: hashes[2] },
    });
    const rest = P.encodeUploadBatch(10_001, recs.slice(3));
    await book.valid({
      name: `${s}/valid-continuation`,
      description: 'sequences 4..5, continuing after sequence 3; the last record holds 1024 bytes of evidence',
      suite: s,
      input: rest,
      context: ctx(3),
      fields: fieldsOf(recs.slice(3)),
      signer: `${s}/terminal`,
      extra: { recordHashes: hashes.slice(3), lastHash: hashes[4] },
    });
    const one = P.encodeUploadBatch(10_001, recs.slice(1, 2));
    await book.valid({
      name: `${s}/valid-single`,
      description: 'one record (sequence 2) after sequence 1',
      suite: s,
      input: one,
      context: ctx(1),
      fields: fieldsOf(recs.slice(1, 2)),
      signer: `${s}/terminal`,
      extra: { recordHashes: hashes.slice(1, 2), lastHash: hashes[1] },
    });
    const c0 = ctx(0);
    const bad = async (name, description, input, stage, error, context = c0) =>
      book.invalid({ name: `${s}/${name}`, description, suite: s, input, context, stage, error });
    const b3 = recs.slice(0, 3).map((r) => r.bytes);
    await bad('empty', 'no bytes', new Uint8Array(0), 'decode', 'bad_length');
    await bad('truncated-by-one', 'the last byte missing', cut(first), 'decode', 'bad_length');
    await bad('trailing-byte', 'a zero byte after the last record', appendZero(first), 'decode', 'trailing_bytes');
    await bad('wrong-type', 'a record given as a batch', recs[0].bytes, 'decode', 'unknown_type');
    await bad('version-2', 'header 0x62', setByte(first, 0, 0x62), 'decode', 'unknown_version');
    await bad('count-0', 'count 0: a batch has at least one record', writeBatch(10_001, [], { count: 0 }), 'decode', 'bad_value');
    await bad(
      'count-1001',
      'count 1001 > BATCH_RECORDS_MAX (1000): refused before reading records',
      writeBatch(10_001, [], { count: 1001 }),
      'decode',
      'bad_value',
    );
    await bad('count-above-records', 'count 4 with three records present', writeBatch(10_001, b3, { count: 4 }), 'decode', 'bad_length');
    await bad(
      'count-below-records',
      'count 2 with three records present',
      writeBatch(10_001, b3, { count: 2 }),
      'decode',
      'trailing_bytes',
    );
    await bad(
      'record-length-long',
      'the first record_length one more than the record, the extra byte inside the frame',
      writeBatch(10_001, [appendZero(b3[0]), b3[1], b3[2]]),
      'decode',
      'trailing_bytes',
    );
    await bad(
      'record-length-short',
      'the first record framed one byte short',
      writeBatch(10_001, [cut(b3[0]), b3[1], b3[2]]),
      'decode',
      'bad_length',
    );
    await bad(
      'inner-not-a-record',
      "the first frame holds the terminal's code, not a record",
      writeBatch(10_001, [validCodes[s].bytes, b3[1], b3[2]]),
      'decode',
      'unknown_type',
    );
    await bad('other-terminal', 'batch terminal_id 10002 carries records of terminal 10001', writeBatch(10_002, b3), 'decode', 'bad_value');
    await bad('gap', 'sequences 1, 3: batches are contiguous', writeBatch(10_001, [b3[0], b3[2]]), 'decode', 'bad_value');
    await bad('duplicate', 'sequences 1, 1', writeBatch(10_001, [b3[0], b3[0]]), 'decode', 'bad_value');
    await bad('reversed', 'sequences 2, 1', writeBatch(10_001, [b3[1], b3[0]]), 'decode', 'bad_value');
    await bad(
      'record-signature-flipped',
      "a bit of the second record's signature flipped",
      writeBatch(10_001, [b3[0], flipBit(b3[1], b3[1].length - 1), b3[2]]),
      'verify',
      'bad_signature',
    );
    const forked = await signRaw(
      P.RECORD_LABEL,
      writeRecord({ ...chain[1].body, previousHash: sha256(utf8('not the first record')) }),
      `${s}/terminal`,
    );
    await bad(
      'chain-fork',
      'the second record is correctly signed but its previous_hash is not the hash of the first',
      writeBatch(10_001, [b3[0], forked, b3[2]]),
      'verify',
      'bad_value',
    );
    await bad('continuation-without-base', 'sequences 4..5 checked as if nothing had been received yet', rest, 'verify', 'bad_value');
  }
  return book;
}

// ---------------------------------------------------------------------------------------------
// deny-list.json

async function denyListBook() {
  const book = new Book('deny-list', 7, P.DENY_LIST_LABEL, 'List-signer-signed deny lists, full and delta.');
  for (const s of SUITES) {
    const key = `${s}/list`;
    const full = denyBody(s);
    const delta = denyBody(s, {
      kind: 'delta',
      listVersion: 13,
      baseVersion: 12,
      issuedAt: T - 5 * 60,
      expiresAt: T - 5 * 60 + DAY,
      entries: [
        { type: 'credential', id: 0x0012_3456_0002, op: 'remove' },
        { type: 'credential', id: 0x0012_3456_0003, op: 'add' },
        { type: 'card', id: 0x00ff_0000_0001, op: 'remove' },
        { type: 'holder', id: 0x0000_0000_0063, op: 'add' },
      ],
    });
    const ctx = { trustList: s, nowS: T };
    for (const [name, b, d] of [
      ['valid-full', full, 'full list version 12: two credentials, one holder, one card'],
      [
        'valid-delta',
        delta,
        'delta 12 -> 13: removes a credential and the card, adds a credential and a holder (given unsorted, encoded sorted)',
      ],
    ]) {
      const list = await P.signDenyList(denyImpl(b), signer(key));
      const sorted = P.denyEntries(list);
      deepStrictEqual(hex(writeDenyList({ ...b, entries: sorted })), hex(list.signed), 'deny list layout');
      await book.valid({
        name: `${s}/${name}`,
        description: `${d}; ${list.bytes.length} bytes`,
        suite: s,
        input: list.bytes,
        context: ctx,
        fields: plain(list),
        signer: key,
      });
      if (name === 'valid-full') {
        await commonInvalid(book, { suite: s, bytes: list.bytes, context: ctx, bodyFlip: 8, otherType: 8, skipTrailing: true });
        await book.invalid({
          name: `${s}/trailing-byte`,
          description: 'one byte after the signature: the length is checked against count before any entry is read',
          suite: s,
          input: appendZero(list.bytes),
          context: ctx,
          stage: 'decode',
          error: 'bad_length',
        });
        await book.valid({
          name: `${s}/valid-last-second`,
          description: 'verified at expires_at - 1',
          suite: s,
          input: list.bytes,
          context: { ...ctx, nowS: b.expiresAt - 1 },
          fields: plain(list),
          signer: key,
        });
        await book.invalid({
          name: `${s}/expired`,
          description: 'verified at expires_at',
          suite: s,
          input: list.bytes,
          context: { ...ctx, nowS: b.expiresAt },
          stage: 'verify',
          error: 'expired',
        });
        await book.invalid({
          name: `${s}/not-yet-valid`,
          description: 'verified at issued_at - 1',
          suite: s,
          input: list.bytes,
          context: { ...ctx, nowS: b.issuedAt - 1 },
          stage: 'verify',
          error: 'not_yet_valid',
        });
      }
    }
    const raw = async (over, name, description, stage, error, signedBy = key) => {
      const signed = writeDenyList({ ...full, ...over });
      await book.invalid({
        name: `${s}/${name}`,
        description,
        suite: s,
        input: await signRaw(P.DENY_LIST_LABEL, signed, signedBy),
        context: ctx,
        stage,
        error,
      });
    };
    const e = full.entries;
    await raw({ signer: { suite: 0, keyId: keyId(s, 'list') } }, 'signer-suite-0', 'signer_suite 0', 'decode', 'unknown_suite');
    await raw({ kind: 0 }, 'kind-0', 'kind 0 (1 = full, 2 = delta)', 'decode', 'bad_value');
    await raw({ kind: 3 }, 'kind-3', 'kind 3', 'decode', 'bad_value');
    await raw({ baseVersion: 11 }, 'full-with-base', 'a full list with base_version 11 (must be 0)', 'decode', 'bad_value');
    await raw(
      { kind: 'delta', baseVersion: 12 },
      'delta-base-equal',
      'a delta whose base_version equals its list_version',
      'decode',
      'bad_value',
    );
    await raw(
      { kind: 'delta', baseVersion: 13 },
      'delta-base-newer',
      'a delta whose base_version is newer than its list_version',
      'decode',
      'bad_value',
    );
    await raw({ expiresAt: full.issuedAt }, 'expires-at-issued', 'expires_at equal to issued_at', 'decode', 'bad_value');
    await raw({ count: 5 }, 'count-above-entries', 'count 5 with four entries present', 'decode', 'bad_length');
    await raw({ count: 3 }, 'count-below-entries', 'count 3 with four entries present', 'decode', 'bad_length');
    await book.invalid({
      name: `${s}/count-above-max`,
      description: `count ${P.DENY_LIST_ENTRIES_MAX + 1} > DENY_LIST_ENTRIES_MAX: refused before the length check or any allocation`,
      suite: s,
      input: writeDenyList({ ...full, count: P.DENY_LIST_ENTRIES_MAX + 1, entries: [] }),
      context: ctx,
      stage: 'decode',
      error: 'too_large',
    });
    await raw(
      { entries: [e[1], e[0], e[2], e[3]] },
      'entries-out-of-order',
      'two credential entries in descending order',
      'decode',
      'not_canonical',
    );
    await raw(
      { entries: [e[0], e[2], e[1], e[3]] },
      'types-out-of-order',
      'a holder entry before a credential entry (sorted by type first)',
      'decode',
      'not_canonical',
    );
    await raw({ entries: [e[0], e[0], e[2], e[3]] }, 'duplicate-entry', 'one entry twice', 'decode', 'not_canonical');
    await raw(
      { kind: 'delta', listVersion: 13, baseVersion: 12, entries: [e[0], { ...e[0], op: 'remove' }, e[2], e[3]] },
      'add-and-remove-same-entry',
      'a delta that adds and removes the same credential: the remove bit is not part of the sort key',
      'decode',
      'not_canonical',
    );
    await raw(
      { entries: [e[0], { ...e[1], op: 'remove' }, e[2], e[3]] },
      'full-with-remove',
      'a full list with a remove entry',
      'decode',
      'bad_value',
    );
    await raw({ entries: [{ tag: 0, id: 5 }, ...e] }, 'type-0', 'entry tag 0x00 (types are 1..3)', 'decode', 'bad_value');
    await raw({ entries: [...e, { tag: 4, id: 5 }] }, 'type-4', 'entry tag 0x04', 'decode', 'bad_value');
    await raw(
      { entries: [e[0], e[1], e[2], { tag: 0x43, id: e[3].id }] },
      'tag-bit-6',
      'entry tag 0x43: bits 2..6 must be zero',
      'decode',
      'bad_value',
    );
    await raw({ entries: [{ ...e[0], id: 0 }, ...e.slice(1)] }, 'id-0', 'an entry with id 0', 'decode', 'bad_value');

    await raw(
      { signer: { suite: s, keyId: UNKNOWN_KEY_ID } },
      'unknown-signer-key',
      'signer_key_id 0x0999 is in no trust list',
      'verify',
      'unknown_key',
    );
    await raw(
      { signer: { suite: s, keyId: keyId(s, 'issuer') } },
      'issuer-key-as-list-signer',
      'names (and is signed by) the issuer key',
      'verify',
      'wrong_key_role',
      `${s}/issuer`,
    );
    const other = SUITES[(SUITES.indexOf(s) + 1) % 3];
    await raw(
      { signer: { suite: other, keyId: keyId(s, 'list') } },
      'signer-suite-differs-from-key',
      `says suite ${other} (signed by the ${other} list key) but names the ${s} list key id`,
      'verify',
      'unknown_suite',
      `${other}/list`,
    );
    await raw(
      { signer: { suite: s, keyId: keyId(s, 'list-retired') } },
      'list-key-retired',
      'signed by the retired list-signing key, whose validity ended before issued_at',
      'verify',
      'expired',
      `${s}/list-retired`,
    );
  }
  const empty = await P.signDenyList(denyImpl(denyBody('sm2', { entries: [], listVersion: 1 })), signer('sm2/list'));
  await book.valid({
    name: 'sm2/valid-empty-full',
    description: 'a full list with no entries: 25 + 64 = 89 bytes',
    suite: 'sm2',
    input: empty.bytes,
    context: { trustList: 'sm2', nowS: T },
    fields: plain(empty),
    signer: 'sm2/list',
  });
  return book;
}

/**
 * Delta application (docs/protocol.md §Deny lists): @duet/protocol only parses and verifies lists;
 * applying a delta is the terminal's job (packages/terminal/src/deny-set.ts), and these cases fix
 * the rule it follows.
 */
function denyApplications() {
  const entry = (type, id) => ({ type, id });
  const held = {
    version: 12,
    entries: [
      entry('credential', 0x0012_3456_0001),
      entry('credential', 0x0012_3456_0002),
      entry('holder', 0x0000_0a0b_0c0d),
      entry('card', 0x00ff_0000_0001),
    ],
  };
  return [
    {
      name: 'apply-delta',
      description: 'the delta of the valid-delta vectors on the full list of the valid-full vectors',
      held,
      delta: {
        listVersion: 13,
        baseVersion: 12,
        entries: [
          { type: 'credential', id: 0x0012_3456_0002, op: 'remove' },
          { type: 'credential', id: 0x0012_3456_0003, op: 'add' },
          { type: 'holder', id: 0x0000_0000_0063, op: 'add' },
          { type: 'card', id: 0x00ff_0000_0001, op: 'remove' },
        ],
      },
      expect: {
        version: 13,
        entries: [
          entry('credential', 0x0012_3456_0001),
          entry('credential', 0x0012_3456_0003),
          entry('holder', 0x63),
          entry('holder', 0x0000_0a0b_0c0d),
        ],
      },
    },
    {
      name: 'idempotent-entries',
      description: 'adding an entry already held and removing one not held change nothing',
      held,
      delta: {
        listVersion: 13,
        baseVersion: 12,
        entries: [
          { type: 'credential', id: 0x0012_3456_0001, op: 'add' },
          { type: 'card', id: 0x00ff_0000_0002, op: 'remove' },
        ],
      },
      expect: { version: 13, entries: held.entries },
    },
    {
      name: 'base-mismatch',
      description: 'a delta from base 11 cannot apply to version 12: fetch a full list instead',
      held,
      delta: { listVersion: 13, baseVersion: 11, entries: [] },
      expect: { error: 'bad_base' },
    },
    {
      name: 'base-ahead',
      description: 'a delta from base 13 cannot apply to version 12 (a delta was missed)',
      held,
      delta: { listVersion: 14, baseVersion: 13, entries: [] },
      expect: { error: 'bad_base' },
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// risk-policy.json

async function policyBook() {
  const book = new Book('risk-policy', 8, P.POLICY_LABEL, 'List-signer-signed risk policies.');
  for (const s of SUITES) {
    const key = `${s}/list`;
    const body = policyBody(s);
    const policy = await P.signRiskPolicy(body, signer(key));
    deepStrictEqual(hex(writePolicy(body)), hex(policy.signed), 'policy layout');
    const ctx = { trustList: s };
    await book.valid({
      name: `${s}/valid`,
      description: `four scene rules (gate: campus only, identity checks only); ${policy.bytes.length} bytes`,
      suite: s,
      input: policy.bytes,
      context: ctx,
      fields: plain(policy),
      signer: key,
    });
    const bare = await P.signRiskPolicy(
      policyBody(s, {
        rules: [],
        codeWindowS: 1,
        clockSkewS: 0,
        perPaymentMax: 0,
        dayTotalMax: 0,
        dayCountMax: 0,
        randomOnlinePer10k: 10_000,
        onlineBudgetMs: 0xffff,
      }),
      signer(key),
    );
    await book.valid({
      name: `${s}/valid-no-rules-edges`,
      description: 'no scene rules; window 1 s, skew 0, caps 0, random share 10000/10000, budget 65535 ms',
      suite: s,
      input: bare.bytes,
      context: ctx,
      fields: plain(bare),
      signer: key,
    });
    await commonInvalid(book, { suite: s, bytes: policy.bytes, context: ctx, bodyFlip: 7, otherType: 7 });
    const raw = async (over, name, description, stage, error, signedBy = key) => {
      const signed = writePolicy({ ...body, ...over });
      await book.invalid({
        name: `${s}/${name}`,
        description,
        suite: s,
        input: await signRaw(P.POLICY_LABEL, signed, signedBy),
        context: ctx,
        stage,
        error,
      });
    };
    const r = body.rules;
    await raw({ signer: { suite: 4, keyId: keyId(s, 'list') } }, 'signer-suite-4', 'signer_suite 4', 'decode', 'unknown_suite');
    await raw({ codeWindowS: 0 }, 'code-window-0', 'code_window_s 0', 'decode', 'bad_value');
    await raw({ dayTotalMax: 9_999 }, 'day-total-below-per-payment', 'day_total_max 9999 < per_payment_max 10000', 'decode', 'bad_value');
    await raw({ randomOnlinePer10k: 10_001 }, 'random-share-above-100-percent', 'random_online_per_10k 10001', 'decode', 'bad_value');
    await raw({ rules: [r[2], r[0], r[1], r[3]] }, 'rules-out-of-order', 'bus before canteen', 'decode', 'not_canonical');
    await raw({ rules: [r[0], r[0], r[2], r[3]] }, 'rule-repeated', 'two canteen rules', 'decode', 'not_canonical');
    await raw({ rules: [{ ...r[0], scene: 0 }] }, 'scene-0', 'a rule for scene 0', 'decode', 'bad_value');
    await raw({ rules: [{ ...r[0], scene: 5 }] }, 'scene-5', 'a rule for scene 5', 'decode', 'bad_value');
    await raw({ rules: [{ ...r[0], roles: 0x08 }] }, 'role-bit-3', 'role bit 3 (only bits 0..2 exist)', 'decode', 'bad_value');
    await raw({ rules: [{ ...r[0], flags: 2 }] }, 'flags-2', 'rule flags 2 (only bit 0, campus only, exists)', 'decode', 'bad_value');
    await book.invalid({
      name: `${s}/rule-count-above-rules`,
      description: 'rule_count 4 with three rules present and no signature: the bytes end where the fourth rule would start',
      suite: s,
      input: writePolicy({ ...body, ruleCount: 4, rules: body.rules.slice(0, 3) }),
      context: ctx,
      stage: 'decode',
      error: 'bad_length',
    });
    await raw({ ruleCount: 3 }, 'rule-count-below-rules', 'rule_count 3 with four rules present', 'decode', 'trailing_bytes');
    await book.invalid({
      name: `${s}/rule-count-5`,
      description: 'rule_count 5 > POLICY_RULES_MAX (4, one per scene): refused before reading any rule',
      suite: s,
      input: writePolicy({ ...body, ruleCount: 5, rules: [] }),
      context: ctx,
      stage: 'decode',
      error: 'too_large',
    });
    await raw(
      { signer: { suite: s, keyId: UNKNOWN_KEY_ID } },
      'unknown-signer-key',
      'signer_key_id 0x0999 is in no trust list',
      'verify',
      'unknown_key',
    );
    await raw(
      { signer: { suite: s, keyId: keyId(s, 'ca') } },
      'ca-key-as-list-signer',
      'names (and is signed by) the terminal-CA key',
      'verify',
      'wrong_key_role',
      `${s}/ca`,
    );
    const other = SUITES[(SUITES.indexOf(s) + 1) % 3];
    await raw(
      { signer: { suite: other, keyId: keyId(s, 'list') } },
      'signer-suite-differs-from-key',
      `says suite ${other} (signed by the ${other} list key) but names the ${s} list key id`,
      'verify',
      'unknown_suite',
      `${other}/list`,
    );
    await raw(
      { signer: { suite: s, keyId: keyId(s, 'list-retired') } },
      'list-key-retired',
      'signed by the retired list-signing key, whose validity ended before issued_at',
      'verify',
      'expired',
      `${s}/list-retired`,
    );
  }
  return book;
}

// ---------------------------------------------------------------------------------------------

const books = [];
books.push(await trustListBook());
books.push(await credentialBook());
books.push(await codeBook());
books.push(await terminalCertBook());
books.push(await recordBook());
books.push(await batchBook());
books.push(await denyListBook());
books.push(await policyBook());

mkdirSync(OUT, { recursive: true });
for (const f of readdirSync(OUT)) if (f.endsWith('.json')) rmSync(new URL(f, OUT));
const sums = [];
for (const book of books) {
  const json = book.json();
  if (book.object === 'deny-list') json.applications = denyApplications();
  const file = `${book.object}.json`;
  const text = `${JSON.stringify(json, null, 2)}\n`;
  writeFileSync(new URL(file, OUT), text);
  sums.push(`${createHash('sha256').update(text).digest('hex')}  ${file}`);
  const valid = book.vectors.filter((v) => v.valid).length;
  console.log(
    `${file.padEnd(26)} ${String(book.vectors.length).padStart(4)} vectors (${valid} valid, ${book.vectors.length - valid} invalid)`,
  );
}
writeFileSync(new URL('SHA256SUMS', OUT), `${sums.sort((a, b) => a.slice(66).localeCompare(b.slice(66))).join('\n')}\n`);
// Read back once: the files parse and the sums match what was written.
for (const line of readFileSync(new URL('SHA256SUMS', OUT), 'utf8').trim().split('\n')) {
  const [sum, file] = line.split(/\s+/);
  if (
    createHash('sha256')
      .update(readFileSync(new URL(file, OUT)))
      .digest('hex') !== sum
  )
    throw new Error(`SHA256SUMS: ${file}`);
}
