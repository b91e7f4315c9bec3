from __future__ import annotations

import pytest

from engines.resources import ResourceError, plan_resources


def plan(cluster: dict[str, float], replicas: int = 1, **kwargs):
    args = {"engine_cpus": 1.0, "inference_gpu_fraction": 0.6, "training_gpu_fraction": 0.4, **kwargs}
    return plan_resources(cluster, engine_replicas=replicas, **args)


def test_cpu_cluster_leaves_the_rest_to_training() -> None:
    result = plan({"CPU": 2})
    assert result.device == "cpu"
    assert (result.engine_cpus, result.engine_gpus, result.tensor_parallel_size) == (1.0, 0.0, 1)
    assert result.training_cpus == 1.0 and result.max_parallel_jobs == 1


def test_cpu_cluster_too_small() -> None:
    with pytest.raises(ResourceError, match="ENGINE_CPUS"):
        plan({"CPU": 2}, replicas=3)


def test_gpus_split_by_fractions() -> None:
    result = plan({"CPU": 32, "GPU": 8}, replicas=2)
    assert result.device == "cuda"
    assert result.tensor_parallel_size == 2 and result.engine_gpus == 2.0
    assert result.training_gpus == pytest.approx(3.2) and result.trainer_gpus == 1.0
    assert result.max_parallel_jobs == 3


def test_one_gpu_is_shared() -> None:
    result = plan({"CPU": 8, "GPU": 1})
    assert result.engine_gpus == pytest.approx(0.6) and result.tensor_parallel_size == 1
    assert result.trainer_gpus == pytest.approx(0.4) and result.max_parallel_jobs == 1


def test_a_cluster_with_a_head_host_keeps_the_control_side_there() -> None:
    on_head = plan_resources(
        {"CPU": 6, "head": 1, "worker": 2},
        engine_replicas=1,
        engine_cpus=1,
        inference_gpu_fraction=0.6,
        training_gpu_fraction=0.4,
    )
    assert on_head.control_resources == {"head": 0.01}
    single = plan_resources(
        {"CPU": 2}, engine_replicas=1, engine_cpus=1, inference_gpu_fraction=0.6, training_gpu_fraction=0.4
    )
    assert single.control_resources == {}


def test_jobs_fit_the_cluster_as_it_grows_and_shrinks() -> None:
    head_alone = plan({"CPU": 1}, replicas=1)
    assert head_alone.max_parallel_jobs == 0
    assert head_alone.parallel_jobs_on({"CPU": 3}) == 2  # two worker hosts joined
    assert head_alone.parallel_jobs_on({"CPU": 0.5}) == 0
    on_gpus = plan({"CPU": 8, "GPU": 2}, replicas=1)
    assert on_gpus.trainer_gpus == pytest.approx(0.8) and on_gpus.max_parallel_jobs == 1
    assert on_gpus.parallel_jobs_on({"CPU": 16, "GPU": 8}) == 4  # 40% of 8 GPUs, 0.8 per trainer
