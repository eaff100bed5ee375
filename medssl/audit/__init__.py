"""Audit: what produced each number, and checks of a run record against a workspace.

One concept per module:

- :mod:`~medssl.audit.dvcstate`: what DVC knows (hashes of paths, ``dvc.lock``, stage
  names), through DVC's own API;
- :mod:`~medssl.audit.environment`: package versions, hardware, determinism flags, git state;
- :mod:`~medssl.audit.record`: the run record (``results/audit/run_record.json``), its
  headline metrics and split summary, written and read back;
- :mod:`~medssl.audit.verify`: re-hash a workspace and list each difference from a record;
- :mod:`~medssl.audit.reproduce`: re-run the recorded stages in a scratch workspace and
  compare metrics and, on CPU, output hashes.
"""

from medssl.audit.dvcstate import (
    LOCK_NAME,
    hash_paths,
    open_repo,
    pipeline_stage_names,
    producer_of,
    read_lock,
    recorded_stages,
)
from medssl.audit.environment import (
    PACKAGES,
    cpu_model,
    determinism_flags,
    git_state,
    hardware,
    package_versions,
)
from medssl.audit.errors import AuditError
from medssl.audit.record import (
    CODE_PATHS,
    HEADLINE_METRICS,
    RECORD_VERSION,
    build_record,
    flatten,
    headline_metrics,
    headline_records,
    read_record,
    seeds_of,
    split_summary,
    write_record,
)
from medssl.audit.reproduce import (
    compare_metrics,
    compare_rerun,
    on_cpu,
    prepare_workspace,
    reproduce_in,
)
from medssl.audit.verify import compare_hashes, compare_params, verify_record
from medssl.runs import find_run_dir

__all__ = [
    "CODE_PATHS",
    "HEADLINE_METRICS",
    "LOCK_NAME",
    "PACKAGES",
    "RECORD_VERSION",
    "AuditError",
    "build_record",
    "compare_hashes",
    "compare_metrics",
    "compare_params",
    "compare_rerun",
    "cpu_model",
    "determinism_flags",
    "find_run_dir",
    "flatten",
    "git_state",
    "hardware",
    "hash_paths",
    "headline_metrics",
    "headline_records",
    "on_cpu",
    "open_repo",
    "package_versions",
    "pipeline_stage_names",
    "prepare_workspace",
    "producer_of",
    "read_lock",
    "read_record",
    "recorded_stages",
    "reproduce_in",
    "seeds_of",
    "split_summary",
    "verify_record",
    "write_record",
]
