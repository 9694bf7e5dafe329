// Continual fine-tuning with TEMA against plain SFT: one model learns several domains in turn,
// and the report shows how much of its base domain (what it was pretrained on) each method forgot.
//
//   bun run examples/continual.ts                      # the default run (stories260K, 3 domains)
//   bun run examples/continual.ts --protocol reference # the reference measurement protocol
//   bun run examples/continual.ts --help               # every option
//
// Ctrl-C saves a checkpoint; `--resume` continues from it.
import {
  continualHelp,
  forgettingReduction,
  formatDuration,
  matrixTable,
  parseContinualArgs,
  signed,
  runContinual,
  summaryTable,
} from '@tematrainer/tema';
import { init, TemaError, tuneMatmul } from '@tematrainer/tensor';

async function main(): Promise<number> {
  const options = parseContinualArgs(process.argv.slice(2));
  if ('help' in options) {
    console.log(continualHelp());
    return 0;
  }
  await init();
  // Measured once per adapter and cached on disk; later runs read the cache.
  await tuneMatmul();

  let stop = false;
  process.on('SIGINT', () => {
    if (stop) process.exit(130);
    stop = true;
    console.error('\nstopping after this step and saving a checkpoint (Ctrl-C again to quit at once)');
  });

  const run = await runContinual(options, { shouldStop: () => stop });
  if (run.interrupted) return 130;

  console.log('');
  for (const r of run.results) {
    console.log(`Perplexity on each domain's held-out text, ${r.method}:`);
    console.log(matrixTable(r));
    console.log('');
  }
  console.log(`Summary, ${run.base} base (forgetting = base-domain perplexity after the last stage minus before training):`);
  console.log(summaryTable(run.summaries));
  const sft = run.summaries.find((s) => s.method === 'sft');
  for (const s of run.summaries) {
    if (!sft || s === sft) continue;
    if (sft.forgetting <= 0) {
      console.log(`sft did not forget the base domain (${signed(sft.forgetting)}), so there is no forgetting for ${s.method} to reduce.`);
      continue;
    }
    const reduction = forgettingReduction(sft, s);
    const cost = s.averageJustLearned / sft.averageJustLearned - 1;
    console.log(
      `${s.method} forgets ${(100 * reduction).toFixed(0)}% less than sft; its new-domain perplexity (each domain right after its stage, averaged) is ${cost >= 0 ? '+' : ''}${(100 * cost).toFixed(1)}% relative to sft's.`,
    );
  }
  console.log(`\nTook ${formatDuration(run.seconds)}. Report: ${run.outDir}/report.html (metrics.jsonl, results.json and the adapters are beside it).`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    if (e instanceof TemaError) {
      console.error(`error: ${e.message}`);
      process.exit(2);
    }
    throw e;
  },
);
