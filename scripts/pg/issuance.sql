-- One reward issuance (pgbench script): 100 partners, 10,000 users each, unique keys.
\set partner random(1, 100)
\set user random(1, 10000)
\set nonce random(1, 1000000000000)
BEGIN;
INSERT INTO idempotency (partner_id, idempotency_key, request_hash, response)
    VALUES (:partner, 'pg-' || :client_id || '-' || :nonce, 'a0b7f06e24e2461f607c6fed5cde168dacbb2b85eb94d72bb1d28f909f3f133c',
            '{"actionId":"01a2083b1a3e677706ef9f95","idempotencyKey":"order_1","status":"COMPLETED","tokensDistributed":50,"transactionIds":["01a2083b1a3e677707ef9f95"],"campaignId":null,"allocations":[{"partnerUserId":"user_42","stakeholderTypeCode":"CUSTOMER","tokens":50,"transactionId":"01a2083b1a3e677707ef9f95"}],"createdAt":"2026-11-23T11:47:00.798Z"}');
UPDATE pools SET balance = balance - 50, issued_total = issued_total + 50 WHERE partner_id = :partner AND balance >= 50;
INSERT INTO users (partner_id, external_id, available, lifetime_earned) VALUES (:partner, 'user_' || :user, 50, 50)
    ON CONFLICT (partner_id, external_id) DO UPDATE SET available = users.available + 50, lifetime_earned = users.lifetime_earned + 50;
INSERT INTO actions (partner_id, idempotency_key, action_type, amount_minor, currency, tokens_distributed)
    VALUES (:partner, 'pg-' || :client_id || '-' || :nonce, 'PURCHASE', 4999, 'USD', 50);
INSERT INTO transactions (partner_id, action_id, partner_user_id, tokens) VALUES (:partner, currval('actions_id_seq'), 'user_' || :user, 50);
INSERT INTO events (partner_id, event_type, payload) VALUES
    (:partner, 'action.completed', '{"id":"evt_01a2083b1a3e677708ef9f95","type":"action.completed","createdAt":"2026-11-23T11:47:00.798Z","environment":"sandbox","partnerId":"01a2083b04c16776ffef9f95","sequence":1,"data":{"actionId":"01a2083b1a3e677706ef9f95","tokensDistributed":50}}'),
    (:partner, 'transaction.completed', '{"id":"evt_01a2083b1a3e677709ef9f95","type":"transaction.completed","createdAt":"2026-11-23T11:47:00.798Z","environment":"sandbox","partnerId":"01a2083b04c16776ffef9f95","sequence":2,"data":{"id":"01a2083b1a3e677707ef9f95","type":"REWARD","tokens":50}}');
COMMIT;
