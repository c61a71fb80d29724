/**
 * `duet serve`: the platform service on 127.0.0.1 (by default), on SQLite under ./data unless
 * --db names another database. Keys are sealed under DUET_KEY_PASSPHRASE.
 */
import { nodeCrypto } from '@duet/protocol/node';
import { openPlatform, passphraseFromEnv } from '@duet/platform';
import { CliError, type Command, flag, intOption, parseOptions, str } from '../command.js';
import { dataDir } from '../files.js';

export const serveCommand: Command = {
  name: 'serve',
  summary: { en: 'Run the platform service (HTTP API, OpenAPI, metrics)', zh: '运行平台服务（HTTP 接口、OpenAPI、监控指标）' },
  usage: [
    'duet serve [--port N] [--host ADDR] [--db URL] [--data DIR] [--holder-topup] [--quiet]',
    '  --holder-topup: holders may top up their own cash purse in the wallet (a stand-in for a bank; demos only)',
    '  --db: sqlite:PATH or postgres://user:pass@host/db (default: SQLite in --data, ./data)',
    '  Environment: DUET_KEY_PASSPHRASE (required, at least 12 characters) seals the platform keys;',
    '  DUET_ADMIN_PASSWORD makes the first operator account "admin" on first start; DUET_METRICS_TOKEN lets a scraper read /metrics.',
  ].join('\n'),
  async run(args) {
    const o = parseOptions(args, {
      port: { type: 'string' },
      host: { type: 'string' },
      db: { type: 'string' },
      data: { type: 'string' },
      quiet: { type: 'boolean' },
      'holder-topup': { type: 'boolean' },
    });
    const { passphrase } = passphraseFromEnv(process.env);
    const adminPassword = process.env.DUET_ADMIN_PASSWORD;
    const dbUrl = str(o, 'db');
    const platform = await openPlatform({
      ...(dbUrl !== undefined ? { dbUrl } : {}),
      dataDir: dataDir(str(o, 'data'), ''),
      passphrase,
      // A server verifies on the thread pool, so a busy event loop keeps taking requests (NodeCryptoOptions).
      crypto: nodeCrypto({ verifyOn: 'pool' }),
      clock: { nowMs: () => Date.now() },
      logger: !flag(o, 'quiet'),
      holderTopUp: flag(o, 'holder-topup'),
      ...(process.env.DUET_METRICS_TOKEN !== undefined ? { metricsToken: process.env.DUET_METRICS_TOKEN } : {}),
      ...(adminPassword !== undefined ? { firstAdmin: { username: 'admin', password: adminPassword } } : {}),
    });
    const port = intOption(str(o, 'port'), 'port', 8080, 65_535);
    const host = str(o, 'host') ?? '127.0.0.1';
    try {
      const address = await platform.app.listen({ port, host });
      process.stderr.write(`duet serve: listening on ${address} / 平台服务已启动：${address}\n`);
    } catch (e) {
      await platform.close();
      throw new CliError('listen_failed', {
        en: `Cannot listen on ${host}:${port}: ${String(e)}`,
        zh: `无法监听 ${host}:${port}：${String(e)}`,
      });
    }
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.stderr.write('duet serve: stopping / 正在停止\n');
        void platform.close().then(resolve, resolve);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return 0;
  },
};
