-- An application is Roboconf's (an archive and a model of instances) or ConPaaS's (a
-- manifest and its services, each a manager instance).
ALTER TABLE applications ADD COLUMN kind TEXT NOT NULL DEFAULT 'roboconf';
