// Fixed cost of dispatching work on this adapter, in microseconds:
//   in one pass     - 2,000 in-place adds of 64 elements recorded into one compute pass, one sync
//   submit per op   - the same adds, each in its own command buffer and submit, one sync at the end
//   submit and wait - an empty sync: submit nothing and wait for the queue to drain
// Prints one line per figure, then one JSON line. Never fails on time.
//   npx bun bench/ops.ts
import { addInPlace, engine, fromData, init } from '@tematrainer/tensor';

const OPS = 2000;
const EMPTY_SYNCS = 200;

await init();
const e = engine();
const info = e.info;
const adapter = info.adapterInfo.description || `${info.adapterInfo.vendor} ${info.adapterInfo.architecture}`;
console.log(`adapter: ${adapter} (${info.runtime})`);

const target = fromData(new Float32Array(64), [64]);
const delta = fromData(new Float32Array(64).fill(1), [64]);

// Warm-up: compiles the pipeline and creates the bind group.
addInPlace(target, delta);
await e.sync();

let start = performance.now();
for (let i = 0; i < OPS; i++) addInPlace(target, delta);
await e.sync();
const onePassUs = ((performance.now() - start) * 1000) / OPS;

start = performance.now();
for (let i = 0; i < OPS; i++) {
  addInPlace(target, delta);
  e.flush();
}
await e.sync();
const submitPerOpUs = ((performance.now() - start) * 1000) / OPS;

start = performance.now();
for (let i = 0; i < EMPTY_SYNCS; i++) await e.sync();
const submitAndWaitUs = ((performance.now() - start) * 1000) / EMPTY_SYNCS;

// 1 + 2 * OPS adds of 1.0 went into every element.
const check = new Float32Array(await e.read(target.buffer, 0, 4))[0];
if (check !== 1 + 2 * OPS) console.log(`warning: the adds produced ${check}, expected ${1 + 2 * OPS}; the figures timed broken work`);

const figures = {
  dispatchInOnePassUs: Number(onePassUs.toFixed(2)),
  dispatchWithSubmitUs: Number(submitPerOpUs.toFixed(2)),
  emptySubmitAndWaitUs: Number(submitAndWaitUs.toFixed(2)),
};
console.log(`add of 64 elements, ${OPS} in one pass: ${figures.dispatchInOnePassUs} us each`);
console.log(`add of 64 elements, one submit each: ${figures.dispatchWithSubmitUs} us each`);
console.log(`empty submit and wait: ${figures.emptySubmitAndWaitUs} us`);
console.log(JSON.stringify({ bench: 'ops', adapter, runtime: info.runtime, ...figures }));
process.exit(0);
