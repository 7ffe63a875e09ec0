-- The admin read API shows the events that name an identity's cards: found by card, not by
-- scanning the app's whole log.
CREATE INDEX events_by_card ON events (app_id, card_id);
