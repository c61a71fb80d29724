/** `duet code inspect TEXT`: decodes a scanned code and prints its fields as JSON (no secrets in a code). */
import { formatYuan, textToCode, toHex } from '@duet/protocol';
import { CliError, type Command, parseOptions } from '../command.js';

export const codeCommand: Command = {
  name: 'code',
  summary: { en: 'Inspect a scanned payment code (decode only)', zh: '解析扫描到的付款码（仅解码）' },
  usage: 'duet code inspect <TEXT>\n  Decodes a DU1: code strictly and prints its fields as JSON, or a typed error.',
  async run(args) {
    const { positionals } = parseOptions(args, {});
    const [verb, text] = positionals;
    if (verb !== 'inspect' || text === undefined) {
      throw new CliError('bad_arguments', { en: 'Usage: duet code inspect <TEXT>', zh: '用法：duet code inspect <文本>' });
    }
    const code = textToCode(text);
    const c = code.credential;
    const out = {
      bytes: code.bytes.length,
      time: new Date(code.time * 1000).toISOString(),
      counter: code.counter,
      credential: {
        serial: c.serial,
        holder: c.holder,
        campus: c.campus,
        role: c.role,
        scopes: c.scopes,
        issuer_key_id: c.issuerKeyId,
        issuer_suite: c.issuerSuite,
        device_suite: c.deviceSuite,
        device_public_key: toHex(c.devicePublicKey),
        limits_yuan: {
          per_payment: formatYuan(c.limits.perPayment),
          offline_total: formatYuan(c.limits.offlineTotal),
          offline_count: c.limits.offlineCount,
        },
        not_before: new Date(c.notBefore * 1000).toISOString(),
        not_after: new Date(c.notAfter * 1000).toISOString(),
      },
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return 0;
  },
};
