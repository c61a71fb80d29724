/**
 * Statements over HTTP (statements.contract.ts), once on SQLite and once on PostgreSQL.
 */
import { databases } from './pg-harness.js';
import { statementsContract } from './statements.contract.js';

for (const d of databases) statementsContract(d);
