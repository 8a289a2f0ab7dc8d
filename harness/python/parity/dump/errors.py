"""DumpError: bad input to the dumper. Its message is one line, meant for the user."""


class DumpError(ValueError):
    pass
