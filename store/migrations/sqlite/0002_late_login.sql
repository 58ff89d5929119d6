-- An exam may close first logins some minutes after its start ("late
-- login"); 0 keeps them open until the exam ends.
ALTER TABLE exams ADD COLUMN late_login_minutes INTEGER NOT NULL DEFAULT 0 CHECK (late_login_minutes >= 0);
