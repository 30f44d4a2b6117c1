"""The policy: its model, Markdown markup, resolution for one site and language, and the checks."""
