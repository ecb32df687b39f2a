"""``vr-tools verify``: thin shell over :func:`vr_plugins.verify.step.verify`."""

import click

from vr_tools._data_cli import fail_on_input_errors, force_option, shard_option


@click.command(name="verify")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False),
              help="Run directory with questions.parquet and rollouts/seed-<k>.parquet; writes verified/seed-<k>.parquet.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Checker processes. Default: the usable CPU cores (more is allowed, with a warning).")
@click.option("--timeout", "timeout_s", type=float, default=5.0, show_default=True,
              help="CPU seconds per math check (the worker's own CPU time, so load does not flip grades; a "
              "wall-clock backstop of max(60, 20 x this) s also applies) and wall-clock seconds per check of "
              "plugin verifiers; past it the worker is killed and the rollout graded incorrect, timeout.")
@click.option("--code-timeout", "code_timeout_s", type=float, default=6.0, show_default=True,
              help="Seconds per test case of a code check (a program's limit is the sum over its tests).")
@click.option("--memory-mb", type=click.IntRange(min=64), default=2048, show_default=True,
              help="Address-space limit of each sandboxed program.")
@click.option("--math-backend", type=click.Choice(["vr", "skythought", "math_verify"]), default="vr",
              show_default=True, help="vr: exact numbers + Math-Verify + vetoes (zero known false positives); "
              "skythought: SkyThought's math_equal (paper parity, known false positives in docs/verification.md); "
              "math_verify: plain Math-Verify on the last box.")
@click.option("--seeds", default=None, help="Rollout seeds to verify ('0-7', '0,3'). Default: every rollouts/seed-<k>.parquet.")
@shard_option
@force_option
def command(run_dir, workers, timeout_s, code_timeout_s, memory_mb, math_backend, seeds, shard, force):
    """Grade rollouts with the verifier registered for each source family (math: answers; code: sandboxed tests).

    Prints a summary per family: rows, correct, correct rate, timeouts, errors (invalid tests, questions
    without any answer to compare with, checker crashes).
    """
    from vr_plugins.data.common import parse_seeds
    from vr_plugins.rundir.shards import parse_shard
    from vr_plugins.verify.step import verify

    with fail_on_input_errors():
        report = verify(run_dir, workers=workers, timeout_s=timeout_s, code_timeout_s=code_timeout_s,
                        memory_mb=memory_mb, math_backend=math_backend,
                        seeds=parse_seeds(seeds) if seeds else None, shard=parse_shard(shard), force=force)
    rate = report.checked / report.seconds if report.seconds else 0.0
    click.echo(f"checked {report.checked} rollouts ({report.skipped} already done) in {report.seconds:.1f} s "
               f"({rate:.1f}/s), {report.restarts} worker restart(s)")
    click.echo(report.table())
    _echo_sandbox_layers(report)
    for path in report.outputs:
        click.echo(f"  {path}")


def _echo_sandbox_layers(report) -> None:
    """When code was verified, say which sandbox layers this machine lacks (docs/verification.md)."""
    from vr_plugins.registry import get_verifier_for_family
    from vr_plugins.verify.sandbox import missing_layers, probe_isolation

    def is_code(family: str) -> bool:
        try:
            return "verify.code" in str(get_verifier_for_family(family).check)
        except Exception:  # noqa: BLE001 - an unknown family was already reported by verify
            return False

    if any(is_code(f) for f in report.families):
        for line in missing_layers(probe_isolation()):
            click.echo(f"code sandbox: reduced isolation: {line}")
