-- Staff-sent task summaries, phase summaries, reminders and meeting invitations (MAIL-1) are
-- recorded in the activity log.
INSERT INTO event_kind (name) VALUES ('notification_sent');
