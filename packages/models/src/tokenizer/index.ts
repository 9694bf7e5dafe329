export type { ChatMessage, ChatTemplateOptions, DecodeOptions, EncodeOptions, Tokenizer } from './types.js';
export {
  SentencePieceBpeTokenizer,
  TokenType,
  type GgufTokenizerData,
  type Llama2cTokenizerData,
  type SentencePieceVocab,
} from './sentencepiece.js';
export { createDecodeStream, type DecodeStream, type DecodeStreamOptions } from './decode-stream.js';
export { HfTokenizer, loadHfTokenizer, type HfTokenizerConfig, type HfTokenizerOptions } from './hf.js';
export { ChatTemplate, type ChatTemplateTokens } from './chat-template.js';
