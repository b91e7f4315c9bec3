"""A fine-tuned model merged into its base (`merge_and_unload`), as a folder `vllm serve` and transformers load as
they are: safetensors weights with the base's config and tokenizer, in a tar kept in the artifact store under the
adapter's digest (`exports/<digest>/merged.tar`), so it is made once and any gateway replica serves it.

Merging needs torch and the model, which the gateway's processes never import: `Exporter` runs `merge` as a Ray
task where Ray is up (any node with the platform's environment), or in a worker thread of this process elsewhere
(the fast tests)."""

from __future__ import annotations

import asyncio
import os
import tarfile
import tempfile
from pathlib import Path

import msgspec

from engines.adapter_cache import AdapterCache
from engines.artifacts import ArtifactStore, artifact_store_from_url
from engines.default_model import on_this_node
from jobs.training_host import TRAINING_NICENESS

PREFIX = "exports"


class ExportPlace(msgspec.Struct, frozen=True):
    """Where a merge finds the artifact store (ARTIFACT_STORE and its default root) and the base model."""

    artifact_store: str
    default_root: str
    base_model_path: str

    def store(self) -> ArtifactStore:
        return artifact_store_from_url(self.artifact_store, default_root=Path(self.default_root))


def merged_key(digest: str) -> str:
    return f"{PREFIX}/{digest}/merged.tar"


def merge(place: ExportPlace, digest: str) -> str:
    """Merges the adapter `digest` into the base and stores the tar; returns its key. Blocking."""
    store = place.store()
    key = merged_key(digest)
    if store.exists(key):
        return key
    # The model stack is imported here, in the process that merges, never by the gateway that imports this module.
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_path = on_this_node(place.base_model_path)
    with tempfile.TemporaryDirectory(prefix="merge-") as work:
        adapter = AdapterCache(store, Path(work) / "adapters").materialize(digest)
        model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        folder = Path(work) / "merged"
        merged.save_pretrained(folder, safe_serialization=True)
        AutoTokenizer.from_pretrained(base_path).save_pretrained(folder)
        archive = Path(work) / "merged.tar"
        with tarfile.open(archive, "w") as tar:
            for path in sorted(folder.iterdir()):
                tar.add(path, arcname=path.name)
        store.put_file(key, archive)
    return key


class Exporter:
    def __init__(self, place: ExportPlace, *, on_ray: bool) -> None:
        self.place = place
        self.on_ray = on_ray

    async def merged(self, digest: str) -> str:
        """The key of the merged model of the adapter `digest`, merged first where it is not yet stored."""
        if not self.on_ray:
            return await asyncio.to_thread(merge, self.place, digest)
        import ray

        # No CPU reserved: a merge takes seconds, and waiting for a training slot's CPUs could take a job's length.
        return await ray.remote(num_cpus=0, max_retries=0)(_merge_below_inference).remote(self.place, digest)


def _merge_below_inference(place: ExportPlace, digest: str) -> str:
    """`merge` in a Ray worker, at the niceness trainers run at, so chat traffic on its node goes first."""
    os.nice(TRAINING_NICENESS)
    return merge(place, digest)
