/**
 * The dependency rule of DESIGN.md §3: inner packages never import outer ones, and packages form no
 * cycle. `checkLayers` is pure (it takes the import graph), so the test can prove it catches both.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Layer of each package: 0 is innermost. A package may import only packages of a lower layer. */
export const LAYERS: { readonly [pkg: string]: number } = {
  protocol: 0,
  wallet: 1,
  terminal: 1,
  card: 1,
  face: 1,
  platform: 2,
  gateway: 2,
  sim: 3,
  web: 3,
  // The launcher: `duet serve` and `duet demo` mount the web apps, `duet sim` runs the simulator.
  cli: 4,
};

export interface Edge {
  readonly from: string;
  readonly to: string;
  /** Where the import was seen: a file path, or "package.json". */
  readonly where: string;
}

export function checkLayers(packages: readonly string[], edges: readonly Edge[]): string[] {
  const problems: string[] = [];
  for (const p of packages) if (LAYERS[p] === undefined) problems.push(`package "${p}" has no layer in test/layers.ts`);
  for (const e of edges) {
    const from = LAYERS[e.from];
    const to = LAYERS[e.to];
    if (to === undefined) problems.push(`${e.where}: imports unknown package @duet/${e.to}`);
    else if (from !== undefined && to >= from && e.from !== e.to) {
      problems.push(`${e.where}: @duet/${e.from} (layer ${from}) must not import @duet/${e.to} (layer ${to})`);
    }
  }
  const cycle = findCycle(packages, edges);
  if (cycle !== undefined) problems.push(`cycle: ${cycle.join(' -> ')}`);
  return problems;
}

function findCycle(packages: readonly string[], edges: readonly Edge[]): string[] | undefined {
  const next = new Map<string, Set<string>>();
  for (const e of edges) if (e.from !== e.to) (next.get(e.from) ?? next.set(e.from, new Set()).get(e.from))?.add(e.to);
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (p: string): string[] | undefined => {
    if (state.get(p) === 'done') return undefined;
    if (state.get(p) === 'open') return [...stack.slice(stack.indexOf(p)), p];
    state.set(p, 'open');
    stack.push(p);
    for (const q of next.get(p) ?? []) {
      const c = visit(q);
      if (c !== undefined) return c;
    }
    stack.pop();
    state.set(p, 'done');
    return undefined;
  };
  for (const p of packages) {
    const c = visit(p);
    if (c !== undefined) return c;
  }
  return undefined;
}

const IMPORT_RE = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (/\.(ts|tsx|mts)$/.test(name)) out.push(path);
  }
  return out;
}

/** Reads the real graph: package.json dependencies and every import in every package's src/. */
export function readGraph(root: string): { packages: string[]; edges: Edge[]; deepImports: string[] } {
  const pkgDir = join(root, 'packages');
  const packages = readdirSync(pkgDir).filter((n) => statSync(join(pkgDir, n, 'package.json'), { throwIfNoEntry: false }) !== undefined);
  const edges: Edge[] = [];
  const deepImports: string[] = [];
  for (const p of packages) {
    const manifest = JSON.parse(readFileSync(join(pkgDir, p, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      devDependencies?: Record<string, string>;
    };
    for (const dep of Object.keys({ ...manifest.dependencies, ...manifest.devDependencies })) {
      if (dep.startsWith('@duet/')) edges.push({ from: p, to: dep.slice(6), where: `packages/${p}/package.json` });
    }
    const src = join(pkgDir, p, 'src');
    if (statSync(src, { throwIfNoEntry: false }) === undefined) continue;
    for (const file of sourceFiles(src)) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(IMPORT_RE)) {
        const spec = m[1] ?? m[2] ?? m[3] ?? '';
        const where = file.slice(root.length + 1);
        if (spec.startsWith('@duet/')) {
          const [, name, ...rest] = spec.split('/');
          edges.push({ from: p, to: name ?? '', where });
          if (rest[0] === 'src' || rest[0] === 'dist') deepImports.push(`${where}: ${spec} reaches into another package's internals`);
        } else if (/^(\.\.\/)+(packages\/)?[a-z]+\/(src|dist)\b/.test(spec) || spec.includes('/packages/')) {
          deepImports.push(`${where}: ${spec} reaches into another package by path`);
        }
      }
    }
  }
  return { packages, edges, deepImports };
}
