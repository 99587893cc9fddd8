-- A staff account can be disabled (and enabled again): it cannot sign in, and disabling it
-- ends its sessions and API tokens. NULL: enabled.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
