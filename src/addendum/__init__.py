"""Addendum: policy documents under version control, with changelogs, redlines, archives and notices."""

__version__ = "0.1.0"
