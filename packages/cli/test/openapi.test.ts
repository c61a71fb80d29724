import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openApiText } from '../src/commands/openapi.js';

describe('docs/openapi.json', () => {
  it('is exactly what the server describes (regenerate with `npx duet openapi > docs/openapi.json`)', async () => {
    const live = JSON.parse(await openApiText()) as { paths: Record<string, unknown> };
    const kept = JSON.parse(readFileSync(join(import.meta.dirname, '../../../docs/openapi.json'), 'utf8')) as unknown;
    expect(kept).toEqual(live);
    expect(Object.keys(live.paths)).toContain('/v1/terminal/authorize');
  });
});
