"""The one exception type the CLI turns into a one-line message and exit code 2."""


class KwsError(Exception):
    """An error the user can act on: bad input, a missing file, a device that will not open.

    The message names the thing that is wrong and is cut to its first line here, the one place
    that does it, so text quoted from a library (a decoder's or LiteRT's multi-line error)
    never spreads a message over several lines.
    """

    exit_code = 2

    def __init__(self, message: str = ""):
        super().__init__(str(message).split("\n")[0])
