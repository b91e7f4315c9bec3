"""`python -m jobs.admin`: what an operator does to a platform's state from a shell, with the same settings
(DATABASE_URL, ARTIFACT_STORE, DATA_DIR) the platform runs with.

    python -m jobs.admin add-adapter NAME DIRECTORY   serve a PEFT LoRA adapter as model NAME, on every node
    python -m jobs.admin list-adapters                 the adapters the store serves

On one node, a folder under DATA_DIR/adapters/NAME/ is enough; on a cluster, whose nodes share no disk,
`add-adapter` puts the adapter in the artifact store, where every engine replica finds it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engines.adapter_cache import publish_adapter
from engines.adapters import ADAPTER_NAME, SHARED_OWNER, Adapter, AdapterError, inspect_adapter
from engines.artifacts import artifact_store_from_url
from engines.core.settings import Settings, SettingsError
from jobs.store import Store


def add_adapter(settings: Settings, name: str, directory: Path) -> Adapter:
    if not ADAPTER_NAME.match(name) or name.startswith("ft:"):
        raise ValueError(f"{name!r} is not a valid adapter model name (letters, digits, '.', '_', ':', '-'; no ft:)")
    inspect_adapter(directory, max_lora_rank=settings.max_lora_rank)
    artifacts = artifact_store_from_url(settings.artifact_store, default_root=settings.data_path)
    digest = publish_adapter(artifacts, directory)
    adapter = Adapter(
        name=name,
        path=str(directory.resolve()),
        parent=settings.model_name,
        created=int(time.time()),
        owner=SHARED_OWNER,
        digest=digest,
    )
    Store.open(settings.store_url).add_model(adapter)
    return adapter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.admin", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add-adapter", help="serve a PEFT LoRA adapter directory as a model, on every node")
    add.add_argument("name")
    add.add_argument("directory", type=Path)
    commands.add_parser("list-adapters", help="the adapters the store serves")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "add-adapter":
            adapter = add_adapter(settings, args.name, args.directory)
            print(f"{adapter.name}: published as {adapter.digest}")
        else:
            for adapter in Store.open(settings.store_url).list_models():
                print(f"{adapter.name}\t{adapter.owner}\t{adapter.digest or adapter.path}")
    except (SettingsError, AdapterError, ValueError, ConnectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
