"""``vr-tools plugins``: what every plugin registers, and any plugin that failed to load."""

import click


@click.command(name="plugins")
def command():
    """List registered templates, losses, formats, estimators, verifiers, eval tasks and commands."""
    from vr_plugins.registry import KINDS, registry

    errors = []
    for kind in KINDS:
        reg = registry(kind)
        errors += reg.errors
        click.echo(f"{kind}:")
        for name in reg.names():
            click.echo(f"  {name:<28} {reg.owner(name)}")
    for message in errors:
        click.echo(f"error: {message}", err=True)
