import { DeviceError } from './errors.js';
import { log } from './log.js';

/** Optional features the library uses when the adapter offers them. */
const WANTED_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];

/** The runtime's WebGPU binding, as detected by `getDevice`. */
export type WebGpuRuntime = 'node-webgpu' | 'bun-webgpu' | 'deno' | 'browser';

export interface DeviceInfo {
  device: GPUDevice;
  /**
   * The adapter and the GPU instance behind the device. Kept referenced on purpose: with the
   * `webgpu` Node addon, collecting the instance while the device lives crashes the process.
   */
  adapter: GPUAdapter;
  gpu: GPU;
  adapterInfo: { vendor: string; architecture: string; device: string; description: string };
  runtime: WebGpuRuntime;
  features: Set<string>;
  limits: Record<string, number>;
  /** True when the adapter is a CPU (software) implementation such as Mesa's lavapipe. */
  isSoftware: boolean;
}

const NO_ADAPTER_HELP =
  'No WebGPU adapter found. Install a GPU driver with Vulkan, Metal or D3D12 support, or on Linux ' +
  "without a GPU install Mesa's software Vulkan driver (lavapipe): on Debian bookworm add " +
  '"deb http://deb.debian.org/debian bookworm-backports main" to the APT sources, run ' +
  '`apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1`, and set XDG_RUNTIME_DIR ' +
  'to a writable folder.';

let devicePromise: Promise<DeviceInfo> | null = null;

declare const Bun: unknown;
declare const Deno: unknown;

async function requestGpu(): Promise<{ gpu: GPU; runtime: WebGpuRuntime }> {
  if (typeof Bun !== 'undefined') {
    // Under Bun the `webgpu` Node addon crashes after a few hundred compute passes;
    // bun-webgpu reaches the same Dawn through Bun's FFI and runs long jobs cleanly.
    const mod: { setupGlobals: () => Promise<void> | void } = await import('bun-webgpu' as string);
    await mod.setupGlobals();
    return { gpu: (globalThis as { navigator: Navigator }).navigator.gpu, runtime: 'bun-webgpu' };
  }
  if (typeof Deno !== 'undefined' || (typeof navigator !== 'undefined' && 'gpu' in navigator && navigator.gpu)) {
    if (typeof navigator === 'undefined' || !navigator.gpu) {
      throw new DeviceError('Deno has no navigator.gpu here: run it with --unstable-webgpu.');
    }
    return { gpu: navigator.gpu, runtime: typeof Deno !== 'undefined' ? 'deno' : 'browser' };
  }
  if (typeof process !== 'undefined' && !process.env.XDG_RUNTIME_DIR) {
    // Mesa's Vulkan loader warns on every start without it; any writable folder will do.
    const os = await import('node:os');
    const fs = await import('node:fs');
    const dir = `${os.tmpdir()}/tema-xdg-${process.getuid?.() ?? 0}`;
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    process.env.XDG_RUNTIME_DIR = dir;
  }
  const mod: { create: (options: string[]) => GPU; globals: Record<string, unknown> } = await import(
    'webgpu' as string
  );
  Object.assign(globalThis, mod.globals);
  return { gpu: mod.create([]), runtime: 'node-webgpu' };
}

async function openDevice(): Promise<DeviceInfo> {
  const { gpu, runtime } = await requestGpu();
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new DeviceError(NO_ADAPTER_HELP);

  const features = WANTED_FEATURES.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const key of [
    'maxStorageBufferBindingSize',
    'maxBufferSize',
    'maxStorageBuffersPerShaderStage',
    'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX',
    'maxComputeWorkgroupSizeY',
    'maxComputeWorkgroupSizeZ',
    'maxComputeWorkgroupsPerDimension',
  ]) {
    const value = (adapter.limits as unknown as Record<string, number>)[key];
    if (typeof value === 'number') requiredLimits[key] = value;
  }
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
  } catch (e) {
    // bun-webgpu 0.1.7 rejects every requiredLimits entry ("Value must be between 0 and 0");
    // the default limits still run models whose largest tensor fits in 128 MiB.
    log(`WebGPU: this binding cannot request raised limits (${(e as Error).message}); using WebGPU's default limits, so no tensor may exceed 128 MiB`);
    device = await adapter.requestDevice({ requiredFeatures: features });
  }
  device.lost.then((info) => {
    if (info.reason !== 'destroyed') log(`WebGPU device lost: ${info.message}`);
  });

  const info = adapter.info ?? ({} as GPUAdapterInfo);
  const adapterInfo = {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
  };
  const limits: Record<string, number> = {};
  for (const key in device.limits) {
    const value = (device.limits as unknown as Record<string, number>)[key];
    if (typeof value === 'number') limits[key] = value;
  }
  const description = adapterInfo.description || `${adapterInfo.vendor} ${adapterInfo.architecture}`.trim();
  const isSoftware =
    /llvmpipe|lavapipe|swiftshader|software/i.test(description) ||
    (info as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  log(
    `WebGPU adapter: ${description || 'unknown'} (${runtime}); features: ${features.join(', ') || 'none'}; ` +
      `max storage binding ${limits.maxStorageBufferBindingSize} bytes`,
  );
  return { device, adapter, gpu, adapterInfo, runtime, features: new Set(features), limits, isSoftware };
}

/**
 * Return the process's WebGPU device, opening it on the first call: Dawn through the `webgpu`
 * addon on Node, Dawn through `bun-webgpu` on Bun, and `navigator.gpu` on Deno and in browsers.
 */
export function getDevice(): Promise<DeviceInfo> {
  if (!devicePromise) {
    devicePromise = openDevice();
    devicePromise.catch(() => {
      devicePromise = null;
    });
  }
  return devicePromise;
}
