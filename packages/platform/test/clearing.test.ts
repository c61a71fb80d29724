/** Clearing end to end (clearing.contract.ts), once on SQLite and once on PostgreSQL. */
import { clearingContract } from './clearing.contract.js';
import { databases } from './pg-harness.js';

for (const d of databases) clearingContract(d);
