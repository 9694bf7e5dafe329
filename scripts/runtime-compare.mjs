// Compare the JSON lines that runtime-check.mjs printed under several runtimes.
//
//   node scripts/runtime-compare.mjs short-node.json short-bun.json short-deno.json
//
// Exits 0 when every run's results are bitwise equal to the first run's (equal hashes), or else when
// every summed value is within 1e-6 relative of the first run's, which it prints as a difference.
// Exits 1 otherwise.
import { readFileSync } from 'node:fs';

const RELATIVE_TOLERANCE = 1e-6;

const files = process.argv.slice(2);
if (files.length < 2) {
  console.error('usage: node scripts/runtime-compare.mjs RESULT.json RESULT.json [...]');
  process.exit(2);
}

function lastJsonLine(file) {
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  try {
    return JSON.parse(lines[lines.length - 1]);
  } catch (error) {
    throw new Error(`${file}: the last line is not the JSON result of runtime-check.mjs (${error.message})`);
  }
}

const runs = files.map((file) => ({ file, ...lastJsonLine(file) }));
const [first, ...others] = runs;
let failed = false;

for (const run of others) {
  const pair = `${run.runtime} (${run.binding}) vs ${first.runtime} (${first.binding})`;
  if (run.hash === first.hash) {
    console.log(`${pair}: bitwise identical (hash ${run.hash})`);
    continue;
  }

  const worst = { name: '', relative: 0 };
  for (const [name, expected] of Object.entries(first.sums)) {
    const got = run.sums[name];
    const relative = Math.abs(got - expected) / Math.max(Math.abs(expected), Number.MIN_VALUE);
    if (!(relative <= worst.relative)) Object.assign(worst, { name, relative });
  }
  if (worst.relative <= RELATIVE_TOLERANCE) {
    console.log(
      `${pair}: not bitwise identical (hash ${run.hash} vs ${first.hash}), ` +
        `but within ${RELATIVE_TOLERANCE} relative (largest: ${worst.name} at ${worst.relative.toExponential(2)})`,
    );
  } else {
    console.error(
      `${pair}: results differ: ${worst.name} is ${run.sums[worst.name]} against ${first.sums[worst.name]} ` +
        `(${worst.relative.toExponential(2)} relative, tolerance ${RELATIVE_TOLERANCE})`,
    );
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
