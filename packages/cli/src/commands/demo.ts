/**
 * `duet demo` (what `npm start` runs): the platform on the embedded SQLite with a demo campus and
 * the three web apps, printing their addresses and the demo sign-ins. The campus is made on first
 * start and kept under ./data/demo; `--reset` starts over. The campus is alive by default: simulated
 * terminals and wallets pay, drop offline and upload in the background (`--no-traffic` turns it off).
 */
import { type Demo, type DemoOptions, startDemo } from '@duet/web';
import { CliError, type Command, flag, intOption, parseOptions, str } from '../command.js';
import { dataDir } from '../files.js';

type TrafficOptions = Exclude<DemoOptions['traffic'], boolean | undefined>;

function describe(d: Demo): string {
  const lines: string[] = [];
  const add = (s = ''): void => {
    lines.push(s);
  };
  add(d.created ? 'Duet demo campus made and running / Duet 演示校园已创建并启动' : 'Duet demo campus running / Duet 演示校园已启动');
  if (!d.webMounted) {
    add('  ! The web apps are not built: run `npm run build` / 网页应用尚未构建：请运行 `npm run build`');
  }
  add();
  add(`  Operator console / 运营控制台   ${d.url}/console/`);
  for (const s of d.staff) {
    add(`      ${s.username.padEnd(10)} ${d.password}   ${s.role}${s.merchant !== undefined ? ` · ${s.merchant}` : ''}`);
  }
  add();
  add(`  Wallet / 钱包                   ${d.url}/wallet/`);
  add(`      holders / 持卡人 ${d.holders.first} … ${d.holders.first + d.holders.withPassword - 1}   password / 密码 ${d.password}`);
  add(`      (${d.holders.last - d.holders.first + 1} holders in all / 共 ${d.holders.last - d.holders.first + 1} 名持卡人)`);
  add();
  add(`  POS / 收银台                    ${d.url}/pos/`);
  const shown = new Set<number>();
  for (const t of d.terminals) {
    if (t.activationCode === undefined || shown.has(t.merchantId)) continue;
    shown.add(t.merchantId);
    add(`      ${t.location} (#${t.id}): ${d.url}/pos/#activate=${t.activationCode}`);
  }
  const waiting = d.terminals.filter((t) => t.activationCode !== undefined).length;
  const active = d.terminals.length - waiting;
  add(
    `      ${active} terminals active, ${waiting} waiting for activation (codes above are new each start, valid 24 h) / ` +
      `${active} 台终端已激活，${waiting} 台待激活（激活码每次启动重新生成，24 小时内有效）`,
  );
  add();
  const traffic = d.traffic;
  if (traffic !== undefined) {
    add(
      `  The campus is live / 校园运行中: ${traffic.terminals.length} terminals (#${traffic.terminals.join(', #')}) and ` +
        `${traffic.holders.length} holders (${traffic.holders[0] ?? '-'} … ${traffic.holders[traffic.holders.length - 1] ?? '-'}) pay, ` +
        `go offline and upload in the background (--no-traffic for a quiet campus) / ` +
        `${traffic.terminals.length} 台终端与 ${traffic.holders.length} 名持卡人在后台模拟支付、离线与上传（--no-traffic 可关闭）`,
    );
    add();
  }
  add('  API: /openapi.json   metrics / 监控指标: /metrics   Ctrl-C stops / 停止   --reset starts over / 重新开始');
  return `${lines.join('\n')}\n`;
}

export const demoCommand: Command = {
  name: 'demo',
  summary: {
    en: 'Run the platform with a demo campus and the console, wallet and POS web apps',
    zh: '运行带演示校园的平台，以及控制台、钱包与收银网页应用',
  },
  usage: [
    'duet demo [--port N] [--host ADDR] [--data DIR] [--holders N] [--reset] [--log] [--no-traffic] [--payment-every MS]',
    '  The campus is made on first start under --data (default ./data/demo) and kept; --reset starts over.',
    '  Simulated terminals and wallets keep it busy (a payment every 2–5 s; --payment-every sets the mean);',
    '  --no-traffic leaves it quiet.',
    '  DUET_KEY_PASSPHRASE seals the keys (default: the development passphrase: a demo is not production).',
  ].join('\n'),
  async run(args) {
    const o = parseOptions(args, {
      port: { type: 'string' },
      host: { type: 'string' },
      data: { type: 'string' },
      holders: { type: 'string' },
      reset: { type: 'boolean' },
      log: { type: 'boolean' },
      'no-traffic': { type: 'boolean' },
      'payment-every': { type: 'string' },
    });
    const holders = intOption(str(o, 'holders'), 'holders', 400, 5_000);
    if (holders < 1) throw new CliError('bad_arguments', { en: '--holders must be at least 1', zh: '--holders 至少为 1' });
    const every = str(o, 'payment-every');
    const mean = intOption(every, 'payment-every', 3_500, 600_000);
    if (mean < 100)
      throw new CliError('bad_arguments', { en: '--payment-every must be at least 100 ms', zh: '--payment-every 至少为 100 毫秒' });
    const traffic: TrafficOptions | false = flag(o, 'no-traffic')
      ? false
      : {
          ...(every !== undefined ? { paymentEveryMs: { min: Math.round(mean * 0.6), max: Math.round(mean * 1.4) } } : {}),
          log: (line) => process.stderr.write(`${line}\n`),
        };
    let demo: Demo;
    try {
      demo = await startDemo({
        dataDir: dataDir(str(o, 'data'), 'demo'),
        reset: flag(o, 'reset'),
        port: intOption(str(o, 'port'), 'port', 8080, 65_535),
        host: str(o, 'host') ?? '127.0.0.1',
        holders,
        logger: flag(o, 'log'),
        traffic,
        ...(process.env.DUET_KEY_PASSPHRASE !== undefined ? { passphrase: process.env.DUET_KEY_PASSPHRASE } : {}),
      });
    } catch (e) {
      const text = String(e);
      if (/EADDRINUSE/.test(text)) {
        throw new CliError('listen_failed', {
          en: `The port is taken (${text}); try --port 8081`,
          zh: `端口已被占用（${text}）；可用 --port 8081`,
        });
      }
      throw e;
    }
    process.stdout.write(describe(demo));
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.stderr.write('duet demo: stopping / 正在停止\n');
        void demo.close().then(resolve, resolve);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return 0;
  },
};
