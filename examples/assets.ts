// Fetch and verify the demo's model and corpora into assets/ (or --dir DIR): copied from the
// folder named by TEMA_ASSETS_MIRROR when it is set, else downloaded from the public URLs in
// assets/manifest.json, and checked against their sha256 either way.
//   npx bun run examples/assets.ts [--dir DIR] [NAME ...]
import { ensureAssets, formatBytes } from '@tematrainer/tema';

const args = process.argv.slice(2);
const dirIndex = args.indexOf('--dir');
const dir = dirIndex >= 0 ? args[dirIndex + 1] : 'assets';
const names = args.filter((_, i) => i !== dirIndex && i !== dirIndex + 1);

const paths = await ensureAssets({
  dir,
  names: names.length ? names : undefined,
  onProgress: (p) => {
    if (p.bytesDone === p.bytesTotal) console.error(`${p.name}: ${formatBytes(p.bytesTotal)} from ${p.source}`);
  },
});
for (const [name, path] of Object.entries(paths)) console.log(`${name}\t${path}`);
