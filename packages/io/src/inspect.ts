import { FormatError } from '@tematrainer/tensor';
import { ggmlTypeName, type GgufValue, openGguf } from './gguf.js';
import { readLlama2cHeader, readLlama2cTokenizer } from './llama2c.js';
import { openSafetensors } from './safetensors.js';
import { type ByteSource, toSource } from './source.js';
import { decodeTrainerState } from './state.js';

const MAX_ARRAY_ITEMS = 8;
const MAX_STRING_CHARS = 120;

function formatValue(value: unknown): string {
  if (typeof value === 'string') {
    return JSON.stringify(value.length > MAX_STRING_CHARS ? `${value.slice(0, MAX_STRING_CHARS)}…` : value);
  }
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) {
    const shown = value.slice(0, MAX_ARRAY_ITEMS).map(formatValue).join(', ');
    return value.length > MAX_ARRAY_ITEMS ? `[${shown}, … (${value.length} items)]` : `[${shown}]`;
  }
  if (ArrayBuffer.isView(value)) return `<${value.byteLength} bytes>`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.entries(value).map(([k, v]) => `${k}: ${formatValue(v)}`).join(', ')}}`;
  }
  return String(value);
}

async function inspectSafetensors(source: ByteSource): Promise<string> {
  const file = await openSafetensors(source);
  const lines = [`format: safetensors`, `header: ${file.headerLength} bytes`, `metadata: ${formatValue(file.metadata)}`, `tensors: ${file.tensors.size}`];
  for (const [name, t] of file.tensors) lines.push(`  ${name}  ${t.dtype}  [${t.shape.join(', ')}]`);
  return lines.join('\n');
}

async function inspectGguf(source: ByteSource): Promise<string> {
  const file = await openGguf(source);
  const lines = [`format: GGUF version ${file.version}`, `alignment: ${file.alignment}`, `data offset: ${file.dataOffset}`, `metadata: ${file.metadata.size} keys`];
  for (const [key, value] of file.metadata) lines.push(`  ${key} = ${formatValue(value as GgufValue)}`);
  lines.push(`tensors: ${file.tensors.size} (shapes row-major)`);
  for (const [name, t] of file.tensors) lines.push(`  ${name}  ${ggmlTypeName(t.type)}  [${t.shape.join(', ')}]`);
  return lines.join('\n');
}

async function inspectLlama2c(source: ByteSource): Promise<string> {
  const { config } = await readLlama2cHeader(source);
  const { dim, hidden_dim: hidden, n_layers: L, n_heads, n_kv_heads, vocab_size: vocab } = config;
  const kvDim = (dim / n_heads) * n_kv_heads;
  const shapes: [string, number[]][] = [
    ['token_embedding_table', [vocab, dim]], ['rms_att_weight', [L, dim]], ['wq', [L, dim, dim]], ['wk', [L, kvDim, dim]],
    ['wv', [L, kvDim, dim]], ['wo', [L, dim, dim]], ['rms_ffn_weight', [L, dim]], ['w1', [L, hidden, dim]],
    ['w2', [L, dim, hidden]], ['w3', [L, hidden, dim]], ['rms_final_weight', [dim]],
  ];
  if (!config.shared_classifier) shapes.push(['wcls', [vocab, dim]]);
  const lines = [`format: llama2.c checkpoint (${config.version === 0 ? 'legacy layout' : 'version 1, fp32'})`, `config: ${formatValue(config)}`, `tensors: ${shapes.length}`];
  for (const [name, shape] of shapes) lines.push(`  ${name}  F32  [${shape.join(', ')}]`);
  return lines.join('\n');
}

/** Counts the entries of a llama2.c tokenizer by walking it to its end, or returns undefined when it does not parse as one. */
function countTokenizerEntries(bytes: Uint8Array): number | undefined {
  if (bytes.length < 4) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const maxLength = view.getUint32(0, true);
  let pos = 4;
  let count = 0;
  while (pos < bytes.length) {
    if (pos + 8 > bytes.length) return undefined;
    const length = view.getInt32(pos + 4, true);
    if (length < 0 || length > maxLength) return undefined;
    pos += 8 + length;
    count++;
  }
  return pos === bytes.length && count > 0 ? count : undefined;
}

async function inspectTokenizer(source: ByteSource, count: number): Promise<string> {
  const tokenizer = await readLlama2cTokenizer(source, count);
  const lines = [`format: llama2.c tokenizer`, `max_token_length: ${tokenizer.maxTokenLength}`, `tokens: ${count}`];
  for (let i = 0; i < Math.min(count, MAX_ARRAY_ITEMS); i++) lines.push(`  ${i}  ${JSON.stringify(tokenizer.tokens[i])}  score ${tokenizer.scores[i]}`);
  if (count > MAX_ARRAY_ITEMS) lines.push(`  …`);
  return lines.join('\n');
}

function inspectState(file: string, bytes: Uint8Array): string {
  const state = decodeTrainerState(bytes, file);
  const lines = [`format: trainer state (msgpack)`];
  const walk = (value: unknown, path: string): void => {
    const record = value as Record<string, unknown>;
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value)) {
      if (typeof record['dtype'] === 'string' && Array.isArray(record['shape']) && ArrayBuffer.isView(record['data'])) {
        lines.push(`  ${path}  ${record['dtype']}  [${(record['shape'] as number[]).join(', ')}]`);
        return;
      }
      for (const [key, item] of Object.entries(record)) walk(item, path ? `${path}.${key}` : key);
      return;
    }
    lines.push(`  ${path} = ${formatValue(value)}`);
  };
  walk(state, '');
  return lines.join('\n');
}

// Trainer state and tokenizers are read whole to recognise them, so only files up to this size are tried.
const MAX_WHOLE_READ = 256 * 1024 * 1024;

/**
 * Detects the format of a file (safetensors, GGUF, llama2.c checkpoint or tokenizer, trainer
 * state) and describes it: format, metadata, and every tensor's name, dtype and shape.
 */
export async function inspectFile(input: string | ByteSource): Promise<string> {
  const source = await toSource(input);
  const path = source.name;
  const head = await source.read(0, Math.min(16, source.size));
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const text = (body: string) => `${path} (${source.size} bytes)\n${body}`;

  if (head.length >= 4 && view.getUint32(0, true) === 0x46554747) return text(await inspectGguf(source));
  if (head.length >= 9 && head[8] === 0x7b && view.getBigUint64(0, true) + 8n <= BigInt(source.size)) {
    return text(await inspectSafetensors(source));
  }

  try {
    return text(await inspectLlama2c(source));
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
  }

  if (source.size <= MAX_WHOLE_READ) {
    const bytes = await source.read(0, source.size);
    try {
      return text(inspectState(path, bytes));
    } catch (error) {
      if (!(error instanceof FormatError)) throw error;
    }
    const count = countTokenizerEntries(bytes);
    if (count !== undefined) return text(await inspectTokenizer(source, count));
  }
  throw new FormatError(`${path}: not a recognised format (expected safetensors, GGUF, a llama2.c checkpoint or tokenizer, or trainer state)`);
}
