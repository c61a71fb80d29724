/**
 * `duet witness …`: the school finance office's side of the sealed ledger (docs/ledger.md).
 *
 *   keygen  makes the witness's P-256 key in a file of its own (mode 0600); only the public half
 *           ever reaches the platform.
 *   sign    signs in as a finance staff member, fetches the roots its key has not countersigned,
 *           and for each one, oldest first, RECOMPUTES everything from the entries the platform
 *           serves: every chain hash, the Merkle root, the root hash, the link to the previous root
 *           (whose range it also recomputes to anchor the first hash), and checks the platform's
 *           signature under the list-signing key of the root-signed trust list. Only then does it
 *           countersign. A root that fails any check is refused, named, and nothing after it is
 *           signed (the roots are a chain).
 *
 * Exit codes: 0 done (including nothing to sign), 1 a root was refused, 2 usage, file or network.
 */
import { existsSync, readFileSync } from 'node:fs';
import {
  type CryptoProvider,
  decodeTrustList,
  equalBytes,
  fromHex,
  PUBLIC_KEY_BYTES,
  type Signer,
  SUITES,
  type SuiteName,
  toHex,
  verifyTrustList,
} from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import {
  type ChainEntry,
  entryHash,
  HASH_BYTES,
  merkleRoot,
  type RootBody,
  rootHash,
  rootSigningMessage,
  witnessMessage,
  ZERO_HASH,
} from '@duet/platform';
import { CliError, type Command, flag, parseOptions, type ParsedOptions, str, toJsonLine } from '../command.js';
import { writeFileDurable } from '../files.js';
import { b64, field, isNum, isStr, PlatformClient, unb64 } from '@duet/protocol/client';

export const WITNESS_KEY_FORMAT = 'duet-witness-key/v1';
/** Positions asked for per chain page: the platform's page bound (LEDGER_CHAIN_PAGE_MAX). */
const CHAIN_PAGE = 1_000;
/** Roots asked for per page (LEDGER_ROOTS_PAGE_MAX). */
const ROOTS_PAGE = 100;
/** Roots countersigned in one run, at most: a run that falls this far behind is simply run again. */
const ROOTS_PER_RUN_MAX = 10_000;

export interface WitnessKeyFile {
  readonly suite: SuiteName;
  readonly publicKey: Uint8Array;
  /** Absent in a public-only copy (what an auditor pins). */
  readonly privateKey?: Uint8Array;
}

function badKeyFile(path: string, why: string): CliError {
  return new CliError('bad_key_file', { en: `${path} is not a witness key file: ${why}`, zh: `${path} 不是见证密钥文件：${why}` });
}

/** Reads a key file written by `duet witness keygen` (or a copy holding only suite and publicKey). */
export function readWitnessKeyFile(path: string): WitnessKeyFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw badKeyFile(path, e instanceof SyntaxError ? 'not JSON' : 'cannot be read');
  }
  const o = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  const suite = SUITES.find((s) => s === o.suite);
  if (suite === undefined) throw badKeyFile(path, 'no suite');
  if (typeof o.publicKey !== 'string' || !/^[0-9a-f]+$/.test(o.publicKey)) throw badKeyFile(path, 'no publicKey (hex)');
  const publicKey = fromHex(o.publicKey);
  if (publicKey.length !== PUBLIC_KEY_BYTES[suite]) throw badKeyFile(path, 'publicKey has the wrong length');
  if (o.privateKey === undefined) return { suite, publicKey };
  if (typeof o.privateKey !== 'string' || !/^[0-9a-f]{64}$/.test(o.privateKey)) throw badKeyFile(path, 'privateKey is not 32 bytes of hex');
  return { suite, publicKey, privateKey: fromHex(o.privateKey) };
}

async function keygen(o: ParsedOptions): Promise<number> {
  const out = str(o, 'out');
  if (out === undefined) throw new CliError('bad_arguments', { en: 'keygen needs --out FILE', zh: 'keygen 需要 --out 文件' });
  if (existsSync(out))
    throw new CliError('exists', {
      en: `${out} exists: a witness key is never overwritten`,
      zh: `${out} 已存在：见证密钥不会被覆盖`,
    });
  const key = await nodeCrypto().suite('p256').generate({ extractable: true });
  const raw = await key.exportPrivateKey();
  if (raw === undefined) throw new Error('a freshly made witness key must be exportable');
  const file = { format: WITNESS_KEY_FORMAT, suite: key.suite, publicKey: toHex(key.publicKey), privateKey: toHex(raw) };
  raw.fill(0);
  writeFileDurable(out, `${JSON.stringify(file, null, 2)}\n`);
  process.stdout.write(
    toJsonLine({
      created: out,
      suite: key.suite,
      public_key: toHex(key.publicKey),
      en: 'Witness key made (mode 0600). Keep the file offline; register the public key with --register.',
      zh: '见证密钥已生成（权限 0600）。请离线保管该文件；用 --register 登记公钥。',
    }),
  );
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Reading the platform's answers

interface RootAnswer {
  readonly body: RootBody;
  readonly rootHash: Uint8Array;
  readonly signature: Uint8Array;
  readonly witness: { readonly keyId: number; readonly signature: Uint8Array } | null;
}

function hash32(v: unknown, name: string): Uint8Array {
  const b = unb64(v, name);
  if (b.length !== HASH_BYTES)
    throw new RootRefused(`${name} is ${b.length} bytes, not ${HASH_BYTES}`, `${name} 长度不是 ${HASH_BYTES} 字节`);
  return b;
}

function rootAnswer(v: unknown): RootAnswer {
  const suite = SUITES.find((s) => s === field(v, 'suite', isStr));
  if (suite === undefined) throw new RootRefused('the root names an unknown suite', '根的签名套件未知');
  const w = (v as { witness?: unknown }).witness;
  return {
    body: {
      id: field(v, 'id', isNum),
      firstPosition: field(v, 'firstPosition', isNum),
      lastPosition: field(v, 'lastPosition', isNum),
      merkleRoot: hash32(field(v, 'merkleRoot', isStr), 'merkleRoot'),
      prevRootHash: hash32(field(v, 'prevRootHash', isStr), 'prevRootHash'),
      signedAtS: field(v, 'signedAt', isNum),
      keyId: field(v, 'keyId', isNum),
      suite,
    },
    rootHash: hash32(field(v, 'rootHash', isStr), 'rootHash'),
    signature: unb64(field(v, 'signature', isStr), 'signature'),
    witness:
      w === null || w === undefined
        ? null
        : { keyId: field(w, 'keyId', isNum), signature: unb64(field(w, 'signature', isStr), 'witness signature') },
  };
}

const isText = (v: unknown): v is string => typeof v === 'string';
const isTextOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';
const isNumOrNull = (v: unknown): v is number | null => v === null || isNum(v);

function entryAnswer(v: unknown): ChainEntry {
  return {
    id: field(v, 'id', isNum),
    postedAtS: field(v, 'postedAt', isNum),
    effectiveAtS: field(v, 'effectiveAt', isNum),
    kind: field(v, 'kind', isText),
    reference: field(v, 'reference', isTextOrNull),
    createdBy: field(v, 'createdBy', isText),
    memo: field(v, 'memo', isText),
    reverses: field(v, 'reverses', isNumOrNull),
    postings: field(v, 'postings', Array.isArray).map((p: unknown) => ({
      line: field(p, 'line', isNum),
      account: field(p, 'account', isNum),
      amount: field(p, 'amount', isNum),
    })),
  };
}

/** A root the witness will not countersign, and why. */
class RootRefused extends Error {
  constructor(
    readonly en: string,
    readonly zh: string,
  ) {
    super(en);
  }
}

// ---------------------------------------------------------------------------------------------
// Recomputing a root

interface Session {
  readonly client: PlatformClient;
  readonly token: string;
  readonly crypto: CryptoProvider;
}

async function getRoot(s: Session, id: number): Promise<RootAnswer> {
  const a = await s.client.call('GET', `/v1/ledger/roots?from=${id}&limit=1`, { token: s.token });
  const first = field(a, 'roots', Array.isArray)[0];
  const root = first === undefined ? undefined : rootAnswer(first);
  if (root?.body.id !== id) throw new RootRefused(`the platform does not return root ${id}`, `平台未返回根 ${id}`);
  return root;
}

/** The chain hashes the platform reports for positions from..to. */
async function reportedHashes(s: Session, from: number, to: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let at = from; at <= to; at += CHAIN_PAGE) {
    const limit = Math.min(CHAIN_PAGE, to - at + 1);
    const page = await s.client.call('GET', `/v1/ledger/chain?from=${at}&limit=${limit}&include=hashes`, { token: s.token });
    for (const p of field(page, 'positions', Array.isArray)) out.push(hash32(field(p, 'hash', isStr), 'hash'));
  }
  if (out.length !== to - from + 1) throw new RootRefused(`positions ${from}..${to} are incomplete`, `位置 ${from}..${to} 不完整`);
  return out;
}

/** The hash before `root`'s first position, anchored by recomputing the previous root's Merkle root. */
async function anchor(s: Session, root: RootAnswer, previous: RootAnswer | undefined): Promise<Uint8Array> {
  if (previous === undefined) return ZERO_HASH;
  const hashes = await reportedHashes(s, previous.body.firstPosition, previous.body.lastPosition);
  if (!equalBytes(merkleRoot(s.crypto, hashes), previous.body.merkleRoot))
    throw new RootRefused(
      `root ${root.body.id}: the chain hashes of root ${previous.body.id} do not make its Merkle root`,
      `根 ${root.body.id}：根 ${previous.body.id} 的链哈希无法得出其默克尔根`,
    );
  return hashes[hashes.length - 1] ?? ZERO_HASH;
}

/** Recomputes positions first..last from the entries; returns the entry hashes (the Merkle leaves). */
async function recomputeRange(s: Session, root: RootAnswer, start: Uint8Array): Promise<Uint8Array[]> {
  const { id, firstPosition, lastPosition } = root.body;
  const leaves: Uint8Array[] = [];
  let previous = start;
  for (let at = firstPosition; at <= lastPosition; at += CHAIN_PAGE) {
    const limit = Math.min(CHAIN_PAGE, lastPosition - at + 1);
    const page = await s.client.call('GET', `/v1/ledger/chain?from=${at}&limit=${limit}`, { token: s.token });
    for (const p of field(page, 'positions', Array.isArray)) {
      const position = field(p, 'position', isNum);
      if (position !== firstPosition + leaves.length)
        throw new RootRefused(
          `root ${id}: position ${firstPosition + leaves.length} is missing`,
          `根 ${id}：缺少位置 ${firstPosition + leaves.length}`,
        );
      const raw = (p as { entry?: unknown }).entry;
      if (raw === null || raw === undefined)
        throw new RootRefused(`root ${id}: the entry at position ${position} is missing`, `根 ${id}：位置 ${position} 的分录缺失`);
      const entry = entryAnswer(raw);
      const sum = entry.postings.reduce((a, x) => a + x.amount, 0);
      if (entry.postings.length < 2 || sum !== 0)
        throw new RootRefused(
          `root ${id}: entry ${entry.id} at position ${position} does not balance (${entry.postings.length} postings, sum ${sum})`,
          `根 ${id}：位置 ${position} 的分录 ${entry.id} 借贷不平（${entry.postings.length} 笔，合计 ${sum}）`,
        );
      const mine = entryHash(s.crypto, previous, entry);
      if (!equalBytes(mine, hash32(field(p, 'hash', isStr), 'hash')))
        throw new RootRefused(
          `root ${id}: position ${position} (entry ${entry.id}) hashes to ${toHex(mine)}, the platform reports another hash`,
          `根 ${id}：位置 ${position}（分录 ${entry.id}）复算哈希为 ${toHex(mine)}，与平台所报不同`,
        );
      leaves.push(mine);
      previous = mine;
    }
  }
  if (leaves.length !== lastPosition - firstPosition + 1)
    throw new RootRefused(`root ${id}: the platform returned ${leaves.length} positions`, `根 ${id}：平台只返回了 ${leaves.length} 个位置`);
  return leaves;
}

interface PlatformKey {
  readonly suite: SuiteName;
  readonly publicKey: Uint8Array;
  readonly notBefore: number;
  readonly notAfter: number;
}

/** Every check before a countersignature; throws RootRefused naming the first that fails. */
async function checkRoot(
  s: Session,
  root: RootAnswer,
  previous: RootAnswer | undefined,
  keys: ReadonlyMap<number, PlatformKey>,
  mine: { readonly keyId: number; readonly signer: Signer },
): Promise<void> {
  const { id } = root.body;
  const refuse: (en: string, zh: string) => never = (en, zh) => {
    throw new RootRefused(`root ${id}: ${en}`, `根 ${id}：${zh}`);
  };
  if (previous === undefined) {
    if (id !== 1 || root.body.firstPosition !== 1 || !equalBytes(root.body.prevRootHash, ZERO_HASH))
      refuse('the first root must start at position 1 with a zero previous hash', '第一个根须从位置 1 开始且前一哈希为零');
  } else {
    if (!equalBytes(rootHash(s.crypto, previous.body), previous.rootHash))
      refuse(`the hash of root ${previous.body.id} does not recompute`, `根 ${previous.body.id} 的哈希无法复算`);
    if (!equalBytes(root.body.prevRootHash, previous.rootHash))
      refuse(`it does not link to root ${previous.body.id}`, `未与根 ${previous.body.id} 相连`);
    if (root.body.firstPosition !== previous.body.lastPosition + 1)
      refuse(
        `it starts at ${root.body.firstPosition}, not after ${previous.body.lastPosition}`,
        `起始位置 ${root.body.firstPosition} 与前一根不接续`,
      );
    if (
      previous.witness?.keyId === mine.keyId &&
      !(await s.crypto
        .suite(mine.signer.suite)
        .verify(mine.signer.publicKey, witnessMessage(previous.rootHash), previous.witness.signature))
    )
      refuse(`my countersignature of root ${previous.body.id} does not verify`, `本方对根 ${previous.body.id} 的副署无法验证`);
  }
  if (root.body.lastPosition < root.body.firstPosition) refuse('its range is empty', '位置区间为空');
  const leaves = await recomputeRange(s, root, await anchor(s, root, previous));
  if (!equalBytes(merkleRoot(s.crypto, leaves), root.body.merkleRoot)) refuse('its Merkle root does not recompute', '默克尔根无法复算');
  if (!equalBytes(rootHash(s.crypto, root.body), root.rootHash)) refuse('its root hash does not recompute', '根哈希无法复算');
  const key = keys.get(root.body.keyId);
  if (key === undefined || key.suite !== root.body.suite)
    refuse(
      `its signing key ${root.body.keyId} is not a list-signing key of the trust list`,
      `签名密钥 ${root.body.keyId} 不在信任列表的名单签名密钥中`,
    );
  const inWindow = root.body.signedAtS >= key.notBefore && root.body.signedAtS <= key.notAfter;
  if (!inWindow || !(await s.crypto.suite(key.suite).verify(key.publicKey, rootSigningMessage(root.body), root.signature)))
    refuse(`the platform signature does not verify under key ${root.body.keyId}`, `平台签名无法用密钥 ${root.body.keyId} 验证`);
}

// ---------------------------------------------------------------------------------------------
// sign

async function loadSigner(path: string, crypto: CryptoProvider): Promise<Signer> {
  const file = readWitnessKeyFile(path);
  if (file.privateKey === undefined) throw badKeyFile(path, 'it holds no private key');
  const signer = await crypto.suite(file.suite).importPrivateKey(file.privateKey, { extractable: false });
  file.privateKey.fill(0);
  if (!equalBytes(signer.publicKey, file.publicKey)) throw badKeyFile(path, 'its private and public halves differ');
  return signer;
}

async function witnessKeyId(s: Session, signer: Signer, o: ParsedOptions): Promise<number> {
  if (flag(o, 'register')) {
    const name = str(o, 'name') ?? 'Finance office witness key / 财务处见证密钥';
    const k = await s.client.call('POST', '/v1/ledger/witness-keys', {
      token: s.token,
      json: { name, suite: signer.suite, publicKey: b64(signer.publicKey) },
    });
    return field(k, 'id', isNum);
  }
  const list = await s.client.call('GET', '/v1/ledger/witness-keys', { token: s.token });
  for (const k of field(list, 'keys', Array.isArray))
    if (equalBytes(unb64(field(k, 'publicKey', isStr), 'publicKey'), signer.publicKey)) return field(k, 'id', isNum);
  throw new CliError('witness_key_unregistered', {
    en: 'This witness key is not registered on the platform: run again with --register',
    zh: '该见证密钥尚未在平台登记：请加 --register 重新运行',
  });
}

/** The list-signing keys of the current trust list, verified under the root keys the platform publishes. */
async function listSigners(s: Session, nowS: number): Promise<Map<number, PlatformKey>> {
  const a = await s.client.call('GET', '/v1/trust-list');
  const list = decodeTrustList(unb64(field(a, 'trustList', isStr), 'trust list'));
  const roots = field(a, 'roots', Array.isArray).map((r: unknown) => ({
    keyId: field(r, 'keyId', isNum),
    suite: SUITES.find((x) => x === field(r, 'suite', isStr)) ?? 'p256',
    publicKey: unb64(field(r, 'publicKey', isStr), 'root key'),
  }));
  await verifyTrustList(list, roots, s.crypto, nowS);
  return new Map(
    list.keys
      .filter((k) => k.role === 'list_signer')
      .map((k) => [k.keyId, { suite: k.suite, publicKey: k.publicKey, notBefore: k.notBefore, notAfter: k.notAfter }]),
  );
}

async function sign(o: ParsedOptions): Promise<number> {
  const url = str(o, 'platform');
  const user = str(o, 'user');
  const passwordEnv = str(o, 'password-env');
  const keyPath = str(o, 'key');
  if (url === undefined || user === undefined || passwordEnv === undefined || keyPath === undefined)
    throw new CliError('bad_arguments', {
      en: 'sign needs --platform URL --user NAME --password-env VAR --key FILE',
      zh: 'sign 需要 --platform 地址 --user 用户名 --password-env 变量名 --key 文件',
    });
  const password = process.env[passwordEnv];
  if (password === undefined || password === '')
    throw new CliError('bad_arguments', { en: `The variable ${passwordEnv} is not set`, zh: `环境变量 ${passwordEnv} 未设置` });
  const json = flag(o, 'json');
  const say = (value: Record<string, unknown>): void => {
    process.stdout.write(json ? toJsonLine(value) : `${String(value.en)}\n${String(value.zh)}\n`);
  };
  const crypto = nodeCrypto();
  const signer = await loadSigner(keyPath, crypto);
  const client = new PlatformClient(url, crypto);
  const login = await client.call('POST', '/v1/staff/login', { json: { username: user, password } });
  const s: Session = { client, token: field(login, 'token', isStr), crypto };
  const keyId = await witnessKeyId(s, signer, o);
  const keys = await listSigners(s, Math.floor(Date.now() / 1000));
  let previous: RootAnswer | undefined;
  let signed = 0;
  let from = 1;
  while (signed < ROOTS_PER_RUN_MAX) {
    const page = await client.call('GET', `/v1/ledger/roots?witnessed=false&from=${from}&limit=${ROOTS_PAGE}`, { token: s.token });
    const roots = field(page, 'roots', Array.isArray).map(rootAnswer);
    if (roots.length === 0) break;
    for (const root of roots) {
      const id = root.body.id;
      if (previous?.body.id !== id - 1) previous = id === 1 ? undefined : await getRoot(s, id - 1);
      try {
        await checkRoot(s, root, previous, keys, { keyId, signer });
      } catch (e) {
        if (!(e instanceof RootRefused)) throw e;
        say({ refused: id, en: `REFUSED ${e.en}`, zh: `拒绝副署：${e.zh}` });
        return 1;
      }
      const signature = await signer.sign(witnessMessage(root.rootHash));
      const stored = rootAnswer(
        await client.call('POST', `/v1/ledger/roots/${id}/witness`, { token: s.token, json: { keyId, signature: b64(signature) } }),
      );
      const range = `${root.body.firstPosition}–${root.body.lastPosition}`;
      say({
        witnessed: id,
        positions: range,
        merkle_root: toHex(root.body.merkleRoot),
        root_hash: toHex(root.rootHash),
        witness_key: stored.witness?.keyId ?? keyId,
        en: `Countersigned root ${id}: positions ${range}, Merkle root ${toHex(root.body.merkleRoot)}, root hash ${toHex(root.rootHash)}`,
        zh: `已副署根 ${id}：位置 ${range}，默克尔根 ${toHex(root.body.merkleRoot)}，根哈希 ${toHex(root.rootHash)}`,
      });
      previous = stored;
      signed += 1;
      from = id + 1;
    }
  }
  say({
    done: true,
    signed,
    en: signed === 0 ? 'Nothing to countersign: every root is witnessed' : `Done: ${signed} root(s) countersigned`,
    zh: signed === 0 ? '没有待副署的根：所有根均已见证' : `完成：已副署 ${signed} 个根`,
  });
  return 0;
}

export const witnessCommand: Command = {
  name: 'witness',
  summary: {
    en: "The finance office's witness: make its key, recompute and countersign ledger roots",
    zh: '财务处见证：生成密钥，复算并副署账本根',
  },
  usage: [
    'duet witness keygen --out FILE',
    '  Makes a P-256 witness key in FILE (mode 0600; never overwrites).',
    'duet witness sign --platform URL --user NAME --password-env VAR --key FILE [--register] [--name TEXT] [--json]',
    '  Signs in as a school finance staff member (password read from the variable VAR), recomputes every root its key',
    '  has not countersigned from the entries themselves, and countersigns it. --register registers the key first.',
    '  Exit: 0 done, 1 a root was refused (nothing after it is signed), 2 usage, file or network error.',
  ].join('\n'),
  async run(args) {
    const [sub, ...rest] = args;
    const o = parseOptions(rest, {
      out: { type: 'string' },
      platform: { type: 'string' },
      user: { type: 'string' },
      'password-env': { type: 'string' },
      key: { type: 'string' },
      register: { type: 'boolean' },
      name: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (o.positionals.length > 0)
      throw new CliError('bad_arguments', { en: `Unexpected ${o.positionals.join(' ')}`, zh: `多余的参数 ${o.positionals.join(' ')}` });
    if (sub === 'keygen') return keygen(o);
    if (sub === 'sign') return sign(o);
    throw new CliError('bad_arguments', { en: 'Use: duet witness keygen | sign', zh: '用法：duet witness keygen | sign' });
  },
};
