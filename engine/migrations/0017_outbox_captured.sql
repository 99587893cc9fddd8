-- Whether a message marked sent was only captured in the database (no SMTP server
-- configured) rather than handed to a server: administrators tell the two apart. Messages
-- recorded before this column existed count as sent.
ALTER TABLE outbox ADD COLUMN captured INTEGER NOT NULL DEFAULT 0;
