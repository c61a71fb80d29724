import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkLayers, readGraph } from './layers.js';

const root = join(import.meta.dirname, '..');

describe('DESIGN.md §3 dependency direction', () => {
  it('no package imports an outer or same-layer package, by manifest or by source, and there is no cycle', () => {
    const { packages, edges } = readGraph(root);
    expect(packages).toContain('protocol');
    expect(packages).toContain('cli');
    expect(checkLayers(packages, edges)).toEqual([]);
  });

  it('no package reaches into another package by path or into its src/dist', () => {
    expect(readGraph(root).deepImports).toEqual([]);
  });

  it('the protocol package imports nothing from node: outside its node entry (it must run in the browser)', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const dir = join(root, 'packages/protocol/src');
    const offenders: string[] = [];
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name !== 'node.ts' && /from\s+['"]node:/.test(readFileSync(p, 'utf8'))) offenders.push(p);
      }
    };
    walk(dir);
    expect(offenders).toEqual([]);
  });

  it('the check catches an inner package importing an outer one', () => {
    const problems = checkLayers(['protocol', 'terminal'], [{ from: 'protocol', to: 'terminal', where: 'x.ts' }]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/must not import @duet\/terminal/);
  });

  it('the check catches a same-layer import and a cycle', () => {
    const problems = checkLayers(
      ['wallet', 'terminal'],
      [
        { from: 'wallet', to: 'terminal', where: 'a.ts' },
        { from: 'terminal', to: 'wallet', where: 'b.ts' },
      ],
    );
    expect(problems.some((p) => p.startsWith('cycle: '))).toBe(true);
    expect(problems.filter((p) => p.includes('must not import'))).toHaveLength(2);
  });

  it('the check catches a package without a layer and an unknown import', () => {
    const problems = checkLayers(['mystery'], [{ from: 'mystery', to: 'nowhere', where: 'c.ts' }]);
    expect(problems).toEqual(['package "mystery" has no layer in test/layers.ts', 'c.ts: imports unknown package @duet/nowhere']);
  });
});
