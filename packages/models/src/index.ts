export * from './tokenizer/index.js';
export * from './config.js';
export * from './linear.js';
export * from './weights.js';
export * from './llama.js';
export * from './load.js';
export * from './fixtures.js';
export * from './generate.js';
