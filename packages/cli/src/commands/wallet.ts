/**
 * `duet wallet …`: a headless wallet (the phone's role) kept in a folder: its device key (mode 0600)
 * and its state (credentials, reserved code counters). Codes are made offline.
 */
import { equalBytes, toHex } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { type RenewalTransport, verifyDeviceProof } from '@duet/wallet';
import { openFileWallet } from '@duet/wallet/node';
import QRCode from 'qrcode';
import { CliError, type Command, intOption, parseOptions, type ParsedOptions, str, toJsonLine } from '../command.js';
import { dataDir } from '../files.js';
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

async function enroll(o: ParsedOptions): Promise<number> {
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
    'duet wallet enroll [--issuer DIR] [--dir DIR] [--holder N]   new device key, proof of possession, credential',
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
    });
    switch (o.positionals[0]) {
      case 'enroll':
        return enroll(o);
      case 'code':
        return code(o);
      case 'status':
        return status(o);
      default:
        throw new CliError('bad_arguments', { en: 'Usage: duet wallet enroll|code|status', zh: '用法：duet wallet enroll|code|status' });
    }
  },
};
