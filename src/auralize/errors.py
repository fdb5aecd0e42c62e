"""The one exception type a user sees as a one-line message."""


class AuralizeError(Exception):
    """Bad input or an unusable environment, explained in one line.

    The command line prints ``auralize: error: <message>`` and exits with code 1;
    no traceback.  The message should say what is wrong and what to do.
    """
