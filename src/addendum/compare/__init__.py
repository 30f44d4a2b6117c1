"""Comparing versions: the word diff, section matching, materiality and the classification of a change set."""
