/**
 * `duet wallet …`: a headless wallet (the phone's role) kept in a folder: its device key (mode 0600)
 * and its state (credentials, reserved code counters). Codes are made offline.
 */
import { equalBytes, toHex } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { type RenewalTransport, verifyDeviceProof } from '@duet/wallet';
import { openFileWallet } from '@duet/wallet/node';
import { acceptAgreement, currentAgreement, type HolderSession, holderLogin, platformRenewal } from '@duet/wallet/platform';
import QRCode from 'qrcode';
import { CliError, type Command, intOption, parseOptions, type ParsedOptions, str, toJsonLine } from '../command.js';
import { join } from 'node:path';
import { dataDir, readJson, writeFileDurable } from '../files.js';
import { PlatformClient } from '@duet/protocol/client';
import { LocalIssuer } from '../local-issuer.js';

function print(value: unknown): void {
  process.stdout.write(toJsonLine(value));
}

async function open(o: ParsedOptions) {
  return openFileWallet({ dir: dataDir(str(o, 'dir'), 'wallet'), crypto: nodeCrypto(), clock: { nowMs: () => Date.now() } });
}

/** The local issuer as the wallet's renewal transport: a fresh challenge, then a checked proof. */
function localTransport(issuer: LocalIssuer, holder: number): RenewalTransport {
  const crypto = nodeCrypto();
  let challenge: Uint8Array | undefined;
  return {
    async challenge() {
      challenge = crypto.randomBytes(32);
      return challenge;
    },
    async issue(request) {
      const ok =
        challenge !== undefined &&
        equalBytes(challenge, request.challenge) &&
        (await verifyDeviceProof(crypto, request.suite, request.devicePublicKey, request.challenge, request.proof));
      if (!ok) throw new CliError('bad_proof', { en: 'The device did not prove it holds its key', zh: '设备未能证明持有其密钥' });
      return issuer.issueCredential({
        devicePublicKey: request.devicePublicKey,
        deviceSuite: request.suite,
        holder,
        nowS: Math.floor(Date.now() / 1000),
      });
    },
  };
}

interface WalletPlatform extends HolderSession {
  readonly url: string;
}

function platformFile(o: ParsedOptions): string {
  return join(dataDir(str(o, 'dir'), 'wallet'), 'platform.json');
}

async function enrollWithPlatform(o: ParsedOptions, url: string): Promise<number> {
  const holderId = intOption(str(o, 'holder'), 'holder', 0, 2 ** 48 - 1);
  const password = str(o, 'password') ?? process.env.DUET_HOLDER_PASSWORD;
  if (holderId === 0 || password === undefined) {
    throw new CliError('bad_arguments', {
      en: 'Enrolling needs --holder N and --password (or DUET_HOLDER_PASSWORD)',
      zh: '注册需要 --holder 编号与 --password（或 DUET_HOLDER_PASSWORD）',
    });
  }
  const client = new PlatformClient(url, nodeCrypto());
  const p: WalletPlatform = { url, ...(await holderLogin(client, holderId, password)) };
  const label = str(o, 'label') ?? 'duet wallet (command line)';
  await acceptAgreement(client, p, (await currentAgreement(client, p)).version, label);
  const wallet = await open(o);
  try {
    const c = await wallet.renew(platformRenewal(client, p, label));
    writeFileDurable(platformFile(o), `${JSON.stringify(p)}\n`);
    print({
      enrolled: true,
      platform: url,
      holder: holderId,
      serial: c.serial,
      not_after: new Date(c.notAfter * 1000).toISOString(),
      limits: c.limits,
    });
  } finally {
    await wallet.close();
  }
  return 0;
}

async function renew(o: ParsedOptions): Promise<number> {
  const p = readJson(platformFile(o), {
    en: 'platform enrolment (run `duet wallet enroll --platform URL`)',
    zh: '平台注册信息（请先运行 `duet wallet enroll --platform URL`）',
  }) as WalletPlatform;
  const wallet = await open(o);
  try {
    const c = await wallet.renew(platformRenewal(new PlatformClient(p.url, nodeCrypto()), p, 'duet wallet (command line)'));
    writeFileDurable(platformFile(o), `${JSON.stringify(p)}\n`);
    print({ renewed: true, serial: c.serial, not_after: new Date(c.notAfter * 1000).toISOString(), limits: c.limits });
  } finally {
    await wallet.close();
  }
  return 0;
}

async function enroll(o: ParsedOptions): Promise<number> {
  const url = str(o, 'platform');
  if (url !== undefined) return enrollWithPlatform(o, url);
  const issuer = await LocalIssuer.open(dataDir(str(o, 'issuer'), 'issuer'), nodeCrypto());
  const wallet = await open(o);
  try {
    const c = await wallet.renew(localTransport(issuer, intOption(str(o, 'holder'), 'holder', 1, 2 ** 48 - 1) || 1));
    print({
      enrolled: true,
      serial: c.serial,
      device_public_key: toHex(c.devicePublicKey),
      not_after: new Date(c.notAfter * 1000).toISOString(),
    });
  } finally {
    await wallet.close();
  }
  return 0;
}

async function code(o: ParsedOptions): Promise<number> {
  const wallet = await open(o);
  try {
    const made = await wallet.nextCode();
    const png = str(o, 'png');
    if (png !== undefined) await QRCode.toFile(png, made.text, { errorCorrectionLevel: 'M', margin: 4, scale: 6 });
    print({ text: made.text, counter: made.code.counter, bytes: made.code.bytes.length, ...(png !== undefined ? { png } : {}) });
  } finally {
    await wallet.close();
  }
  return 0;
}

async function status(o: ParsedOptions): Promise<number> {
  const wallet = await open(o);
  try {
    print(wallet.status());
  } finally {
    await wallet.close();
  }
  return 0;
}

export const walletCommand: Command = {
  name: 'wallet',
  summary: { en: 'The headless wallet: enrol, make an offline code, status', zh: '无界面钱包：注册、生成离线付款码、状态' },
  usage: [
    'duet wallet enroll --platform URL --holder N [--password P] [--dir DIR]   sign in, accept the agreement, prove the device key, get a credential',
    'duet wallet enroll [--issuer DIR] [--dir DIR] [--holder N]   the same against a local issuer (development)',
    'duet wallet renew [--dir DIR]                                 a fresh credential from the platform it enrolled with',
    'duet wallet code [--dir DIR] [--png FILE]                     one offline code as QR text (and a PNG)',
    'duet wallet status [--dir DIR]                                what is left, when it expires, whether to renew',
    '  --dir defaults to ./data/wallet, --issuer to ./data/issuer.',
  ].join('\n'),
  async run(args) {
    const o = parseOptions(args, {
      dir: { type: 'string' },
      issuer: { type: 'string' },
      holder: { type: 'string' },
      png: { type: 'string' },
      platform: { type: 'string' },
      password: { type: 'string' },
      label: { type: 'string' },
    });
    switch (o.positionals[0]) {
      case 'enroll':
        return enroll(o);
      case 'code':
        return code(o);
      case 'status':
        return status(o);
      case 'renew':
        return renew(o);
      default:
        throw new CliError('bad_arguments', {
          en: 'Usage: duet wallet enroll|renew|code|status',
          zh: '用法：duet wallet enroll|renew|code|status',
        });
    }
  },
};
