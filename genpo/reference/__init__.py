"""Single-file reference implementations of genpo's methods, for reading and for cross-checking the
modular trainer (see each module's docstring)."""
