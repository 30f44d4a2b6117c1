"""The archive: every published version as HTML, PDF/A and JSON under history/, its manifest, and verification."""
