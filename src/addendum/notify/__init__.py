"""Change notices: subscribers outside git, a crash-safe outbox, localised messages and the one SMTP client."""
