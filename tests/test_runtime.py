"""keep_freed_memory: glibc's malloc told to keep freed memory, in the process (mallopt) and in
child processes (the environment), with the user's own settings winning; the run hook applies it."""

import json
import os
import platform
import subprocess
import sys

import pytest

from simlabel.runtime import MALLOC_SETTINGS

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings are glibc's")

PROBE = (
    "import json, os\n"
    "from simlabel.runtime import keep_freed_memory\n"
    "applied = keep_freed_memory()\n"
    "print(json.dumps({'applied': applied, **{k: v for k, v in os.environ.items() if k.startswith('MALLOC_')}}))\n"
)


def probe(code: str = PROBE, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**clean, **env})
    return json.loads(result.stdout.strip().splitlines()[-1])


@glibc
def test_sets_and_applies_the_defaults():
    seen = probe()
    assert seen == {"applied": True, "MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}
    assert {name: str(value) for name, (_, value) in MALLOC_SETTINGS.items()} == {k: v for k, v in seen.items() if k != "applied"}


@glibc
def test_the_users_values_win_and_a_bad_one_is_not_applied():
    assert probe(MALLOC_TRIM_THRESHOLD_="1048576") == {
        "applied": True, "MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": "1048576"}
    assert probe(MALLOC_TRIM_THRESHOLD_="lots")["applied"] is False


def test_the_run_hook_applies_it_before_any_node():
    code = (
        "import json, os\n"
        "from simlabel.hooks import RuntimeHooks\n"
        "class Catalog:\n"
        "    def load(self, name):\n"
        "        return {'threads': 1}\n"
        "RuntimeHooks().before_pipeline_run({}, None, Catalog())\n"
        "print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('MALLOC_') or k == 'OMP_NUM_THREADS'}))\n"
    )
    assert probe(code) == {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
                           "OMP_NUM_THREADS": "1"}
