"""Ray Serve LLM (`ray.serve.llm.build_openai_app`) on the same weights and engine settings as the others,
served until SIGTERM. Its ingress and its server each ask Ray for a CPU, so on a 2-core machine Ray is
given twice as many logical CPUs as cores, or the ingress is never scheduled."""

from __future__ import annotations

import argparse
import os
import signal
import threading

import ray
from ray import serve
from ray.serve.llm import LLMConfig, build_openai_app

from bench.servers import KV_CACHE_GIB, MODEL_DIR, MODEL_ID, S3_ENV


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lora-path", help="s3://... folder of adapter folders, served as <base>:<folder>")
    args = parser.parse_args()
    lora = {"lora_config": {"dynamic_lora_loading_path": args.lora_path, "max_num_adapters_per_replica": 8}}
    config = LLMConfig(
        model_loading_config={"model_id": MODEL_ID, "model_source": str(MODEL_DIR)},
        engine_kwargs={
            "dtype": "float32",
            "enforce_eager": True,
            "max_model_len": 4096,
            "enable_lora": True,
            "max_lora_rank": 32,
            "max_loras": 8,
        },
        placement_group_config={"bundles": [{"CPU": 1}]},
        deployment_config={"autoscaling_config": {"min_replicas": 1, "max_replicas": 1}},
        runtime_env={"env_vars": {"VLLM_CPU_KVCACHE_SPACE": KV_CACHE_GIB, **S3_ENV}},
        **(lora if args.lora_path else {}),
    )
    ray.init(num_cpus=2 * len(os.sched_getaffinity(0)), include_dashboard=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(build_openai_app({"llm_configs": [config]}), blocking=False)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
