/** The package's shape: the main entry runs in the browser, and the wallet depends on the protocol only. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

describe('@duet/wallet entry points', () => {
  it('nothing but src/node.ts imports node: modules (the main entry must run in the browser)', () => {
    const offenders = readdirSync(join(root, 'src'))
      .filter((f) => f.endsWith('.ts') && f !== 'node.ts')
      .filter((f) => /from\s+['"]node:|import\(\s*['"]node:/.test(readFileSync(join(root, 'src', f), 'utf8')));
    expect(offenders).toEqual([]);
  });

  it('depends on @duet/protocol and its subpath entries only (never on terminal, platform or cli)', () => {
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    expect(Object.keys(manifest.dependencies ?? {})).toEqual(['@duet/protocol']);
    for (const f of readdirSync(join(root, 'src'))) {
      const imports = [...readFileSync(join(root, 'src', f), 'utf8').matchAll(/from\s+['"](@[^'"]+)['"]/g)].map((m) => m[1]);
      for (const i of imports) expect(i, f).toMatch(/^@duet\/protocol(\/[a-z-]+)?$/);
    }
  });
});
