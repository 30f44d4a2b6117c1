"""Evidence that does not rest on our own word: SSH signatures and RFC 3161 trusted timestamps over hashes."""
