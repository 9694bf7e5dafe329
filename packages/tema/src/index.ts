export * from './data/index.js';
export * from './assets/index.js';
export * from './args.js';
export * from './schedule.js';
export * from './progress.js';
export * from './sft-trainer.js';
export * from './tema-trainer.js';
export * from './checkpoint.js';
