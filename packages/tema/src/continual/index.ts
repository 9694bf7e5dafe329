export * from './options.js';
export * from './metrics.js';
export * from './report.js';
export * from './run.js';
