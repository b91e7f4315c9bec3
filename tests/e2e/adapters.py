"""Builds a real PEFT LoRA adapter on the default model, with random (non-identity) weights so that
its answers visibly differ from the base model's."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from tests.e2e.platform import REPO

BASE_DIR = REPO / "var" / "cache" / "SmolLM2-135M-Instruct"


def build_random_adapter(target: Path, base_model_id: str, *, rank: int = 8, seed: int = 0, scale: float = 8.0) -> Path:
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(BASE_DIR, dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.mul_(scale)
    staging = target.with_name(f".{target.name}.tmp")
    peft_model.save_pretrained(staging)
    config_file = staging / "adapter_config.json"
    adapter_config = json.loads(config_file.read_text())
    adapter_config["base_model_name_or_path"] = base_model_id
    config_file.write_text(json.dumps(adapter_config))
    staging.rename(target)
    return target
