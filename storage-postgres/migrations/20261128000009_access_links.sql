-- CON-2 to CON-5, ONB-4 to ONB-6, BYD-4: contact access links and contact sessions. Tokens are
-- stored only as their SHA-256 (32 bytes), unique across tenants, and looked up by (tenant, hash).
-- Deleting a contact or a portal deletes its links and sessions (ON DELETE CASCADE); archiving
-- revokes them (the commit path). The tenant sets how long a link works (default 30 days).
ALTER TABLE tenant ADD COLUMN access_link_expiry_days INTEGER NOT NULL DEFAULT 30;

CREATE TABLE access_link (
    tenant_id  UUID NOT NULL,
    id         UUID NOT NULL,
    portal_id  UUID NOT NULL,
    contact_id UUID NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, portal_id) REFERENCES portal (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contact (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX access_link_by_contact ON access_link (tenant_id, contact_id);

CREATE INDEX access_link_by_portal ON access_link (tenant_id, portal_id);

-- A session works while it has not expired and the link that started it is not revoked.
CREATE TABLE contact_session (
    tenant_id    UUID NOT NULL,
    token_hash   BYTEA NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    portal_id    UUID NOT NULL,
    contact_id   UUID NOT NULL,
    link_id      UUID NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, link_id) REFERENCES access_link (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contact (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, portal_id) REFERENCES portal (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX contact_session_by_contact ON contact_session (tenant_id, contact_id);

CREATE INDEX contact_session_by_portal ON contact_session (tenant_id, portal_id);

CREATE INDEX contact_session_by_link ON contact_session (tenant_id, link_id);

INSERT INTO event_kind (name) VALUES
    ('access_link_issued'),
    ('contact_access_revoked'),
    ('access_link_regenerated'),
    ('contact_accessed_portal');
