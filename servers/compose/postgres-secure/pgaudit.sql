-- pgAudit's event triggers (object names in DDL audit lines) live in the extension.
CREATE EXTENSION IF NOT EXISTS pgaudit;
