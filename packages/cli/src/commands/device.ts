import { init } from '@tematrainer/tensor';
import { type Command, rejectOptions, UsageError } from '../cli.js';

/** Opens the WebGPU device and prints what the adapter granted. */
export const deviceCommand: Command = {
  name: 'device',
  summary: 'open the WebGPU device and print the adapter, runtime, features and limits',
  usage: '',
  async run(args, output) {
    rejectOptions(this, args);
    if (args.length > 0) throw new UsageError(`device takes no arguments, got: ${args.join(' ')}`);

    const { info } = await init();
    const { vendor, architecture, device, description } = info.adapterInfo;
    const features = [...info.features].sort();
    const names = Object.keys(info.limits).sort();
    const width = Math.max(...names.map((n) => n.length));

    const lines = [
      `adapter: ${description || 'unknown'}`,
      `vendor: ${vendor || 'unknown'}, architecture: ${architecture || 'unknown'}, device: ${device || 'unknown'}`,
      `runtime: ${info.runtime}`,
      `software: ${info.isSoftware ? 'yes' : 'no'}`,
      `features: ${features.length > 0 ? features.join(', ') : 'none'}`,
      'limits:',
      ...names.map((name) => `  ${name.padEnd(width)}  ${info.limits[name]}`),
    ];
    output.stdout(`${lines.join('\n')}\n`);
    return 0;
  },
};
