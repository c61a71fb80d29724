import { parseArgs } from 'node:util';
import { SUITES, type SuiteName } from '@duet/protocol';

export interface Words {
  readonly en: string;
  readonly zh: string;
}

export interface Command {
  readonly name: string;
  readonly summary: Words;
  readonly usage: string;
  run(args: readonly string[]): Promise<number>;
}

/** A usage or input error of the command line itself, with words in both languages. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly code: string,
    readonly words: Words,
  ) {
    super(`${code}: ${words.en}`);
  }

  toJSON(): { code: string; en: string; zh: string } {
    return { code: this.code, en: this.words.en, zh: this.words.zh };
  }
}

export type OptionSpec = { readonly [name: string]: { readonly type: 'string' | 'boolean'; readonly short?: string } };

export interface ParsedOptions {
  /** string options as strings, boolean flags as true, absent options absent */
  readonly values: { readonly [name: string]: string | boolean | undefined };
  readonly positionals: readonly string[];
}

/** node:util parseArgs (strict), with its errors turned into a typed CliError. */
export function parseOptions(args: readonly string[], options: OptionSpec): ParsedOptions {
  try {
    const spec: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
    for (const [k, v] of Object.entries(options)) spec[k] = v.short === undefined ? { type: v.type } : { type: v.type, short: v.short };
    const { values, positionals } = parseArgs({ args: [...args], options: spec, allowPositionals: true, strict: true });
    return { values: values as ParsedOptions['values'], positionals };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new CliError('bad_arguments', { en: `Bad arguments: ${msg}`, zh: `参数错误：${msg}` });
  }
}

/** A string option's value (undefined when absent). */
export function str(o: ParsedOptions, name: string): string | undefined {
  const v = o.values[name];
  return typeof v === 'string' ? v : undefined;
}

/** True when a boolean flag was given. */
export function flag(o: ParsedOptions, name: string): boolean {
  return o.values[name] === true;
}

/** Parses a bounded non-negative integer option. */
export function intOption(value: string | undefined, name: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,15}$/.test(value) || Number(value) > max) {
    throw new CliError('bad_arguments', { en: `--${name} must be an integer from 0 to ${max}`, zh: `--${name} 必须是 0 到 ${max} 的整数` });
  }
  return Number(value);
}

/** Parses --suite; p256 when absent. */
export function suiteOption(value: string | undefined): SuiteName {
  if (value === undefined) return 'p256';
  const suite = SUITES.find((s) => s === value);
  if (suite === undefined) {
    throw new CliError('bad_arguments', {
      en: `--suite must be one of ${SUITES.join(', ')}`,
      zh: `--suite 须为 ${SUITES.join('、')} 之一`,
    });
  }
  return suite;
}

/** JSON for the terminal: byte arrays as hex, so keys and hashes read as they do everywhere else. */
export function toJsonLine(value: unknown): string {
  return `${JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))}\n`;
}
