#!/usr/bin/env node
/**
 * The one `duet` command. Each subcommand lives in commands/; this file only dispatches and turns
 * errors into a typed JSON line and an exit code (2 for a typed error, 1 for a bug).
 */
import { isProtocolError } from '@duet/protocol';
import { isWalletError } from '@duet/wallet';
import { auditCommand } from './commands/audit.js';
import { benchCommand } from './commands/bench.js';
import { codeCommand } from './commands/code.js';
import { demoCommand } from './commands/demo.js';
import { tourCommand } from './commands/tour.js';
import { issuerCommand } from './commands/issuer.js';
import { openapiCommand } from './commands/openapi.js';
import { serveCommand } from './commands/serve.js';
import { simCommand } from './commands/sim.js';
import { terminalCommand } from './commands/terminal.js';
import { walletCommand } from './commands/wallet.js';
import { witnessCommand } from './commands/witness.js';
import { CliError, type Command } from './command.js';

const COMMANDS: readonly Command[] = [
  demoCommand,
  tourCommand,
  serveCommand,
  terminalCommand,
  walletCommand,
  issuerCommand,
  codeCommand,
  openapiCommand,
  benchCommand,
  simCommand,
  auditCommand,
  witnessCommand,
];

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary.en}\n  ${' '.repeat(width)}  ${c.summary.zh}`);
  return [
    'duet — dual-offline campus payments / 双离线校园支付',
    '',
    'Usage / 用法: duet <command> [options]   (duet <command> --help for its options / 查看命令选项)',
    '',
    'Commands / 命令:',
    ...lines,
    '',
  ].join('\n');
}

/** Any error of ours that carries a stable code and bilingual words (platform, key store, …). */
function isTypedError(e: unknown): e is Error & { toJSON(): { code: string; en: string; zh: string } } {
  if (!(e instanceof Error) || !('toJSON' in e) || typeof e.toJSON !== 'function') return false;
  const j: unknown = e.toJSON();
  return typeof j === 'object' && j !== null && 'code' in j && 'en' in j && 'zh' in j && typeof j.code === 'string';
}

export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write('duet 0.1.0\n');
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) {
    process.stderr.write(`Unknown command "${name}" / 未知命令 "${name}"\n\n${help()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.usage}\n`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (e) {
    if (isProtocolError(e) || isWalletError(e) || e instanceof CliError || isTypedError(e)) {
      process.stderr.write(`${JSON.stringify({ error: e.toJSON() })}\n`);
      return 2;
    }
    throw e;
  }
}

// Run when executed directly (as the bin or `node dist/main.js`), not when imported by tests.
const invoked = process.argv[1] ?? '';
if (invoked.endsWith('/main.js') || invoked.endsWith('/duet')) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`duet: internal error / 内部错误: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
