-- Communities and the subnet each was given; leases: a stable virtual IP and edge id per MAC.
CREATE TABLE communities (
    name   TEXT PRIMARY KEY NOT NULL,
    subnet TEXT NOT NULL,
    prefix INTEGER NOT NULL
);

CREATE TABLE leases (
    community TEXT NOT NULL,
    mac       TEXT NOT NULL,
    ip        TEXT NOT NULL,
    edge_id   INTEGER NOT NULL,
    descr     TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (community, mac)
);

CREATE UNIQUE INDEX leases_by_ip ON leases (community, ip);
