-- CON-5: one-time codes of forwarded-link protection. The challenge token is stored only as its
-- SHA-256 (32 bytes, unique across tenants, looked up by (tenant, hash)) and the code only as a
-- hash over the challenge token and the code, so the table reveals neither. A challenge dies with
-- its link, its contact and its portal (ON DELETE CASCADE); `used_at` is set once.
CREATE TABLE access_challenge (
    tenant_id  UUID NOT NULL,
    id         UUID NOT NULL,
    portal_id  UUID NOT NULL,
    contact_id UUID NOT NULL,
    link_id    UUID NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    code_hash  BYTEA NOT NULL CHECK (octet_length(code_hash) = 32),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, link_id) REFERENCES access_link (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contact (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, portal_id) REFERENCES portal (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX access_challenge_by_link ON access_challenge (tenant_id, link_id);

CREATE INDEX access_challenge_by_contact ON access_challenge (tenant_id, contact_id);

CREATE INDEX access_challenge_by_portal ON access_challenge (tenant_id, portal_id);
