-- Staff belong to exams: an assistant, examiner or proctor sees and acts on
-- only the exams an admin put them on (admins see every exam, listed or
-- not). Accounts are disabled, never deleted, and exams are deleted only
-- with everything in them, so both sides cascade.
CREATE TABLE exam_staff (
    exam_id BIGINT NOT NULL REFERENCES exams (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (exam_id, user_id)
);
-- "Which exams is this user on" (the exam list of a staff page).
CREATE INDEX exam_staff_user ON exam_staff (user_id, exam_id);
