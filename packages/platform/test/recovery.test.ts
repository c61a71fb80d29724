/**
 * Advance and recovery over HTTP (recovery.contract.ts), once on SQLite and once on PostgreSQL: the
 * same behaviour on both. PostgreSQL comes from test/pg-harness.ts.
 */
import { databases } from './pg-harness.js';
import { recoveryContract } from './recovery.contract.js';

for (const d of databases) recoveryContract(d);
