export type { ChatMessage, ChatTemplateOptions, DecodeOptions, EncodeOptions, Tokenizer } from './types.js';
export {
  SentencePieceBpeTokenizer,
  TokenType,
  type GgufTokenizerData,
  type Llama2cTokenizerData,
  type SentencePieceVocab,
} from './sentencepiece.js';
