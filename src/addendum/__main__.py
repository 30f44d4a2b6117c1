"""`python -m addendum` runs the command line."""

from addendum.cli import main

main()
