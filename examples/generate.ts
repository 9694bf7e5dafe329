// Load a model, optionally apply a LoRA adapter, and stream a greedy continuation.
//   npx bun examples/generate.ts [MODEL_PATH] [ADAPTER_DIR]
// MODEL_PATH is a Hugging Face folder (Llama family or GPT-2), a .gguf file or a llama2.c .bin
// checkpoint. It defaults to the stories260K fixture.
import { fixture, generate, loadModel } from '@tematrainer/models';
import { loadAdapter } from '@tematrainer/peft';
import { init } from '@tematrainer/tensor';

const [modelPath = fixture('stories260K-hf'), adapterDir] = process.argv.slice(2);

await init();
const { model, tokenizer, config } = await loadModel(modelPath);
console.error(`${config.architecture}: ${config.numHiddenLayers} layers, hidden ${config.hiddenSize}, vocabulary ${config.vocabSize}`);
const lora = adapterDir ? await loadAdapter(model, adapterDir) : null;

const prompt = 'Once upon a time';
process.stdout.write(prompt);
const result = await generate(model, tokenizer, tokenizer.encode(prompt), {
  maxNewTokens: 64,
  // Leave temperature out (or 0) for greedy decoding; set it with topK/topP/seed to sample.
  onText: (text) => process.stdout.write(text),
});
process.stdout.write('\n');
console.error(`${result.newIds.length} new tokens`);

lora?.unload();
model.dispose();
