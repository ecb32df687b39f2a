"""Run several LLaMA-Factory trainings in one interpreter (one ~15 s import instead of one per run).

Usage: ``python tests/lf_multi_run.py a.json b.json ...`` or, for data-parallel runs,
``torchrun --nproc_per_node 2 tests/lf_multi_run.py a.json b.json``. Each config goes through
``llamafactory.train.tuner.run_exp``: the function ``llamafactory-cli train`` (and, under torchrun, its
launcher script) calls. The runs share one process group (LLaMA-Factory would destroy it at the end of
each run); the accelerate/DeepSpeed state of a run is reset before the next one.
"""

import json
import sys


def _keep_process_group() -> None:
    """Runs share one process group: LLaMA-Factory's end-of-run destroy becomes a no-op until exit."""
    import torch.distributed as dist

    dist.destroy_process_group = lambda *args, **kwargs: None


def _reset_between_runs() -> None:
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    try:
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()
    except ImportError:
        pass


def main(paths: list[str]) -> None:
    from llamafactory.train.tuner import run_exp

    _keep_process_group()
    for i, path in enumerate(paths):
        with open(path) as f:
            config = json.load(f)
        if i:
            _reset_between_runs()
        run_exp(config)


if __name__ == "__main__":
    main(sys.argv[1:])
