"""The platform on a Ray cluster of two hosts that share no disk (network namespaces on this machine), started as
compose.yaml starts them, with the metadata in PostgreSQL and the artifacts in S3 on the bridge.

The head offers Ray one CPU (`NODE_CPUS=1`): the engine replica, placed while the head is alone, takes it, so a
trainer can only run on a worker host."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import openai
import pytest

from tests.cluster.hosts import Host, Network, namespaces_allowed
from tests.cluster.platform import Cluster, make_secrets, stores
from tests.e2e.conftest import BASE_MODEL
from tests.e2e.jobs import messages, metric_steps, wait_done
from tests.e2e.test_fine_tuning import ANSWER, CODE, ask, training_file

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not namespaces_allowed(), reason="needs root and network namespaces (ip netns)"),
]

TRAINED: dict[str, str] = {}  # the first test's model, which knows the code


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    with Network() as network, stores(network):
        cluster = Cluster(network, root, make_secrets(root / "secrets"), NODE_CPUS="1")
        cluster.start_head()
        cluster.add_worker("worker-1")
        cluster.wait_for_nodes(2)
        yield cluster


def sdk(cluster: Cluster) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{cluster.url}/v1", api_key="unused", max_retries=2, timeout=300)


class Every:
    """Calls `tick` every `interval_s` in a thread, from `with` until its end."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def tick(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self.stop.wait(self.interval_s):
            self.tick()

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


class TrainerWatch(Every):
    """Notes which hosts have a trainer process."""

    def __init__(self, hosts: list[Host]) -> None:
        super().__init__(1.0)
        self.hosts = hosts
        self.seen: set[str] = set()

    def tick(self) -> None:
        for host in self.hosts:
            if any("TrainerActor" in name for name in host.process_names()):
                self.seen.add(host.name)


def files_under(folder: Path, name: str) -> list[Path]:
    return [path for path in folder.rglob(name) if path.is_file()]


def test_the_loop_across_hosts(cluster: Cluster) -> None:
    client = sdk(cluster)
    uploaded = client.files.create(file=("train.jsonl", io.BytesIO(training_file())), purpose="fine-tune")
    hyperparameters = {"n_epochs": 3, "batch_size": 8, "learning_rate": 2e-3, "lora_r": 8, "lora_alpha": 16}
    job = client.fine_tuning.jobs.create(
        model=BASE_MODEL, training_file=uploaded.id, extra_body={"hyperparameters": hyperparameters}
    )
    with TrainerWatch([cluster.head, *cluster.workers]) as watch:
        assert wait_done(client, job.id) == "succeeded", client.fine_tuning.jobs.retrieve(job.id).error
    assert watch.seen == {"worker-1"}  # forced by resources: the head has no CPU left for it
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.fine_tuned_model is not None and done.finished_at is not None
    answer = ask(client, done.fine_tuned_model).choices[0].message.content
    servable_s = time.time() - done.finished_at
    assert answer is not None and CODE in answer, (answer, ANSWER)
    assert servable_s < 5 + 1  # finished_at is in whole seconds
    print(f"\nft: model answered on the head {servable_s:.1f} s after succeeded (trainer on worker-1)")
    TRAINED["model"] = done.fine_tuned_model

    head_data = cluster.head.data_dir
    assert not (head_data / "files").exists() and not (head_data / "fine_tuning").exists()
    adapters_on_head = files_under(head_data, "adapter_model.safetensors")
    assert adapters_on_head, "the engine on the head loads the adapter from its cache"
    assert all("cache/adapters" in str(path) for path in adapters_on_head), adapters_on_head  # only via the store
    assert files_under(cluster.workers[0].data_dir / "fine_tuning", "adapter_model.safetensors")


class ChatWatch(Every):
    """Chats with the base model every few seconds (the hosts share 2 cores: more would starve the trainer);
    counts answers and failures."""

    def __init__(self, client: openai.OpenAI) -> None:
        super().__init__(3.0)
        self.client = client
        self.answers = 0
        self.failures: list[str] = []

    def tick(self) -> None:
        try:
            reply = ask(self.client, BASE_MODEL)
            self.answers += bool(reply.choices[0].message.content)
        except Exception as exc:  # any failure is the finding, not a crash of the watch
            self.failures.append(repr(exc))


def test_a_lost_worker_host_costs_no_job_and_no_chat(cluster: Cluster) -> None:
    client = sdk(cluster)
    quick = openai.OpenAI(base_url=f"{cluster.url}/v1", api_key="unused", max_retries=0, timeout=60)
    uploaded = client.files.create(file=("train.jsonl", io.BytesIO(training_file())), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=BASE_MODEL, training_file=uploaded.id, hyperparameters={"n_epochs": 2, "batch_size": 8}
    )
    deadline = time.monotonic() + 600
    while max(metric_steps(client, job.id), default=0) < 7:  # the state of step 6 is in the store
        assert time.monotonic() < deadline, messages(client, job.id)
        time.sleep(1)
    lost = cluster.workers[0]
    with ChatWatch(quick) as chat:
        lost.link_down()
        lost.kill_all()
        deadline = time.monotonic() + 180
        while not any("The trainer was lost" in message for message in messages(client, job.id)):
            assert time.monotonic() < deadline, messages(client, job.id)
            time.sleep(2)
        time.sleep(10)
        assert client.fine_tuning.jobs.retrieve(job.id).status == "running"  # waiting for capacity, not failed
        cluster.add_worker("worker-2")  # capacity comes back
        assert wait_done(client, job.id) == "succeeded", client.fine_tuning.jobs.retrieve(job.id).error
    log = messages(client, job.id)
    assert "Fine-tuning job resumed from step 6" in log and log.count("The job has successfully completed") == 1
    assert sorted(metric_steps(client, job.id)) == list(range(1, 13))
    assert chat.failures == [] and chat.answers > 5, chat.failures
    print(f"\nworker host lost: {chat.answers} chats answered on the head meanwhile, none failed; resumed from step 6")


def test_a_restarted_head_brings_everything_back(cluster: Cluster) -> None:
    client = sdk(cluster)
    files = sorted(file.id for file in client.files.list().data)
    jobs = {job.id: job.status for job in client.fine_tuning.jobs.list(limit=100).data}
    models = sorted(model.id for model in client.models.list().data)
    assert cluster.stop_head() == (0, [])  # the head left nothing behind
    cluster.start_head()
    cluster.wait_for_nodes(2)  # the worker joined the new head by itself
    client = sdk(cluster)
    assert sorted(file.id for file in client.files.list().data) == files
    assert {job.id: job.status for job in client.fine_tuning.jobs.list(limit=100).data} == jobs
    assert sorted(model.id for model in client.models.list().data) == models
    answer = ask(client, TRAINED["model"]).choices[0].message.content
    assert answer is not None and CODE in answer
