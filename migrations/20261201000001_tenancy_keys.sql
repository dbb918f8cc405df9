-- Tenancy in the schema, not only in the handlers: a row that points at another row of a user
-- (a key, an agent, a session, a result) must belong to the same user. Each parent gets
-- UNIQUE (id, user_id) and each child's reference becomes a composite foreign key on
-- (<parent>_id, user_id), so no row can point at another user's row even if a handler forgets a
-- check. Nullable references keep MATCH SIMPLE semantics (NULL is not checked) and, where the
-- parent may go while the child stays, set only their own column to NULL (PostgreSQL >= 15).
-- The constraint names are the ones platform::error::CONSTRAINTS maps to client errors.

ALTER TABLE api_keys ADD CONSTRAINT api_keys_id_user_id_key UNIQUE (id, user_id);
ALTER TABLE agents ADD CONSTRAINT agents_id_user_id_key UNIQUE (id, user_id);
ALTER TABLE test_sessions ADD CONSTRAINT test_sessions_id_user_id_key UNIQUE (id, user_id);
ALTER TABLE test_results ADD CONSTRAINT test_results_id_user_id_key UNIQUE (id, user_id);

ALTER TABLE agents
    DROP CONSTRAINT agents_api_key_id_fkey,
    ADD CONSTRAINT agents_api_key_owner_fkey FOREIGN KEY (api_key_id, user_id)
        REFERENCES api_keys (id, user_id) ON DELETE SET NULL (api_key_id);

ALTER TABLE test_sessions
    DROP CONSTRAINT test_sessions_agent_id_fkey,
    ADD CONSTRAINT test_sessions_agent_owner_fkey FOREIGN KEY (agent_id, user_id)
        REFERENCES agents (id, user_id) ON DELETE SET NULL (agent_id);

ALTER TABLE trades
    DROP CONSTRAINT trades_session_id_fkey,
    ADD CONSTRAINT trades_session_owner_fkey FOREIGN KEY (session_id, user_id)
        REFERENCES test_sessions (id, user_id) ON DELETE CASCADE;

ALTER TABLE ai_thoughts
    DROP CONSTRAINT ai_thoughts_session_id_fkey,
    ADD CONSTRAINT ai_thoughts_session_owner_fkey FOREIGN KEY (session_id, user_id)
        REFERENCES test_sessions (id, user_id) ON DELETE CASCADE;

ALTER TABLE test_results
    DROP CONSTRAINT test_results_session_id_fkey,
    ADD CONSTRAINT test_results_session_owner_fkey FOREIGN KEY (session_id, user_id)
        REFERENCES test_sessions (id, user_id) ON DELETE CASCADE,
    DROP CONSTRAINT test_results_agent_id_fkey,
    ADD CONSTRAINT test_results_agent_owner_fkey FOREIGN KEY (agent_id, user_id)
        REFERENCES agents (id, user_id) ON DELETE SET NULL (agent_id);

ALTER TABLE certificates
    DROP CONSTRAINT certificates_result_id_fkey,
    ADD CONSTRAINT certificates_result_owner_fkey FOREIGN KEY (result_id, user_id)
        REFERENCES test_results (id, user_id) ON DELETE CASCADE;
