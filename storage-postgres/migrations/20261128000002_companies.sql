CREATE TABLE company (
    tenant_id  UUID NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    id         UUID NOT NULL,
    name       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE site (
    tenant_id  UUID NOT NULL,
    id         UUID NOT NULL,
    company_id UUID NOT NULL,
    name       TEXT NOT NULL,
    address    TEXT NOT NULL,
    version    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, company_id) REFERENCES company (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX site_by_company ON site (tenant_id, company_id, id);
