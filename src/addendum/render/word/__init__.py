"""Word documents (.docx): redlines with tracked changes, a policy as readers see it, and its source for editing."""

from typing import Literal

# Whether changes of whitespace, punctuation, quotes or case only are tracked changes in a .docx redline.
Formatting = Literal["show", "hide"]
FORMATTING_CHOICES: tuple[Formatting, ...] = ("show", "hide")
