-- A card's position in its chain: 0 for the root, one more per rotation. Virgil searches return
-- only the newest cards of each chain (limits.search_cards_per_chain), so that an identity that
-- rotated a thousand times cannot make every reader download a thousand cards; admins read a
-- chain in this order.
ALTER TABLE cards ADD COLUMN chain_index INTEGER NOT NULL DEFAULT 0;
WITH RECURSIVE walk (app_id, id, position) AS (
    SELECT app_id, id, 0 FROM cards WHERE previous_card_id IS NULL
    UNION ALL
    SELECT c.app_id, c.id, w.position + 1
    FROM cards c JOIN walk w ON c.app_id = w.app_id AND c.previous_card_id = w.id
)
UPDATE cards SET chain_index = walk.position
FROM walk
WHERE cards.app_id = walk.app_id AND cards.id = walk.id AND walk.position > 0;
-- Searches read every card of an identity's chains, superseded ones too.
CREATE INDEX cards_by_identity ON cards (app_id, identity, chain_index);
