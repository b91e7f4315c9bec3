"""`python -m gateway.cluster_secrets DIR`: the secrets compose.yaml mounts (Ray's token, the database password,
the S3 store's key pair, also as the AWS credentials file boto3 reads, Grafana's admin password), made at random
into DIR, once: an existing file is kept, so running it again never locks a cluster out of its own database or
store."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path


def generate(folder: Path) -> list[Path]:
    """Writes the missing secret files; returns those it wrote."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # on the host; each file is readable inside its containers, whose users differ
    access_key = _read_or(folder / "s3_access_key", secrets.token_hex(10))
    secret_key = _read_or(folder / "s3_secret_key", secrets.token_urlsafe(30))
    contents = {
        "ray_token": secrets.token_hex(32),  # the form `ray get-auth-token --generate` makes
        "postgres_password": secrets.token_urlsafe(24),
        "s3_access_key": access_key,
        "s3_secret_key": secret_key,
        "s3_credentials": f"[default]\naws_access_key_id = {access_key}\naws_secret_access_key = {secret_key}\n",
        "grafana_password": secrets.token_urlsafe(18),
    }
    written = []
    for name, content in contents.items():
        path = folder / name
        if not path.exists():
            path.write_text(content if content.endswith("\n") else content + "\n")
            path.chmod(0o644)
            written.append(path)
    return written


def _read_or(path: Path, default: str) -> str:
    return path.read_text().strip() if path.exists() else default


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m gateway.cluster_secrets DIR", file=sys.stderr)
        return 2
    for path in generate(Path(args[0])):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
