/**
 * @duet/terminal: the terminal core. Pure: storage, platform, clock and crypto are injected. The
 * SQLite journal for Linux POS terminals is a separate entry, `@duet/terminal/sqlite`.
 */
export * from './breaker.js';
export * from './decision.js';
export * from './deny-set.js';
export * from './limits.js';
export * from './memory-journal.js';
export * from './ports.js';
export * from './reasons.js';
export * from './state.js';
export * from './scheduler.js';
export * from './terminal.js';
export * from './uploader.js';
