/** End-to-end tests of the built `duet` command (npm test builds first), as an operator runs it. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const bin = join(import.meta.dirname, '../dist/main.js');

function duet(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('duet command', () => {
  it('--help lists every command in English and Chinese', () => {
    const r = duet('--help');
    expect(r.code).toBe(0);
    for (const name of ['demo', 'tour', 'code', 'bench']) expect(r.out).toMatch(new RegExp(`^  ${name} `, 'm'));
    expect(r.out).toContain('双离线');
  });

  it('an unknown command exits 2 and says so in both languages', () => {
    const r = duet('frobnicate');
    expect(r.code).toBe(2);
    expect(r.err).toContain('Unknown command');
    expect(r.err).toContain('未知命令');
  });

  it.each(['p256', 'ed25519', 'sm2'])('tour walks through issuing, paying and refusing with %s', (suite) => {
    const r = duet('tour', '--suite', suite, '--no-qr');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain('ACCEPTED');
    expect(r.out).toContain('REFUSED, bad_signature');
    expect(r.out).toContain('REFUSED, expired');
    expect(r.out).toContain('REFUSED, bad_prefix');
    const text = /^ {3}(DU1:.+)$/m.exec(r.out)?.[1];
    expect(text).toBeDefined();
    const inspected = duet('code', 'inspect', text ?? '');
    expect(inspected.code).toBe(0);
    const json = JSON.parse(inspected.out) as { bytes: number; credential: { serial: number; device_suite: string } };
    expect(json.credential.serial).toBe(1001);
    expect(json.bytes).toBeLessThanOrEqual(210);
  });

  it('a bad option value is a typed error, not a crash', () => {
    const r = duet('tour', '--suite', 'rsa');
    expect(r.code).toBe(2);
    expect(JSON.parse(r.err)).toMatchObject({ error: { code: 'bad_arguments' } });
  });

  it('inspecting garbage prints a typed protocol error and exits 2', () => {
    const r = duet('code', 'inspect', 'DU1:!!!');
    expect(r.code).toBe(2);
    const e = JSON.parse(r.err) as { error: { code: string; en: string; zh: string } };
    expect(e.error.code).toBe('bad_encoding');
    expect(e.error.zh.length).toBeGreaterThan(0);
  });
});
