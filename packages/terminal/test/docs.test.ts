import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DECLINE_REASONS } from '../src/index.js';

describe('docs/terminal.md', () => {
  const doc = readFileSync(join(import.meta.dirname, '../../../docs/terminal.md'), 'utf8');
  it.each(Object.entries(DECLINE_REASONS))('lists %s with its exact words in both languages', (code, words) => {
    const row = doc.split('\n').find((l) => new RegExp(`^\\|\\s*\`${code}\`\\s*\\|`).test(l));
    expect(row).toBeDefined();
    expect(row).toContain(words.en);
    expect(row).toContain(words.zh);
  });
});
