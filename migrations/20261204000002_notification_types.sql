-- Notifications (issue 23): a session stopped by its budget is announced as `test_stopped`
-- (a stop the user asked for is not announced: they pressed it).
ALTER TABLE notifications DROP CONSTRAINT notifications_type_check,
    ADD CONSTRAINT notifications_type_check CHECK (type IN (
        'test_completed', 'test_stopped', 'test_failed', 'certificate_issued', 'key_invalid',
        'key_no_credits', 'system'));
