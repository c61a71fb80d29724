/** `duet openapi`: prints the platform's OpenAPI description (docs/openapi.json is this output). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeCrypto } from '@duet/protocol/node';
import { openPlatform } from '@duet/platform';
import type { Command } from '../command.js';

/** Builds the server on a throwaway database and returns its OpenAPI document as stable JSON text. */
export async function openApiText(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'duet-openapi-'));
  try {
    const p = await openPlatform({
      dataDir: dir,
      passphrase: 'openapi-only-passphrase',
      crypto: nodeCrypto(),
      clock: { nowMs: () => Date.now() },
      logger: false,
    });
    try {
      return `${JSON.stringify(p.openApi(), null, 2)}\n`;
    } finally {
      await p.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const openapiCommand: Command = {
  name: 'openapi',
  summary: { en: "Print the platform API's OpenAPI description", zh: '输出平台接口的 OpenAPI 描述' },
  usage: 'duet openapi > docs/openapi.json',
  async run() {
    process.stdout.write(await openApiText());
    return 0;
  },
};
