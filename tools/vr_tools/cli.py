"""``vr-tools``: the data steps between trainings. Subcommands come from the plugin registry, lazily."""

from __future__ import annotations

import click


class RegistryGroup(click.Group):
    """A group whose subcommands are the registered ``Command`` objects, imported on use.

    It is also the one place user errors become messages (see :meth:`invoke`)."""

    def invoke(self, ctx):
        """A :class:`~vr_plugins.errors.UserError` from any command (built-in or plugin) becomes
        ``Error: <message>`` and exit status 1, with no traceback; any other exception is a bug and keeps
        its traceback. Caught here rather than in :func:`main` so that ``CliRunner().invoke(cli, ...)``
        (the tests, embedding callers) sees exactly what a user at the shell sees."""
        from vr_plugins.errors import UserError

        try:
            return super().invoke(ctx)
        except UserError as exc:
            raise click.ClickException(str(exc)) from exc

    def list_commands(self, ctx):
        from vr_plugins.registry import registry

        return registry("commands").names()

    def get_command(self, ctx, name):
        from vr_plugins.registry import registry
        from vr_plugins.types import resolve

        commands = registry("commands")
        if name not in commands:
            return None
        command = resolve(commands.get(name).target)
        if not isinstance(command, click.Command):
            raise click.ClickException(
                f"plugin {commands.owner(name)!r}: command {name!r} must resolve to a click.Command, got "
                f"{type(command).__name__}"
            )
        return command

    def format_commands(self, ctx, formatter):
        from vr_plugins.registry import registry

        rows = [(c.name, c.help) for _, c in registry("commands").items()]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=RegistryGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="variational-reasoning")
def cli():
    """Data steps of the variational-reasoning pipeline, on a resumable, shardable run directory."""


def main(argv=None):
    """The ``vr-tools`` entry point; user errors are turned into messages by :meth:`RegistryGroup.invoke`."""
    return cli.main(args=argv, prog_name="vr-tools", standalone_mode=True)


if __name__ == "__main__":
    main()
