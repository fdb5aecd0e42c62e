"""Sub-commands of the ``auralize`` command, one module each (see :mod:`auralize.cli`)."""
