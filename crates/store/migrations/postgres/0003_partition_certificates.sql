-- The serial of the certificate each instance's partition holds: a certificate with
-- another serial (an older one) is refused, and so is any once the instance is destroyed.
ALTER TABLE instances ADD COLUMN certificate_serial TEXT;
