export * from './config.js';
export * from './layer.js';
export * from './model.js';
export * from './files.js';
export * from './merge.js';
