"""The merged export on the real base model: a LoRA adapter merged into its base gives the adapted model's logits
from a folder transformers loads as it is."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from engines.adapter_cache import publish_adapter
from jobs.export import ExportPlace, merge, merged_key


def test_a_merged_model_loads_in_transformers_and_answers_as_the_adapter(model_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapted = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), lora)
    adapted.save_pretrained(tmp_path / "adapter")
    place = ExportPlace(str(tmp_path / "store"), str(tmp_path), str(model_dir))
    digest = publish_adapter(place.store(), tmp_path / "adapter")

    key = merge(place, digest)

    assert key == merged_key(digest) and merge(place, digest) == key  # made once
    with tarfile.open(fileobj=io.BytesIO(place.store().get_bytes(key))) as archive:
        archive.extractall(tmp_path / "merged", filter="data")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (tmp_path / "merged").iterdir()}
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    reference = PeftModel.from_pretrained(base, tmp_path / "adapter")
    ids = torch.tensor([[1, 9690, 198, 2683, 359, 253, 5356, 5646]])
    with torch.no_grad():
        expected, got = reference(input_ids=ids).logits, merged(input_ids=ids).logits
        plain = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)(input_ids=ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3)
    assert not torch.allclose(plain, expected, atol=1e-2)  # the adapter does change the answer
