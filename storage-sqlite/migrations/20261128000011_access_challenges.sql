-- CON-5: one-time codes of forwarded-link protection. The challenge token is stored only as its
-- SHA-256 (32 bytes, unique across tenants, looked up by (tenant, hash)) and the code only as a
-- hash over the challenge token and the code, so the table reveals neither. A challenge dies with
-- its link, its contact and its portal (ON DELETE CASCADE); `used_at` is set once.
CREATE TABLE access_challenge (
    tenant_id  BLOB NOT NULL,
    id         BLOB NOT NULL,
    portal_id  BLOB NOT NULL,
    contact_id BLOB NOT NULL,
    link_id    BLOB NOT NULL,
    token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    code_hash  BLOB NOT NULL CHECK (length(code_hash) = 32),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, link_id) REFERENCES access_link (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contact (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, portal_id) REFERENCES portal (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX access_challenge_by_link ON access_challenge (tenant_id, link_id);

CREATE INDEX access_challenge_by_contact ON access_challenge (tenant_id, contact_id);

CREATE INDEX access_challenge_by_portal ON access_challenge (tenant_id, portal_id);
