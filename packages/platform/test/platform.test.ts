/**
 * The platform's HTTP contract (platform.contract.ts), over real HTTP, once on SQLite and once on
 * PostgreSQL: the same behaviour on both (DESIGN §12). PostgreSQL comes from test/pg-harness.ts.
 */
import { platformContract } from './platform.contract.js';
import { databases } from './pg-harness.js';

for (const d of databases) platformContract(d);
