-- The embedded queue: owner-scoped queues (a row from the first message on;
-- purging keeps it, so a purged queue lists with depth 0) and their
-- messages. The same statements serve SQLite and PostgreSQL.
--
-- A message is visible once `visible_at` has passed. Each receive moves
-- `visible_at` past the visibility timeout, counts itself in
-- `receive_count` and stores a fresh `receipt`, the only handle that can
-- delete, release or move the message until the next receive.

CREATE TABLE queues (
    owner_id TEXT NOT NULL,
    queue_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (owner_id, queue_name)
);

CREATE TABLE queue_messages (
    message_id TEXT NOT NULL PRIMARY KEY,
    owner_id TEXT NOT NULL,
    queue_name TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    first_received_at BIGINT,
    receive_count BIGINT NOT NULL,
    visible_at BIGINT NOT NULL,
    receipt TEXT
);

-- Receives take the oldest visible messages of one queue.
CREATE INDEX queue_messages_order ON queue_messages (owner_id, queue_name, sent_at, message_id);
