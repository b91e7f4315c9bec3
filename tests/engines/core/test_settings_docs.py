"""The settings are documented once, on the fields of `Settings`; README.md's table is generated from them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec

from engines.core.settings import Settings, field_descriptions, settings_table

README = Path(__file__).resolve().parents[3] / "README.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def test_every_setting_has_a_description() -> None:
    descriptions = field_descriptions()
    assert list(descriptions) == [name.upper() for name in Settings.__struct_fields__]
    missing = [name for name, text in descriptions.items() if not text.strip()]
    assert not missing, f"Settings fields without msgspec.Meta(description=...): {missing}"


def test_descriptions_reach_the_json_schema() -> None:
    schema = msgspec.json.schema(Settings)
    properties = schema["$defs"]["Settings"]["properties"]
    assert {name: spec.get("description") for name, spec in properties.items()} == {
        name.lower(): text for name, text in field_descriptions().items()
    }


def test_table_has_one_row_per_setting() -> None:
    rows = settings_table().splitlines()[2:]
    assert [row.split(" | ")[0].strip("| `") for row in rows] == list(field_descriptions())
    assert "| `SERVE_PORT` | `8000` | " in settings_table()
    assert "| `CPU_BINDING` | `true` | " in settings_table()
    assert "| `API_KEYS` | unset | " in settings_table()


def test_readme_table_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.count(START) == 1 and text.count(END) == 1, f"README.md needs one {START} ... {END} block"
    block = text.split(START, 1)[1].split(END, 1)[0]
    assert block.strip() == settings_table().strip(), (
        "README.md's settings table is out of date: run `python -m engines.core.settings` and paste its output "
        f"between {START} and {END}"
    )


def test_module_prints_the_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "engines.core.settings"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=README.parent,
        check=True,
    )
    assert result.stdout == settings_table()
