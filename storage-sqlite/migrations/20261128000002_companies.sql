CREATE TABLE company (
    tenant_id  BLOB NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    id         BLOB NOT NULL,
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE site (
    tenant_id  BLOB NOT NULL,
    id         BLOB NOT NULL,
    company_id BLOB NOT NULL,
    name       TEXT NOT NULL,
    address    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, company_id) REFERENCES company (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX site_by_company ON site (tenant_id, company_id, id);
