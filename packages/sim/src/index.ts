export * from './result.js';
export * from './report.js';
