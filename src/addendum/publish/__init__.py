"""Publishing: committing a policy, the gates a version passes, recording it, language parity, the log and status."""
