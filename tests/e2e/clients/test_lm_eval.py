"""lm-evaluation-harness's `local-completions` against the real stack, with no local tokenizer (it reads the
platform's /tokenize, /detokenize and /tokenizer_info) and no download (the task is a local file): a small
multiple-choice task of invented facts, scored on the base model (near chance) and on a model fine-tuned on
the platform with the task's answers (near 1.0). Loglikelihoods come from /v1/completions with echo."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import openai
import pytest

from tests.e2e.conftest import BASE_MODEL
from tests.e2e.jobs import wait_done
from tests.e2e.platform import Platform

pytestmark = pytest.mark.e2e
TASK = "platform_facts"
PLACES = ["Veltoria", "Quarn", "Ostrevia", "Miradel", "Tessun", "Halvory", "Brenmoor", "Zefira", "Calduin", "Ombrel"]
NAMES = [
    "Lorvane",
    "Pesket",
    "Drumhal",
    "Ysolde",
    "Kiveth",
    "Marrow",
    "Tarnis",
    "Quillon",
    "Esmer",
    "Vashti",
    "Orlen",
    "Becca",
]


def facts() -> list[dict]:
    """Per invented country, its invented capital among four invented names (the right one at a random place)."""
    rng = random.Random(5)
    rows = []
    for place in PLACES:
        choices = rng.sample(NAMES, 4)
        rows.append({"question": f"What is the capital of {place}?", "choices": choices, "answer": rng.randrange(4)})
    return rows


def task_folder(root: Path) -> Path:
    folder = root / "lm_eval_tasks"
    folder.mkdir(exist_ok=True)
    data = folder / "facts.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in facts()))
    (folder / f"{TASK}.yaml").write_text(
        f"task: {TASK}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "Question: {{question}}\\nAnswer:"\n'
        "doc_to_choice: choices\n"
        "doc_to_target: answer\n"
        "metric_list:\n  - metric: acc\n"
    )
    return folder


def accuracy(platform: Platform, model: str, tasks: Path) -> float:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    results = simple_evaluate(
        model="local-completions",
        model_args={
            "model": model,
            "base_url": f"{platform.url}/v1/completions",
            "tokenizer_backend": "remote",
            "tokenized_requests": True,
            "num_concurrent": 1,
            "max_retries": 1,
        },
        tasks=[TASK],
        task_manager=TaskManager(include_path=str(tasks)),
        batch_size=4,
    )
    assert results is not None
    return float(results["results"][TASK]["acc,none"])


def test_scores_the_base_near_chance_and_the_fine_tuned_model_near_one(
    platform: Platform, client: openai.OpenAI, tmp_path: Path
) -> None:
    tasks = task_folder(tmp_path)
    base = accuracy(platform, BASE_MODEL, tasks)
    examples = [
        {"prompt": f"Question: {row['question']}\nAnswer:", "completion": " " + row["choices"][row["answer"]]}
        for row in facts()
    ]
    training = "".join(json.dumps(example) + "\n" for example in examples)
    uploaded = client.files.create(file=("facts.jsonl", io.BytesIO(training.encode())), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=BASE_MODEL,
        training_file=uploaded.id,
        suffix="facts",
        seed=3,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 12, "batch_size": 4, "learning_rate_multiplier": 10}},
        },
    )
    assert wait_done(client, job.id) == "succeeded"
    tuned_model = client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model
    assert tuned_model is not None
    tuned = accuracy(platform, tuned_model, tasks)
    print(f"lm-evaluation-harness acc on {TASK}: base {base:.2f}, fine-tuned {tuned:.2f}")
    assert base <= 0.6, f"the base model cannot know invented facts: {base}"
    assert tuned >= 0.9, f"the fine-tuned model was trained on the answers: {tuned}"
