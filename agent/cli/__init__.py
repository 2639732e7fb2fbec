"""The ``updown`` command line: one app, one error path, every subcommand registered here."""
