"""One module per command: each turns the command's inputs into a call of the core and
returns the exit code (:mod:`kvverify.exitcodes`). Nothing here parses options (``cli.py``
does) and nothing below here prints."""
