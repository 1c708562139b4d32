-- Extensions in `public`, once, when the cluster is created (pg_stat_statements' library is
-- preloaded by the service's command). Lessons look them up; none creates or drops them, since
-- one created in a lesson's schema would go for everyone when that schema is dropped.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;
