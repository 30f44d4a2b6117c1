"""Operations: the repository-level work that every command and web handler calls, one function per job."""
