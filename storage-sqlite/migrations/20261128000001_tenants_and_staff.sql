-- One row per MSP workspace. Settings are columns: they are few, typed and edited as one.
CREATE TABLE tenant (
    tenant_id                 BLOB NOT NULL PRIMARY KEY,
    name                      TEXT NOT NULL,
    time_zone                 TEXT NOT NULL,
    billable_default          INTEGER NOT NULL,
    forwarded_link_protection INTEGER NOT NULL,
    version                   INTEGER NOT NULL,
    created_at                TEXT NOT NULL
);

CREATE TABLE role (
    tenant_id BLOB NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    id        BLOB NOT NULL,
    name      TEXT NOT NULL,
    version   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE role_permission (
    tenant_id  BLOB NOT NULL,
    role_id    BLOB NOT NULL,
    permission TEXT NOT NULL CHECK (permission IN ('read_onboarding','manage_onboarding','review_documents','reveal_credentials','read_projects','write_projects','manage_projects','manage_settings','manage_users')),
    PRIMARY KEY (tenant_id, role_id, permission),
    FOREIGN KEY (tenant_id, role_id) REFERENCES role (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE staff_user (
    tenant_id    BLOB NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    id           BLOB NOT NULL,
    email        TEXT NOT NULL,
    display_name TEXT NOT NULL,
    active       INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, email)
);

CREATE TABLE staff_user_role (
    tenant_id BLOB NOT NULL,
    user_id   BLOB NOT NULL,
    role_id   BLOB NOT NULL,
    PRIMARY KEY (tenant_id, user_id, role_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES staff_user (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, role_id) REFERENCES role (tenant_id, id) ON DELETE CASCADE
);
