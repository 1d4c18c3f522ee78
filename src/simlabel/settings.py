"""Kedro project settings. Defaults are used except where noted."""

from kedro.config import OmegaConfigLoader

from simlabel.hooks import RankZeroSavesHooks
from simlabel.parameters import ParameterValidationHooks
from simlabel.runlock import RunLockHooks

CONFIG_LOADER_CLASS = OmegaConfigLoader
# Parameters merge deeply across environments, so conf/local can add one method to `methods:`.
CONFIG_LOADER_ARGS = {"base_env": "base", "default_run_env": "local", "merge_strategy": {"parameters": "soft"}}

# Every parameter checked before anything runs; one run at a time per project (a lock in data/);
# under torchrun only rank 0 writes files.
HOOKS = (ParameterValidationHooks(), RunLockHooks(), RankZeroSavesHooks())
