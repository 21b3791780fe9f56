-- Protocol v2: a lease belongs to the identity key (64 hex digits) that registered it; NULL
-- for leases from v1 or released by the operator. A closed community kept under `name~…`
-- remembers its full verifier.
ALTER TABLE leases ADD COLUMN identity TEXT;
ALTER TABLE communities ADD COLUMN verifier TEXT;
