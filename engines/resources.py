"""The resource plan: how a Ray cluster's CPUs and GPUs are split between engine replicas and training."""

from __future__ import annotations

import math
from collections.abc import Mapping

import msgspec

HEAD_RESOURCE = "head"
"""The custom resource the head host of a cluster offers (`python -m gateway.node head`)."""


class ResourceError(ValueError):
    """The cluster cannot host the requested engine replicas."""


class ResourcePlan(msgspec.Struct, frozen=True, kw_only=True):
    cluster_cpus: float
    cluster_gpus: float
    engine_replicas: int
    engine_cpus: float
    """Ray CPUs reserved per engine replica."""
    engine_gpus: float
    """GPUs per engine replica (fractional when replicas share one GPU)."""
    tensor_parallel_size: int
    training_cpus: float
    """CPUs left for training actors, all jobs together."""
    training_gpus: float
    trainer_cpus: float
    """CPUs one training job asks for."""
    trainer_gpus: float
    """GPUs one training job asks for."""
    control_resources: dict[str, float] = {}
    """Custom resources the gateway, the control plane and the limiter ask for: a share of the `head` resource on
    a cluster whose head host offers one (`python -m gateway.node head`), which keeps them on the head."""

    @property
    def device(self) -> str:
        return "cuda" if self.engine_gpus > 0 else "cpu"

    @property
    def max_parallel_jobs(self) -> int:
        return self._jobs_fitting(self.training_cpus, self.training_gpus)

    def parallel_jobs_on(self, cluster: Mapping[str, float]) -> int:
        """How many jobs fit `cluster` as it is now, which on a cluster hosts join and leave: what is left once the
        plan's engine replicas have their share, split as the plan splits it."""
        cpus, gpus = float(cluster.get("CPU", 0.0)), float(cluster.get("GPU", 0.0))
        training_gpus = gpus * self.training_gpus / self.cluster_gpus if self.cluster_gpus else 0.0
        engine_cpus = self.engine_replicas * self.engine_cpus
        return self._jobs_fitting(max(0.0, cpus - engine_cpus), training_gpus)

    def _jobs_fitting(self, cpus: float, gpus: float) -> int:
        if self.trainer_gpus > 0:
            return max(0, math.floor(gpus / self.trainer_gpus + 1e-9))
        return max(0, math.floor(cpus / self.trainer_cpus + 1e-9))


def plan_resources(
    cluster: Mapping[str, float],
    *,
    engine_replicas: int,
    engine_cpus: float,
    inference_gpu_fraction: float,
    training_gpu_fraction: float,
) -> ResourcePlan:
    """Splits GPUs by the two fractions; without GPUs, engines get CPUs and training the remainder."""
    cpus = float(cluster.get("CPU", 0.0))
    gpus = float(cluster.get("GPU", 0.0))
    control = {HEAD_RESOURCE: 0.01} if cluster.get(HEAD_RESOURCE, 0.0) > 0 else {}
    if gpus >= 1:
        inference_gpus = gpus * inference_gpu_fraction
        per_replica = inference_gpus / engine_replicas
        if per_replica <= 0:
            raise ResourceError(
                f"INFERENCE_GPU_FRACTION={inference_gpu_fraction} leaves no GPU for {engine_replicas} engine replica(s)"
            )
        tensor_parallel = max(1, math.floor(per_replica)) if per_replica >= 1 else 1
        engine_gpus = float(tensor_parallel) if per_replica >= 1 else per_replica
        training_gpus = gpus * training_gpu_fraction
        return ResourcePlan(
            cluster_cpus=cpus,
            cluster_gpus=gpus,
            engine_replicas=engine_replicas,
            engine_cpus=1.0,
            engine_gpus=engine_gpus,
            tensor_parallel_size=tensor_parallel,
            training_cpus=max(0.0, cpus - engine_replicas),
            training_gpus=training_gpus,
            trainer_cpus=1.0,
            trainer_gpus=min(1.0, training_gpus),
            control_resources=control,
        )
    needed = engine_replicas * engine_cpus
    if needed > cpus:
        raise ResourceError(
            f"{engine_replicas} engine replica(s) x ENGINE_CPUS={engine_cpus} need {needed} CPUs; the cluster has {cpus}"
        )
    return ResourcePlan(
        cluster_cpus=cpus,
        cluster_gpus=0.0,
        engine_replicas=engine_replicas,
        engine_cpus=engine_cpus,
        engine_gpus=0.0,
        tensor_parallel_size=1,
        training_cpus=cpus - needed,
        training_gpus=0.0,
        trainer_cpus=1.0,
        trainer_gpus=0.0,
        control_resources=control,
    )
