/**
 * Base class of every error this project raises on purpose: bad input files, shape or dtype
 * mismatches, invalid configuration. Callers can catch `TemaError` to tell those apart from bugs.
 */
export class TemaError extends Error {
  override name = 'TemaError';
}

/** An input file or stream that does not follow its format; the message names the file and the field. */
export class FormatError extends TemaError {
  override name = 'FormatError';
}

/** An invalid value in a configuration object or file; the message names the field. */
export class ConfigError extends TemaError {
  override name = 'ConfigError';
}

/** No WebGPU adapter or device could be opened; the message says how to get one. */
export class DeviceError extends TemaError {
  override name = 'DeviceError';
}

/** Tensors whose shapes or dtypes do not fit the op; the message names the op and the shapes. */
export class ShapeError extends TemaError {
  override name = 'ShapeError';
}
