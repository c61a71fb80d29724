/** `duet issuer init|publish`: a local issuer folder for trying terminals and wallets without the platform. */
import { nodeCrypto } from '@duet/protocol/node';
import { CliError, type Command, parseOptions, str, suiteOption } from '../command.js';
import { dataDir } from '../files.js';
import { LocalIssuer } from '../local-issuer.js';

export const issuerCommand: Command = {
  name: 'issuer',
  summary: { en: 'A local issuer for trying terminals and wallets (development only)', zh: '本地签发方，用于试用终端与钱包（仅限开发）' },
  usage:
    'duet issuer init [--dir DIR] [--suite p256|ed25519|sm2]   make keys and signed lists\n' +
    'duet issuer publish [--dir DIR]                          sign fresh lists (new versions)\n' +
    '  DIR defaults to ./data/issuer. Keys are kept in the clear: never use this in production.',
  async run(args) {
    const o = parseOptions(args, { dir: { type: 'string' }, suite: { type: 'string' } });
    const dir = dataDir(str(o, 'dir'), 'issuer');
    const crypto = nodeCrypto();
    const nowS = Math.floor(Date.now() / 1000);
    const verb = o.positionals[0];
    if (verb === 'init') {
      const { existsSync } = await import('node:fs');
      if (existsSync(LocalIssuer.fileIn(dir))) {
        throw new CliError('exists', { en: `An issuer already exists in ${dir}`, zh: `${dir} 中已有签发方` });
      }
      const issuer = await LocalIssuer.init(dir, crypto, suiteOption(str(o, 'suite')), nowS);
      process.stdout.write(`${JSON.stringify({ issuer: dir, root_key: issuer.rootKeys[0]?.keyId, suite: issuer.rootKeys[0]?.suite })}\n`);
      return 0;
    }
    if (verb === 'publish') {
      const issuer = await LocalIssuer.open(dir, crypto);
      await issuer.publish(nowS);
      process.stdout.write(`${JSON.stringify({ issuer: dir, published: true })}\n`);
      return 0;
    }
    throw new CliError('bad_arguments', { en: 'Usage: duet issuer init|publish', zh: '用法：duet issuer init|publish' });
  },
};
