"""`python -m addendum` runs the command line."""

from .cli import main

main()
