/** Small durable-file helpers for the command line's own state (issuer, terminal and wallet folders). */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CliError } from './command.js';

/** Writes a file atomically and durably: temp file, fsync, rename, fsync the folder. Mode 0600. */
export function writeFileDurable(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** Reads and parses a JSON file, or says in both languages which file is missing or broken. */
export function readJson(path: string, what: { en: string; zh: string }): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new CliError('not_found', { en: `No ${what.en} at ${path}`, zh: `${path} 处没有${what.zh}` });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new CliError('corrupt_file', { en: `The ${what.en} at ${path} is not valid JSON`, zh: `${path} 处的${what.zh}文件已损坏` });
  }
}

export function dataDir(explicit: string | undefined, name: string): string {
  return explicit ?? join(process.cwd(), 'data', name);
}
