-- Results and certificates (issue 23).

-- Whether a stored decision was reused from an earlier run's identical request (no call, no
-- cost): the reasoning route and export show it per candle.
ALTER TABLE ai_thoughts ADD COLUMN from_cache boolean NOT NULL DEFAULT false;

-- `total_pnl_pct` is the result's `total_return_pct`, the engine's value bit for bit (it was
-- recomputed in SQL, which may differ in the last bit): the list sorts and filters on it and a
-- certificate's digest covers it.
UPDATE test_results SET total_pnl_pct = (metrics->>'total_return_pct')::double precision
WHERE metrics ? 'total_return_pct';

-- Keyset pages of a user's results: newest first, or by return, ties broken by id.
DROP INDEX test_results_user_created;
DROP INDEX test_results_user_pnl;
CREATE INDEX test_results_user_created ON test_results (user_id, created_at, id);
CREATE INDEX test_results_user_return ON test_results (user_id, total_pnl_pct, id);
