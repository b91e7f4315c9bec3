"""Deleting fine-tuned models: the name at once, the weights once no other model has the same ones."""

from __future__ import annotations

from pathlib import Path

from engines.adapter_cache import manifest_key, publish_adapter
from engines.adapters import Adapter
from engines.artifacts import LocalArtifactStore
from jobs.models import FineTunedModels
from jobs.store import Store


def test_weights_go_with_the_last_model_that_has_them(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/s.sqlite3")
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"r": 8}')
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    digest = publish_adapter(artifacts, folder)
    for name in ("ft:m", "ft:m:ckpt-step-4"):  # a final adapter and the checkpoint at its last step: one copy
        store.add_model(Adapter(name=name, path=str(folder), parent="base", owner="alice", created=1, digest=digest))
    models = FineTunedModels(store, artifacts)

    assert models.delete("ft:m", owner="bob") is None
    deleted = models.delete("ft:m", owner="alice")
    assert deleted is not None and deleted.name == "ft:m"
    assert artifacts.exists(manifest_key(digest))  # the checkpoint still serves them

    assert models.delete("ft:m:ckpt-step-4", owner="alice") is not None
    assert not artifacts.exists(manifest_key(digest)) and artifacts.list(f"adapters/{digest}/") == []
    assert store.list_models() == []
