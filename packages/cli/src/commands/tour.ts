/**
 * `duet tour`: a real walk-through of the dual certificate on
 * this machine: keys, trust list, a credential, an offline code as a QR, and a terminal-side check,
 * each step timed, including a tampered code and a stale one being refused.
 */
import {
  CredentialCache,
  codeToText,
  formatYuan,
  isProtocolError,
  makeCode,
  type SuiteName,
  textToCode,
  verifyCode,
  verifyTrustList,
} from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import QRCode from 'qrcode';
import { type Command, flag, parseOptions, str, suiteOption } from '../command.js';
import { issueCredential, makeWorld } from '../world.js';

const say = (en: string, zh: string): void => {
  process.stdout.write(`${en}\n  ${zh}\n`);
};

function ms(start: bigint): string {
  return `${(Number(process.hrtime.bigint() - start) / 1e6).toFixed(2)} ms`;
}

async function walkThrough(suite: SuiteName, showQr: boolean): Promise<number> {
  const crypto = nodeCrypto();
  const nowS = Math.floor(Date.now() / 1000);
  let t = process.hrtime.bigint();

  const world = await makeWorld(crypto, suite, nowS);
  say(
    `1. Platform keys made (${suite}): root, issuer, terminal-CA, list-signing; trust list v1 signed by the root (${world.trustList.bytes.length} B) [${ms(t)}]`,
    `平台密钥已生成（${suite}）：根密钥、发证密钥、终端CA密钥、名单签名密钥；根密钥签发信任列表 v1（${world.trustList.bytes.length} 字节）`,
  );

  t = process.hrtime.bigint();
  const { device, credential } = await issueCredential(world, { serial: 1001, holder: 424242, nowS });
  say(
    `2. Student's phone made a P-256 device key; the issuer signed credential #${credential.serial} (${credential.bytes.length} B): ` +
      `≤ ${formatYuan(credential.limits.perPayment)} yuan a payment, ${formatYuan(credential.limits.offlineTotal)} yuan and ${credential.limits.offlineCount} payments offline, valid 72 h [${ms(t)}]`,
    `学生手机生成 P-256 设备密钥；平台签发凭证 #${credential.serial}：单笔 ≤ ${formatYuan(credential.limits.perPayment)} 元，离线累计 ${formatYuan(credential.limits.offlineTotal)} 元 / ${credential.limits.offlineCount} 笔，有效 72 小时`,
  );

  t = process.hrtime.bigint();
  const code = await makeCode(credential, device, nowS, 1);
  const text = codeToText(code);
  say(
    `3. Phone offline: it signed code #1 (${code.bytes.length} B, ${text.length} QR characters) [${ms(t)}]`,
    `手机离线：设备签出付款码 #1（${code.bytes.length} 字节，二维码 ${text.length} 个字符）`,
  );
  process.stdout.write(`   ${text}\n`);
  if (showQr) process.stdout.write(await QRCode.toString(text, { type: 'utf8', errorCorrectionLevel: 'M', margin: 2 }));

  t = process.hrtime.bigint();
  await verifyTrustList(world.trustList, [world.rootKey], crypto, nowS);
  const cache = new CredentialCache();
  const scanned = textToCode(text);
  await verifyCode(scanned, { trust: world.trustList, crypto, nowS: nowS + 2, windowS: 60, skewS: 300, cache });
  say(
    `4. Terminal offline: trust list, credential signature, device signature and freshness all hold: ACCEPTED [${ms(t)}]`,
    `终端离线：信任列表、凭证签名、设备签名、时效均验证通过：受理`,
  );

  const tampered = text.slice(0, 60) + (text[60] === 'A' ? 'B' : 'A') + text.slice(61);
  await refused('5. A code with one character changed', '篡改一个字符的付款码', () =>
    verifyCode(textToCode(tampered), { trust: world.trustList, crypto, nowS, windowS: 60, skewS: 300 }),
  );
  await refused('6. The same code ten minutes later', '十分钟后的同一付款码', () =>
    verifyCode(scanned, { trust: world.trustList, crypto, nowS: nowS + 600, windowS: 60, skewS: 300, cache }),
  );
  await refused('7. Some other QR code', '其他二维码', async () => {
    textToCode('https://example.com/menu');
  });
  say(
    'Next: `npm test` runs every test; `npm run bench` measures codes per second against the raw signature floor.',
    '下一步：`npm test` 运行全部测试；`npm run bench` 测量每秒验码数并与签名验证下限对比。',
  );
  return 0;
}

async function refused(en: string, zh: string, attempt: () => Promise<void>): Promise<void> {
  try {
    await attempt();
  } catch (e) {
    if (!isProtocolError(e)) throw e;
    say(`${en}: REFUSED, ${e.code}: ${e.en}`, `${zh}：拒绝，${e.code}：${e.zh}`);
    return;
  }
  throw new Error(`${en} was accepted; it must be refused`);
}

export const tourCommand: Command = {
  name: 'tour',
  summary: {
    en: 'Walk through the dual certificate: keys, credential, offline code, terminal check',
    zh: '演示双证书流程：密钥、凭证、离线付款码、终端验码',
  },
  usage:
    'duet tour [--suite p256|ed25519|sm2] [--no-qr]\n  Issues a credential, makes an offline code and verifies it as a terminal would.',
  async run(args) {
    const o = parseOptions(args, { suite: { type: 'string' }, 'no-qr': { type: 'boolean' } });
    return walkThrough(suiteOption(str(o, 'suite')), !flag(o, 'no-qr'));
  },
};
