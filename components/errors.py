"""The error every user-facing failure derives from, free of heavy imports."""


class UserError(Exception):
    """Bad input from the user (a stack file, a stack name): reported as one line."""
