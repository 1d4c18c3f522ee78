"""Kedro project settings. Defaults are used except where noted."""

from kedro.config import OmegaConfigLoader

from simlabel.hooks import RankZeroSavesHooks, RuntimeHooks
from simlabel.parameters import ParameterValidationHooks
from simlabel.runlock import RunLockHooks
from simlabel.runtime import output_root

CONFIG_LOADER_CLASS = OmegaConfigLoader
# Parameters merge deeply across environments, so conf/local can add one method to `methods:`.
# `${output_root:<dataset_dir>}` puts each folder's outputs in their own place (runtime.output_root).
CONFIG_LOADER_ARGS = {
    "base_env": "base", "default_run_env": "local", "merge_strategy": {"parameters": "soft"},
    "custom_resolvers": {"output_root": output_root},
}

# Every parameter checked before anything runs; one run at a time per project (a lock in data/);
# runtime.threads; under torchrun only rank 0 writes files.
HOOKS = (ParameterValidationHooks(), RunLockHooks(), RuntimeHooks(), RankZeroSavesHooks())
