/**
 * Node.js storage for the wallet: the device key and the wallet state in files, each written
 * atomically and durably (temporary file, fsync, rename or link, fsync of the directory), so a
 * crash or power cut leaves the old file or the new one, never a torn mix. Imported as
 * `@duet/wallet/node`, so the browser bundle of the main entry never pulls in node:fs.
 */
import { createHash } from 'node:crypto';
import { link, mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  type CryptoProvider,
  fromHex,
  PRIVATE_KEY_BYTES,
  PUBLIC_KEY_BYTES,
  type Signer,
  SUITES,
  type SuiteName,
  toHex,
} from '@duet/protocol';
import { asWalletError, WalletError, type WalletErrorCode } from './errors.js';
import { KEY_TEXT_MAX_BYTES, STATE_TEXT_MAX_BYTES } from './limits.js';
import type { KeyVault, WalletState, WalletStore } from './ports.js';
import { decodeWalletState, encodeWalletState } from './state.js';
import { Wallet, type WalletOptions } from './wallet.js';

/** Owner read and write only: the key file holds a private key; the state file a holder's credentials. */
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

const sha256 = (data: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(data).digest());

function errno(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

/** Reads a whole small file as strict UTF-8; undefined when it does not exist. */
async function readSmallText(path: string, maxBytes: number, damaged: WalletErrorCode): Promise<string | undefined> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if (errno(e) === 'ENOENT') return undefined;
    throw asWalletError(e, 'store_failed', `opening ${path}`);
  }
  try {
    const { size } = await fh.stat();
    if (size > maxBytes) throw new WalletError(damaged, `${path}: ${size} bytes > ${maxBytes}`);
    const bytes = await fh.readFile();
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch (e) {
      throw new WalletError(damaged, `${path}: not UTF-8`, { cause: e });
    }
  } catch (e) {
    throw asWalletError(e, 'store_failed', `reading ${path}`);
  } finally {
    await fh.close();
  }
}

/** Makes `path`'s directory entry changes (a rename, a link, an unlink) durable. */
async function syncDirectory(path: string): Promise<void> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(dirname(path), 'r');
    await fh.sync();
  } catch (e) {
    // Windows cannot open or fsync a directory; NTFS journals the rename itself.
    if (process.platform !== 'win32') throw e;
  } finally {
    await fh?.close();
  }
}

/** Writes `text` to `tmp` (mode 0600) and fsyncs it. */
async function writeSynced(tmp: string, text: string): Promise<void> {
  const fh = await open(tmp, 'w', FILE_MODE);
  try {
    await fh.chmod(FILE_MODE); // the umask can only narrow the mode; this also fixes a stale temp file
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * The wallet state as one JSON file with a checksum (see state.ts). Written atomically: a crash
 * leaves the old state or the new one, and a damaged file is WalletError(store_corrupt), never
 * "no state". One Wallet per file at a time: two writers would hand out the same counters.
 */
export class FileWalletStore implements WalletStore {
  constructor(readonly path: string) {}

  async load(): Promise<WalletState | undefined> {
    const text = await readSmallText(this.path, STATE_TEXT_MAX_BYTES, 'store_corrupt');
    return text === undefined ? undefined : decodeWalletState(text, sha256);
  }

  async save(state: WalletState): Promise<void> {
    const text = encodeWalletState(state, sha256);
    const tmp = `${this.path}.tmp`;
    try {
      await writeSynced(tmp, text);
      await rename(tmp, this.path);
      await syncDirectory(this.path);
    } catch (e) {
      throw asWalletError(e, 'store_failed', `writing ${this.path}`);
    }
  }
}

const KEY_FORMAT = 'duet-device-key/v1';

/**
 * The device key as a small JSON file (mode 0600): suite, the raw 32-byte private key and the public
 * key, both in hex. Node has no keystore to hide the key in, so the file's permissions are its only
 * guard; the Signer handed out is still non-extractable. `create` never overwrites: it links a
 * finished temporary file into place, which fails if a key is already there.
 */
export class FileKeyVault implements KeyVault {
  constructor(
    readonly path: string,
    private readonly crypto: CryptoProvider,
  ) {}

  private get tmp(): string {
    return `${this.path}.tmp`;
  }

  async load(): Promise<Signer | undefined> {
    await rm(this.tmp, { force: true }); // a crash mid-create may leave a copy of a private key
    const text = await readSmallText(this.path, KEY_TEXT_MAX_BYTES, 'key_corrupt');
    if (text === undefined) return undefined;
    const { suite, privateKey, publicKey } = parseKeyFile(text, this.path);
    let signer: Signer;
    try {
      signer = await this.crypto.suite(suite).importPrivateKey(privateKey, { extractable: false });
    } catch (e) {
      throw new WalletError('key_corrupt', `${this.path}: private key does not import`, { cause: e });
    } finally {
      privateKey.fill(0);
    }
    if (toHex(signer.publicKey) !== toHex(publicKey)) throw new WalletError('key_corrupt', `${this.path}: public key does not match`);
    return signer;
  }

  async create(suite: SuiteName): Promise<Signer> {
    const made = await this.crypto.suite(suite).generate({ extractable: true });
    const raw = await made.exportPrivateKey();
    if (raw === undefined) throw new TypeError(`crypto provider ${this.crypto.name} cannot export a ${suite} key to store in a file`);
    try {
      const text = JSON.stringify({ format: KEY_FORMAT, suite, privateKey: toHex(raw), publicKey: toHex(made.publicKey) });
      await this.place(text);
      return await this.crypto.suite(suite).importPrivateKey(raw, { extractable: false });
    } finally {
      raw.fill(0);
    }
  }

  private async place(text: string): Promise<void> {
    try {
      await writeSynced(this.tmp, text);
      try {
        await link(this.tmp, this.path);
      } catch (e) {
        if (errno(e) === 'EEXIST') throw new WalletError('key_exists', `${this.path} already holds a device key`);
        throw e;
      }
      await syncDirectory(this.path);
    } catch (e) {
      throw asWalletError(e, 'store_failed', `writing ${this.path}`);
    } finally {
      await rm(this.tmp, { force: true });
    }
  }

  async destroy(): Promise<void> {
    try {
      await rm(this.tmp, { force: true });
      await rm(this.path, { force: true });
      await syncDirectory(this.path);
    } catch (e) {
      throw asWalletError(e, 'store_failed', `removing ${this.path}`);
    }
  }
}

function parseKeyFile(text: string, path: string): { suite: SuiteName; privateKey: Uint8Array; publicKey: Uint8Array } {
  const bad = (what: string, cause?: unknown) =>
    new WalletError('key_corrupt', `${path}: ${what}`, cause === undefined ? undefined : { cause });
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw bad('not JSON', e);
  }
  if (typeof v !== 'object' || v === null) throw bad('not an object');
  const o = v as { [k: string]: unknown };
  if (o.format !== KEY_FORMAT) throw bad(`format ${JSON.stringify(o.format)}`);
  const suite = SUITES.find((s) => s === o.suite);
  if (suite === undefined) throw bad(`suite ${JSON.stringify(o.suite)}`);
  const hex = (x: unknown, bytes: number, what: string): Uint8Array => {
    if (typeof x !== 'string' || x.length !== bytes * 2 || !/^[0-9a-f]*$/.test(x)) throw bad(`${what} is not ${bytes} bytes of hex`);
    return fromHex(x);
  };
  return {
    suite,
    privateKey: hex(o.privateKey, PRIVATE_KEY_BYTES, 'privateKey'),
    publicKey: hex(o.publicKey, PUBLIC_KEY_BYTES[suite], 'publicKey'),
  };
}

/** The key vault and state store of a wallet folder: `device-key.json` and `wallet-state.json`. */
export function walletFiles(dir: string, crypto: CryptoProvider): { vault: FileKeyVault; store: FileWalletStore } {
  return { vault: new FileKeyVault(join(dir, 'device-key.json'), crypto), store: new FileWalletStore(join(dir, 'wallet-state.json')) };
}

/** Opens (making it on first use, mode 0700) a wallet kept in the folder `dir`. */
export async function openFileWallet(o: Omit<WalletOptions, 'vault' | 'store'> & { readonly dir: string }): Promise<Wallet> {
  await mkdir(o.dir, { recursive: true, mode: DIR_MODE });
  const { dir, ...rest } = o;
  return Wallet.open({ ...rest, ...walletFiles(dir, o.crypto) });
}

export * from './index.js';
