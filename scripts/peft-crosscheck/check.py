"""Load the adapter written by write.ts with Python's peft and compare its logits with ours.

    python scripts/peft-crosscheck/check.py OUT_DIR
"""
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

out = sys.argv[1] if len(sys.argv) > 1 else "runs/peft-crosscheck"
expected = load_file(f"{out}/logits.safetensors")
with open(f"{out}/adapter/adapter_config.json") as f:
    base_path = __import__("json").load(f)["base_model_name_or_path"]

model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32), f"{out}/adapter")
model.eval()
with torch.no_grad():
    logits = model(input_ids=expected["input_ids"].long()).logits
adapted = sum(1 for name, _ in model.named_modules() if name.endswith("lora_A"))
diff = (logits - expected["logits"]).abs().max().item()
print(f"peft wrapped {adapted} layers; max |logit difference| = {diff:.3g} (largest logit {logits.abs().max().item():.3g})")
sys.exit(0 if diff < 1e-4 else 1)
