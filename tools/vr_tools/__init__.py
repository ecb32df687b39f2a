"""The vr-tools command line: one module per subcommand, each a thin shell over vr_plugins."""
