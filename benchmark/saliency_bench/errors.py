"""Exception types: user errors (exit 2) and method failures (that method is marked failed)."""


def exception_line(exc: BaseException) -> str:
    """``"Type: message"`` cut at the first line break: how any caught exception is reported."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


class UserError(Exception):
    """A mistake in what the user asked for; the CLI prints it on one line and exits 2."""


class MethodError(Exception):
    """A saliency method raised or returned something invalid; that method is marked failed."""

    def __init__(self, method: str, reason: str):
        super().__init__(f"method '{method}' failed: {reason}")
        self.method = method
        self.reason = reason


class NotApplicable(Exception):
    """A method has no defined map on this model (say, at this block): shown as "n/a" with the reason, never a number.

    Raised by a method's ``attribute``; the harness records the reason, and it is neither a failure nor a result.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
