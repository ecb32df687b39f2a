"""Built-in plugins: the project's own features, registered through the same hooks as third-party ones."""
