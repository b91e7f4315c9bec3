"""Fine-tuned models as their owners manage them after the job: deleting one removes its name from the store at
once (every gateway stops routing it within its registry's refresh) and its weights from the artifact store, unless
another model has the same weights: a job's final adapter and its last checkpoint are usually the same bytes, and
content-addressed, they are one copy. Engines drop the weights they loaded once the copy in the store is gone."""

from __future__ import annotations

import hashlib
import io
import tarfile

from engines.adapter_cache import ADAPTERS_PREFIX, file_key, manifest_key, read_manifest
from engines.adapters import Adapter
from engines.artifacts import ArtifactStore
from engines.core.errors import PlatformError
from jobs.store import Store


class FineTunedModels:
    def __init__(self, store: Store, artifacts: ArtifactStore) -> None:
        self.store = store
        self.artifacts = artifacts

    def delete(self, name: str, *, owner: str) -> Adapter | None:
        """The deleted model, or None where `owner` has no model of that name. Blocking: call it from a thread."""
        removed = self.store.delete_model(name, owner=owner)
        if removed is None or removed.digest is None:
            return removed
        if not any(model.digest == removed.digest for model in self.store.list_models()):
            # The manifest first: without it no reader trusts the files that are still being removed.
            self.artifacts.delete(manifest_key(removed.digest))
            self.artifacts.delete_prefix(f"{ADAPTERS_PREFIX}/{removed.digest}/")
        return removed

    def adapter_archive(self, adapter: Adapter) -> bytes:
        """A tar of a published adapter's files (adapter_config.json and the weights at its root), as PEFT's
        `from_pretrained` and vLLM's `--lora-modules` load them once unpacked. Blocking: call it from a thread."""
        if adapter.digest is None:
            raise ValueError(f"{adapter.name} is not in the artifact store")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for file in read_manifest(self.artifacts, adapter.digest).files:
                data = self.artifacts.get_bytes(file_key(adapter.digest, file.path))
                if len(data) != file.size or hashlib.sha256(data).hexdigest() != file.sha256:
                    raise PlatformError(f"The stored weights of '{adapter.name}' do not match their manifest.")
                entry = tarfile.TarInfo(file.path)
                entry.size, entry.mtime, entry.mode = len(data), adapter.created, 0o644
                archive.addfile(entry, io.BytesIO(data))
        return buffer.getvalue()
