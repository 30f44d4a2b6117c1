"""`addendum serve`: the editor's workspace and a policy's public endpoints, over the operations every command uses."""
