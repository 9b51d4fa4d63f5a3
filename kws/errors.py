"""The one exception type the CLI turns into a one-line message and exit code 2."""


class KwsError(Exception):
    """An error the user can act on: bad input, a missing file, a device that will not open.

    The message is a single line; it names the thing that is wrong.
    """

    exit_code = 2
