"""``vr-tools paths``: where the installed recipes and eval task files are."""

import click


@click.command(name="paths")
def command():
    """Print the recipes/ and eval_tasks/ folders of this installation (copy recipes from there)."""
    from vr_plugins.paths import eval_tasks_dir, recipes_dir

    click.echo(f"recipes     {recipes_dir()}")
    click.echo(f"eval_tasks  {eval_tasks_dir()}")
