-- AUTH-6 and BRD-2: staff sign-in and tenants by host. A session is stored only as the SHA-256
-- of its token (32 bytes) and looked up by it; a password only as its argon2id PHC string.
-- A host names one tenant across all tenants, so it is the key on its own.
CREATE TABLE tenant_hosts (
    host       TEXT NOT NULL PRIMARY KEY,
    tenant_id  BLOB NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    created_at TEXT NOT NULL
);

CREATE INDEX tenant_hosts_by_tenant ON tenant_hosts (tenant_id);

CREATE TABLE staff_credentials (
    tenant_id     BLOB NOT NULL,
    user_id       BLOB NOT NULL,
    password_hash TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES staff_user (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE staff_sessions (
    token_hash BLOB NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    tenant_id  BLOB NOT NULL,
    user_id    BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    FOREIGN KEY (tenant_id, user_id) REFERENCES staff_user (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX staff_sessions_by_user ON staff_sessions (tenant_id, user_id);

CREATE INDEX staff_sessions_by_expiry ON staff_sessions (expires_at);

-- Fixed-window counters of sign-in attempts, one row per account or client address.
CREATE TABLE sign_in_attempts (
    tenant_id    BLOB NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    window_start TEXT NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
