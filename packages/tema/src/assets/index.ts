export {
  DEFAULT_MANIFEST_PATH,
  loadAssetManifest,
  parseAssetManifest,
  type AssetEntry,
  type AssetManifest,
} from './manifest.js';
export { ensureAssets, sha256OfFile, type AssetProgress, type AssetSource, type EnsureAssetsOptions } from './ensure.js';
