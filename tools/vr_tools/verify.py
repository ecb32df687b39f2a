"""``vr-tools verify``: thin shell over :func:`vr_plugins.verify.step.verify`."""

import click

from vr_plugins.options import VerifyOptions
from vr_tools._data_cli import force_option, shard_option
from vr_tools._options import from_field


@click.command(name="verify")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False),
              help="Run directory with questions.parquet and rollouts/seed-<k>.parquet; writes verified/seed-<k>.parquet.")
@from_field(VerifyOptions, "workers")
@from_field(VerifyOptions, "timeout", "--timeout", "timeout_s")
@from_field(VerifyOptions, "code_timeout", "--code-timeout", "code_timeout_s")
@from_field(VerifyOptions, "memory_mb")
@from_field(VerifyOptions, "math_backend")
@from_field(VerifyOptions, "seeds")
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
