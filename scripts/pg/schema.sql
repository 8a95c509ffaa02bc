-- The baseline: the same issuance as the engine's reward path, as a hand-rolled
-- PostgreSQL service would store it (idempotency record, pool debit with a balance check,
-- user balance upsert, action row, ledger row, two outbox events) in one transaction.
DROP TABLE IF EXISTS events, transactions, actions, users, pools, idempotency;

CREATE TABLE pools (
    partner_id    integer PRIMARY KEY,
    balance       bigint  NOT NULL CHECK (balance >= 0),
    allocated_total bigint NOT NULL,
    issued_total  bigint  NOT NULL DEFAULT 0
);

CREATE TABLE idempotency (
    partner_id      integer NOT NULL,
    idempotency_key text    NOT NULL,
    request_hash    text    NOT NULL,
    response        text    NOT NULL,
    PRIMARY KEY (partner_id, idempotency_key)
);

CREATE TABLE users (
    partner_id      integer NOT NULL,
    external_id     text    NOT NULL,
    available       bigint  NOT NULL,
    lifetime_earned bigint  NOT NULL,
    PRIMARY KEY (partner_id, external_id)
);

CREATE TABLE actions (
    id                 bigserial PRIMARY KEY,
    partner_id         integer NOT NULL,
    idempotency_key    text    NOT NULL,
    action_type        text    NOT NULL,
    amount_minor       bigint  NOT NULL,
    currency           text    NOT NULL,
    tokens_distributed bigint  NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE transactions (
    id              bigserial PRIMARY KEY,
    partner_id      integer NOT NULL,
    action_id       bigint  NOT NULL,
    partner_user_id text    NOT NULL,
    tokens          bigint  NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transactions_by_user ON transactions (partner_id, partner_user_id, id);

CREATE TABLE events (
    partner_id integer   NOT NULL,
    sequence   bigserial NOT NULL,
    event_type text      NOT NULL,
    payload    text      NOT NULL,
    PRIMARY KEY (partner_id, sequence)
);

INSERT INTO pools (partner_id, balance, allocated_total)
SELECT partner_id, 1000000000000, 1000000000000 FROM generate_series(1, 100) AS partner_id;
