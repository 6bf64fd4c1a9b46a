-- A project's credit: what its use may cost in all (a decimal string), none: no limit.
ALTER TABLE projects ADD COLUMN credit TEXT;
