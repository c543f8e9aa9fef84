"""gin/isaaclab/*.gin against docs/isaaclab_settings.toml, the table that cites a source for every value."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from genpo.builders import GIN_DIR, parse_config
from genpo.builders.config import query_parameter
from genpo.envs.isaaclab import TASK_IDS

TABLE = tomllib.loads((Path(__file__).resolve().parents[1] / "docs" / "isaaclab_settings.toml").read_text())
TASKS = TABLE["tasks"]


def test_the_table_covers_every_isaaclab_config_and_the_adapters_task_ids():
    assert {path.stem for path in (GIN_DIR / "isaaclab").glob("*.gin")} == set(TASKS) | {"base"}
    assert {name: (task["release_id"], task["development_id"]) for name, task in TASKS.items()} == TASK_IDS


def test_every_value_names_a_source_and_isaaclab_values_a_file_and_line():
    isaaclab = TABLE["sources"]["isaaclab"]
    assert re.fullmatch(r"[0-9a-f]{40}", isaaclab["commit"]) and isaaclab["repository"] == "isaac-sim/IsaacLab"
    for source in ("isaaclab", "isaaclab_2_0"):
        assert re.fullmatch(r"[0-9a-f]{40}", TABLE["sources"][source]["commit"]), source
    for name, task in TASKS.items():
        assert re.fullmatch(r"[\w/]+\.py:\d+", task["release_id_at"]), name
        assert re.fullmatch(r"[\w/]+\.py:\d+", task["release_id_2_0_at"]), name
        assert re.fullmatch(r"isaac-sim/IsaacLab@[0-9a-f]{40}:[\w/]+\.py:\d+", task["development_id_at"]), name
        for key, setting in task["settings"].items():
            assert setting["source"] in TABLE["sources"], (name, key)
            if setting["source"] == "isaaclab":
                assert re.fullmatch(r"[\w/]+/agents/rsl_rl_ppo_cfg\.py:\d+", setting["at"]), (name, key)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_isaaclab_config_binds_the_tables_values(name):
    parse_config([TASKS[name]["gin"]])
    assert query_parameter("genpo.build_env.name") == f"isaaclab:{name}"
    for key, setting in TASKS[name]["settings"].items():
        value = query_parameter(key)
        expected = setting["value"]
        assert (list(value) if isinstance(value, tuple) else value) == expected, (name, key)

