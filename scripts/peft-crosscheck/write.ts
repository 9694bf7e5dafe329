// Write a LoRA adapter of stories260K-hf with this project, and its logits on one sentence, so
// that check.py can load the adapter with Python's peft and compare. Not part of CI: it needs
// torch, transformers and peft.
//   npx bun scripts/peft-crosscheck/write.ts OUT_DIR
import { writeSafetensors } from '@tematrainer/io';
import { fixture, loadModel } from '@tematrainer/models';
import { getPeftModel, saveAdapter } from '@tematrainer/peft';
import { fromData, init, noGrad, tidy } from '@tematrainer/tensor';

const out = process.argv[2] ?? 'runs/peft-crosscheck';
await init();
const { model, tokenizer } = await loadModel(fixture('stories260K-hf'));
// Random B (init_lora_weights false) so that the adapter changes the logits; rsLoRA scaling too.
const lora = getPeftModel(model, { r: 4, loraAlpha: 8, targetModules: 'all-linear', initLoraWeights: false, useRslora: true }, { seed: 3 });
await saveAdapter(lora, `${out}/adapter`, { baseModelNameOrPath: fixture('stories260K-hf') });

const ids = tokenizer.encode('Once upon a time, there was a little dog named Max.');
const logits = tidy(() => noGrad(() => model.forward(fromData(ids, [1, ids.length], 'i32'))));
await writeSafetensors(`${out}/logits.safetensors`, {
  input_ids: { dtype: 'I32', shape: [1, ids.length], data: Int32Array.from(ids) },
  logits: { dtype: 'F32', shape: [1, ids.length, model.config.vocabSize], data: (await logits.data()) as Float32Array },
});
console.log(`wrote ${out}/adapter and ${out}/logits.safetensors (${ids.length} tokens)`);
